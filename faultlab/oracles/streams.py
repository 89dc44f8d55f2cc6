"""Stream-resume oracle: a client that resumes a broken stream delivers each item once, in order.

A server stream that breaks mid-way (a reset, a proxy that closes, a deadline)
is resumed by calling again from where the client got to. Off by one either
way and the caller silently loses an item or sees one twice; both pass every
"did the call succeed" check. So this oracle compares what the client
*delivered to its caller* with the full expected stream:

- S1 no item lost: every expected item was delivered;
- S2 no item duplicated: none was delivered more often than expected, and none
  that was not expected at all;
- S3 order kept: first deliveries come in the expected order.

Checks run in that order and a duplicate does not also count as disorder, so
the root cause is the one named. Items are ``(index, value)`` pairs, objects or
mappings with ``index`` and ``value`` (a protobuf ``Item``), or any hashable.

The journal is evidence, never the judge: the proxy may journal each stream
attempt (its ``wire_request`` naming the ``rpc_method``, and a ``wire_response``
counting ``messages_down``, the messages the client got on it, or a
``wire_unanswered`` when it broke); they become the verdict's evidence and,
when every attempt is counted, name the attempts around a lost or duplicated
item. The verdict is the same without them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Any

from faultlab.journal import schema as ev
from faultlab.journal.timeline import Source, Timeline, timeline
from faultlab.oracles._common import PropertyCheck
from faultlab.oracles.verdict import Verdict, combine

__all__ = ["check_stream_resume", "stream_attempts", "stream_checks"]

ORACLE = "streams"
S1 = "S1 no item lost"
S2 = "S2 no item duplicated"
S3 = "S3 order kept"


def check_stream_resume(
    received: Iterable[Any],
    expected: Iterable[Any],
    *,
    journal: Source | Timeline | None = None,
    label: str = "stream",
    method: str | None = None,
    attempts: Sequence[int] | None = None,
) -> Verdict:
    """One verdict over S1, S2, S3 for one logical stream.

    ``attempts`` is how many items each call attempt delivered, when the client
    counted them; else the journal's ``messages_down`` counts are used for
    messages when they add up to what was received. ``method`` keeps only the
    journal's attempts of that rpc (``"Count"`` or its full path). Vacuous when
    nothing was expected and nothing received.
    """
    got = [_key(item) for item in received]
    want = [_key(item) for item in expected]
    wire = stream_attempts(journal, method) if journal is not None else []
    counts = list(attempts) if attempts is not None else _wire_counts(wire, len(got))
    evidence = _wire_evidence(wire)
    checks = stream_checks(got, want, label=label, attempts=counts, evidence=evidence)
    vacuous = not got and not want
    verdict = combine(ORACLE, checks, vacuous=vacuous)
    details = {**verdict.details, "attempts": counts, "wire_attempts": _wire_summary(wire)}
    if not verdict.passed:
        return Verdict(
            ORACLE,
            verdict.property,
            False,
            False,
            verdict.message,
            verdict.evidence,
            details,
        )
    if vacuous:
        message = f"{label}: nothing expected and nothing received (vacuous)"
    else:
        message = f"{label}: all {len(want)} item(s) delivered once, in order"
        if counts and len(counts) > 1:
            message += f", over {len(counts)} attempts ({_plus(counts)})"
        elif len(wire) > 1:
            message += f", over {len(wire)} attempts on the wire"
    return Verdict(ORACLE, verdict.property, True, vacuous, message, evidence, details)


def stream_checks(
    received: Sequence[Hashable],
    expected: Sequence[Hashable],
    *,
    label: str = "stream",
    attempts: Sequence[int] = (),
    evidence: Sequence[dict[str, Any]] = (),
) -> list[Verdict]:
    """S1, S2, S3 over item keys (see :func:`check_stream_resume` for the items)."""
    where = _Attempts(attempts, len(received))
    return [
        _no_loss(received, expected, label, where, list(evidence)),
        _no_duplicate(received, expected, label, where, list(evidence)),
        _order(received, expected, label, where, list(evidence)),
    ]


def stream_attempts(journal: Source | Timeline, method: str | None = None) -> list[dict[str, Any]]:
    """The stream attempts the proxy saw, in journal order, optionally of one rpc.

    An attempt is one exchange on the wire (proxy, connection, exchange): its
    ``wire_request`` (which names the ``rpc_method``) and its outcome, a
    ``wire_response`` (which may count ``messages_down``) or ``wire_unanswered``
    (a broken stream). Each is ``{"rpc_method", "messages_down" (int or None),
    "outcome" ("response", "unanswered" or None), "events"}``; exchanges that name
    no rpc and count no messages (a plain unary relay) are left out.
    """
    tl = timeline(journal)
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in tl.of_kind(ev.WIRE_REQUEST, ev.WIRE_RESPONSE, ev.WIRE_UNANSWERED):
        key: tuple[Any, ...] = (e.get("proxy"), e.get("connection"), e.get("exchange"))
        if key == (None, None, None):
            key = ("seq", e.get("seq"))
        attempt = found.setdefault(
            key, {"rpc_method": None, "messages_down": None, "outcome": None, "events": []}
        )
        attempt["events"].append(e)
        if isinstance(e.get("rpc_method"), str):
            attempt["rpc_method"] = e["rpc_method"]
        count = e.get("messages_down")
        if isinstance(count, int) and not isinstance(count, bool):
            attempt["messages_down"] = count
        if e.get("kind") == ev.WIRE_RESPONSE:
            attempt["outcome"] = "response"
        elif e.get("kind") == ev.WIRE_UNANSWERED:
            attempt["outcome"] = "unanswered"
    return [
        a
        for a in found.values()
        if (a["rpc_method"] is not None or a["messages_down"] is not None)
        and (method is None or _same_rpc(a["rpc_method"], method))
    ]


def _same_rpc(rpc: Any, method: str) -> bool:
    if not isinstance(rpc, str):
        return False
    return rpc == method or rpc.rsplit("/", 1)[-1] == method.rsplit("/", 1)[-1]


def _wire_counts(wire: Sequence[Mapping[str, Any]], total: int) -> list[int]:
    """Per-attempt counts from the wire, only when every attempt has one and they add up
    to what the client delivered (else positions cannot be attributed honestly)."""
    counts = [a["messages_down"] for a in wire]
    if not counts or any(c is None for c in counts):
        return []
    ints = [int(c) for c in counts]
    return ints if sum(ints) == total else []


def _wire_summary(wire: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in a.items() if k != "events"} for a in wire]


def _wire_evidence(wire: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    events = [e for a in wire for e in a["events"]]
    return sorted(events, key=lambda e: e.get("seq", 0))


def _key(item: Any) -> Hashable:
    """``(index, value)`` for the shapes a stream item takes, else the item itself."""
    if isinstance(item, Mapping) and "index" in item:
        return (item["index"], item.get("value"))
    if hasattr(item, "index") and hasattr(item, "value") and not isinstance(item, tuple | list):
        return (item.index, item.value)
    if isinstance(item, list):
        return tuple(item)
    if not isinstance(item, Hashable):
        raise TypeError(f"stream items must be hashable or (index, value), not {item!r}")
    return item


def _name(key: Hashable) -> str:
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], int):
        return f"index {key[0]} (value {key[1]!r})"
    return f"item {key!r}"


def _plus(counts: Sequence[int]) -> str:
    return " + ".join(map(str, counts))


class _Attempts:
    """Which attempt delivered the item at a position of ``received`` (1-based), if known."""

    def __init__(self, counts: Sequence[int], total: int) -> None:
        self.ends = list(accumulate(counts)) if counts and sum(counts) == total else []

    def of(self, position: int) -> int | None:
        for number, end in enumerate(self.ends, 1):
            if position < end:
                return number
        return None

    def known(self) -> bool:
        return bool(self.ends)


def _positions(keys: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    found: dict[Hashable, list[int]] = {}
    for position, key in enumerate(keys):
        found.setdefault(key, []).append(position)
    return found


def _no_loss(
    got: Sequence[Hashable],
    want: Sequence[Hashable],
    label: str,
    where: _Attempts,
    evidence: list[dict[str, Any]],
) -> Verdict:
    check = PropertyCheck(ORACLE, S1)
    have = Counter(got)
    seen: Counter[Hashable] = Counter()
    missing: list[tuple[int, Hashable]] = []
    for position, key in enumerate(want):
        check.checked += 1
        seen[key] += 1
        if seen[key] > have[key]:
            missing.append((position, key))
    if missing:
        position, key = missing[0]
        message = f"{label}: {_name(key)} was never delivered ({len(missing)} lost in all)"
        message += _between(got, want, position, where)
        check.fail(message, evidence, lost=[k for _, k in missing][:20], lost_count=len(missing))
    return check.verdict()


def _between(
    got: Sequence[Hashable], want: Sequence[Hashable], position: int, where: _Attempts
) -> str:
    """Where a lost item should have come: after the previous expected item delivered,
    and which attempts delivered that one and the next (a gap across a resume)."""
    at = _positions(got)
    before = next((at[k][0] for k in reversed(want[:position]) if k in at), None)
    after = next((at[k][0] for k in want[position + 1 :] if k in at), None)
    if not where.known():
        return ""
    a = where.of(before) if before is not None else None
    b = where.of(after) if after is not None else None
    if a is not None and b is not None and a != b:
        return f", lost between attempts {a} and {b}"
    if a is not None or b is not None:
        return f", lost within attempt {a or b}"
    return ""


def _no_duplicate(
    got: Sequence[Hashable],
    want: Sequence[Hashable],
    label: str,
    where: _Attempts,
    evidence: list[dict[str, Any]],
) -> Verdict:
    check = PropertyCheck(ORACLE, S2)
    allowed = Counter(want)
    at = _positions(got)
    for key, positions in at.items():
        check.checked += 1
        extra = len(positions) - allowed[key]
        if extra <= 0:
            continue
        if allowed[key] == 0:
            message = f"{label}: {_name(key)} was delivered but is not in the expected stream"
        else:
            first, again = positions[allowed[key] - 1], positions[allowed[key]]
            message = (
                f"{label}: {_name(key)} was delivered {len(positions)} times "
                f"(positions {first} and {again} of {len(got)})"
            )
            a, b = where.of(first), where.of(again)
            if a is not None and b is not None:
                message += f", by attempts {a} and {b}" if a != b else f", twice within attempt {a}"
        check.fail(message, evidence, item=repr(key), delivered=len(positions))
    return check.verdict()


def _order(
    got: Sequence[Hashable],
    want: Sequence[Hashable],
    label: str,
    where: _Attempts,
    evidence: list[dict[str, Any]],
) -> Verdict:
    check = PropertyCheck(ORACLE, S3)
    slots = _positions(want)
    used: Counter[Hashable] = Counter()
    last: tuple[int, Hashable, int] | None = None  # (expected position, key, got position)
    for position, key in enumerate(got):
        index = used[key]
        used[key] += 1
        if index >= len(slots.get(key, ())):
            continue  # a duplicate or a stranger: S2's finding, not disorder
        expected_at = slots[key][index]
        check.checked += 1
        if last is not None and expected_at < last[0]:
            message = (
                f"{label}: {_name(key)} was delivered after {_name(last[1])} "
                f"(positions {last[2]} and {position}), but comes before it"
            )
            a = where.of(position)
            if a is not None:
                message += f" (attempt {a})"
            check.fail(message, evidence, item=repr(key), after=repr(last[1]))
            continue
        last = (expected_at, key, position)
    return check.verdict()
