"""Idempotency oracle: keys required, stable per call, and one side effect per call (§8.2).

- I3 key required for retry: a non-idempotent call sent more than once
  carries an idempotency key on every attempt;
- I2 stable key, unique per call: all attempts of one call carry the same
  key, and no two calls share one (gocardless-pro-python #12);
- I1 at most one side effect per call and per key.

Side effects come from, in order of preference: ``side_effect`` events, the
``effects`` list the service reports (``pair.server_effects()``), or the
server's ``server_request`` events (an ``ok`` request of a non-idempotent
method is an effect unless its key was already applied: the server dedups).
A key is read from whatever carried it: the server's record (header, metadata
or a key parameter), else the key the client or the wire saw on the attempt
the request answered.
The checks run in the order I3, I2, I1 so the root cause is the one named.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from faultlab.journal import schema as ev
from faultlab.journal.timeline import Call, Source, Timeline, timeline
from faultlab.oracles._common import PropertyCheck, evidence_for
from faultlab.oracles.policies import RetryPolicy
from faultlab.oracles.verdict import Verdict, combine

__all__ = ["check_idempotency", "idempotency_checks"]

ORACLE = "idempotency"
I1 = "I1 at most one side effect"
I2 = "I2 stable key, unique per call"
I3 = "I3 key required for retry"


def check_idempotency(
    source: Source | Timeline,
    policy: RetryPolicy | None = None,
    *,
    non_idempotent: Iterable[str] | None = None,
    effects: Sequence[Mapping[str, Any]] | None = None,
) -> Verdict:
    """One verdict over I3, I2, I1.

    Which methods are non-idempotent: ``non_idempotent`` if given, else the
    policy's declaration, else the logical call's own ``idempotent`` flag.
    Vacuous when no non-idempotent call ever had a failed attempt (so no
    duplicate could arise).
    """
    tl = timeline(source)
    checks = idempotency_checks(tl, policy, non_idempotent=non_idempotent, effects=effects)
    judge = _judge(policy, non_idempotent)
    risky = [c for c in tl.calls if judge(c) and any(a.failed for a in c.attempts)]
    vacuous = not risky
    verdict = combine(ORACLE, checks, vacuous=vacuous)
    if verdict.passed:
        total = sum(1 for c in tl.calls if judge(c))
        if vacuous:
            message = (
                f"idempotency held over {total} non-idempotent call(s), vacuously: none had a "
                f"failed attempt, so no duplicate could arise"
            )
        else:
            message = (
                f"idempotency held: {len(risky)} of {total} non-idempotent call(s) had failed "
                f"attempts, and each took effect at most once"
            )
        verdict = Verdict(ORACLE, verdict.property, True, vacuous, message, [], verdict.details)
    return verdict


def _judge(policy: RetryPolicy | None, non_idempotent: Iterable[str] | None) -> Any:
    listed = frozenset(non_idempotent) if non_idempotent is not None else None

    def is_non_idempotent(call: Call) -> bool:
        if listed is not None:
            return call.method in listed
        if policy is not None:
            return not policy.is_idempotent(call.method, call.idempotent)
        return call.idempotent is False

    return is_non_idempotent


def idempotency_checks(
    source: Source | Timeline,
    policy: RetryPolicy | None = None,
    *,
    non_idempotent: Iterable[str] | None = None,
    effects: Sequence[Mapping[str, Any]] | None = None,
) -> list[Verdict]:
    tl = timeline(source)
    judge = _judge(policy, non_idempotent)
    calls = [c for c in tl.calls if judge(c)]
    return [
        _key_required(tl, calls),
        _stable_keys(tl),
        _one_effect(tl, calls, effects),
    ]


def _key_required(tl: Timeline, calls: list[Call]) -> Verdict:
    check = PropertyCheck(ORACLE, I3)
    for call in calls:
        if len(call.attempts) < 2:
            continue
        check.checked += 1
        unkeyed = [a.number for a in call.attempts if not a.key]
        if unkeyed:
            check.fail(
                f"{call.name} is not idempotent and was sent {len(call.attempts)} times, but "
                f"attempt(s) {', '.join(map(str, unkeyed))} carried no idempotency key: a "
                f"retry without a key may apply it twice",
                evidence_for(tl, call),
                call=call.id,
            )
    if check.checked == 0:
        check.vacuous_reason = "I3: no non-idempotent call was retried"
    return check.verdict()


def _stable_keys(tl: Timeline) -> Verdict:
    check = PropertyCheck(ORACLE, I2)
    owner: dict[str, Call] = {}
    for call in tl.calls:
        keys = [a.key for a in call.attempts if a.key]
        if not keys:
            continue
        check.checked += 1
        distinct = list(dict.fromkeys(keys))
        if len(distinct) > 1 or len(keys) < len(call.attempts):
            shown = ", ".join(f"attempt {a.number}: {a.key!r}" for a in call.attempts)
            check.fail(
                f"{call.name} changed its idempotency key between attempts ({shown}); every "
                f"attempt of one call must carry the same key, or the server cannot dedup",
                evidence_for(tl, call),
                call=call.id,
                keys=distinct,
            )
            continue
        key = distinct[0]
        first = owner.setdefault(key, call)
        if first is not call:
            check.fail(
                f"{call.name} reused the idempotency key {key!r} of {first.name}; keys must "
                f"differ across logical calls, or the second call is silently dropped",
                evidence_for(tl, first, call),
                call=call.id,
                key=key,
            )
    return check.verdict()


def _effects(
    tl: Timeline, calls: list[Call], effects: Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    """Each side effect as ``{"key", "method", "t" (or None), "event" (or None)}``."""
    side = tl.of_kind(ev.SIDE_EFFECT)
    if side:
        return [
            {"key": e.get("key"), "method": e.get("method"), "t": e.get("t"), "event": e}
            for e in side
        ]
    if effects is not None:
        return [
            {"key": e.get("key"), "method": e.get("method"), "t": None, "event": None}
            for e in effects
        ]
    methods = {c.method for c in calls}
    applied: set[str] = set()
    found = []
    for e in tl.of_kind(ev.SERVER_REQUEST):
        if e.get("method") not in methods or e.get("outcome") != "ok":
            continue
        key = e.get("idempotency_key") or _key_of_attempt_at(calls, e)
        if key is not None:
            if key in applied:
                continue  # the server replayed its stored result: no new effect
            applied.add(key)
        found.append({"key": key, "method": e.get("method"), "t": e.get("t"), "event": e})
    return found


def _one_effect(
    tl: Timeline, calls: list[Call], effects: Sequence[Mapping[str, Any]] | None
) -> Verdict:
    check = PropertyCheck(ORACLE, I1)
    found = _effects(tl, calls, effects)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for effect in found:
        if effect["key"] is not None:
            by_key.setdefault(effect["key"], []).append(effect)
    key_owner: dict[str, Call] = {}
    for call in calls:
        for attempt in call.attempts:
            if attempt.key:
                key_owner.setdefault(attempt.key, call)
    for key, items in by_key.items():
        check.checked += 1
        if len(items) > 1:
            owner = key_owner.get(key)
            extra = [i["event"] for i in items if i["event"] is not None]
            check.fail(
                f"the key {key!r}{' of ' + owner.name if owner else ''} took effect "
                f"{len(items)} times on the server; at most once per key",
                evidence_for(tl, *([owner] if owner else []), extra=extra),
                key=key,
            )
    per_call: dict[int, list[dict[str, Any]]] = {}
    for effect in found:
        owner = key_owner.get(effect["key"]) if effect["key"] is not None else None
        if owner is None and effect["key"] is None and effect["t"] is not None:
            owner = _call_at(calls, effect["method"], float(effect["t"]))
        if owner is not None:
            per_call.setdefault(owner.id, []).append(effect)
    for call in calls:
        items = per_call.get(call.id, [])
        check.checked += 1
        if len(items) > 1:
            keys = sorted({str(i["key"]) for i in items})
            extra = [i["event"] for i in items if i["event"] is not None]
            check.fail(
                f"{call.name} took effect {len(items)} times on the server (keys: "
                f"{', '.join(keys)}) for one logical call; a non-idempotent call must take "
                f"effect at most once",
                evidence_for(tl, call, extra=extra),
                call=call.id,
                effects=len(items),
            )
    return check.verdict()


def _key_of_attempt_at(calls: list[Call], event: Mapping[str, Any]) -> str | None:
    """The key the client sent with the attempt this server request answered, when the
    server did not journal one (a header it does not read, a key in positional params):
    the key is read from whatever carried it, as the client or the wire saw it."""
    t = event.get("t")
    if not isinstance(t, int | float):
        return None
    method = event.get("method")
    keys = {
        a.key
        for c in calls
        if c.method in (None, method)
        for a in c.attempts
        if a.key and a.t_start <= t <= (a.t_end if a.t_end is not None else float("inf"))
    }
    return keys.pop() if len(keys) == 1 else None


def _call_at(calls: list[Call], method: str | None, t: float) -> Call | None:
    """The call of this method that was running at ``t`` (unkeyed effects)."""
    for call in calls:
        if call.method != method or not call.attempts:
            continue
        t1 = call.t_end if call.t_end is not None else float("inf")
        if call.attempts[0].t_start <= t <= t1:
            return call
    return None
