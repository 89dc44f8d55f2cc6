"""Round-trip oracle: a value comes back exactly as sent, or as a typed error, never changed.

Equality is :func:`faultlab.codecs.same` (type-strict, NaN- and
signed-zero-aware), because ``==`` hides exactly the changes codecs and broken
replies make (``1 == 1.0 == True``). Over a pair, a truncated or corrupted
reply must surface as an error; a client that turns it into a value shows up
here as a difference.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from faultlab.codecs import Codec, explain_difference, get_codec
from faultlab.codecs.errors import EncodeError
from faultlab.journal.timeline import Source, Timeline, timeline
from faultlab.oracles.verdict import Verdict, combine

__all__ = ["check_roundtrip", "check_roundtrip_pair", "check_roundtrip_pairs"]

ORACLE = "roundtrip"
RT_CODEC = "RT1 codec round-trip"
RT_PAIR = "RT2 value through the pair"


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_roundtrip(codec: Codec | str, value: Any) -> Verdict:
    """``decode(encode(value))`` is ``same`` as ``value``; a refused encode is a (vacuous) pass.

    Refusing a value outside the codec's domain with :class:`EncodeError` is
    the documented behaviour, so it passes, marked vacuous: nothing crossed.
    """
    c = get_codec(codec) if isinstance(codec, str) else codec
    try:
        data = c.encode(value)
    except EncodeError as exc:
        return Verdict(
            ORACLE,
            RT_CODEC,
            True,
            True,
            f"{c.name} refused {_short(value)} with a typed error ({exc}); outside its domain",
            [],
            {"codec": c.name},
        )
    except Exception as exc:
        return Verdict(
            ORACLE,
            RT_CODEC,
            False,
            False,
            f"{c.name} raised {type(exc).__name__} encoding {_short(value)}: only EncodeError "
            f"may refuse a value",
            [],
            {"codec": c.name, "error": repr(exc)},
        )
    try:
        back = c.decode(data)
    except Exception as exc:
        return Verdict(
            ORACLE,
            RT_CODEC,
            False,
            False,
            f"{c.name} could not decode its own encoding of {_short(value)}: "
            f"{type(exc).__name__}: {exc}",
            [],
            {"codec": c.name, "encoded": data[:200].hex()},
        )
    difference = explain_difference(value, back)
    if difference is not None:
        return Verdict(
            ORACLE,
            RT_CODEC,
            False,
            False,
            f"{c.name} changed {_short(value)} on the way back: {difference}",
            [],
            {"codec": c.name, "sent": _short(value), "received": _short(back)},
        )
    return Verdict(ORACLE, RT_CODEC, True, False, f"{c.name} round-tripped {_short(value)}", [])


def check_roundtrip_pair(
    sent: Any,
    received: Any,
    *,
    source: Source | Timeline | None = None,
    call: int | None = None,
) -> Verdict:
    """What came back through a client/proxy/server pair is ``same`` as what was sent.

    Give the journal and the logical call id to attach the call's events as
    evidence.
    """
    difference = explain_difference(sent, received)
    evidence: list[dict[str, Any]] = []
    if source is not None and call is not None:
        tl = timeline(source)
        evidence = next((c.events() for c in tl.calls if c.id == call), [])
    where = f"call {call}" if call is not None else "a call"
    if difference is None:
        return Verdict(
            ORACLE, RT_PAIR, True, False, f"{where} returned {_short(sent)} unchanged", evidence
        )
    return Verdict(
        ORACLE,
        RT_PAIR,
        False,
        False,
        f"{where} sent {_short(sent)} and got back {_short(received)} as a value ({difference}); "
        f"a truncated or corrupted reply must raise, never come back as a value",
        evidence,
        {"call": call, "sent": _short(sent), "received": _short(received)},
    )


def check_roundtrip_pairs(
    exchanges: Iterable[tuple[Any, ...]], *, source: Source | Timeline | None = None
) -> Verdict:
    """Every ``(sent, received[, call_id])`` exchange round-tripped; vacuous if there were none."""
    tl = timeline(source) if source is not None else None
    verdicts = []
    for exchange in exchanges:
        sent, received = exchange[0], exchange[1]
        call_id = exchange[2] if len(exchange) > 2 else None
        verdicts.append(check_roundtrip_pair(sent, received, source=tl, call=call_id))
    if not verdicts:
        return Verdict(ORACLE, RT_PAIR, True, True, "no value came back, nothing to compare", [])
    verdict = combine(ORACLE, verdicts, vacuous=False)
    if verdict.passed:
        return Verdict(
            ORACLE,
            RT_PAIR,
            True,
            False,
            f"{len(verdicts)} value(s) came back unchanged",
            [],
            verdict.details,
        )
    return verdict
