"""Fallback oracle: the fallback value iff the primary failed in a handled way (§4.2 F1, F2).

The primary outcome of a logical call is its last attempt (after the inner
retries); a call with no attempt was rejected by a breaker (or answered from
a cache). A call counts as having fallen back if it journaled a ``fallback``
event, ended with outcome ``"fallback"``, returned a value whose ``repr`` is
the declared fallback value's, or, read from the wire, returned a value
although its last attempt failed or it made none: the value cannot have come
from the service, so it came from a fallback (a cache, a default), whatever
it is.
"""

from __future__ import annotations

from faultlab.journal.schema import short_repr
from faultlab.journal.timeline import Call, Source, Timeline, timeline
from faultlab.oracles._common import PropertyCheck, evidence_for, secs
from faultlab.oracles.policies import NOT_SET, FallbackPolicy
from faultlab.oracles.verdict import Verdict, combine

__all__ = ["check_fallback", "fallback_checks", "fallback_reason", "fell_back"]

ORACLE = "fallback"
F1 = "F1 fallback iff handled failure"
F2 = "F2 once and last"


def fallback_reason(call: Call, policy: FallbackPolicy | None = None) -> str | None:
    """Why the caller is taken to have got a fallback (``None``: it got the primary outcome)."""
    if call.fallback_events:
        return "the client journaled a fallback"
    if call.outcome == "fallback":
        return "the call ended as a fallback"
    if call.outcome != "value":
        return None
    if (
        policy is not None
        and policy.value is not NOT_SET
        and call.value == short_repr(policy.value)
    ):
        return "it returned the declared fallback value"
    last = call.last
    if last is None:
        return "it returned a value without a single request reaching the service"
    if last.failed:
        return (
            f"it returned a value although its last attempt failed with "
            f"{last.error_kind or last.error!r}"
        )
    return None


def fell_back(call: Call, policy: FallbackPolicy | None = None) -> bool:
    """Did the caller get a fallback rather than the primary outcome?"""
    return fallback_reason(call, policy) is not None


def _got(call: Call) -> str:
    """What the caller got, in words."""
    if call.outcome in ("value", "fallback"):
        return f"the value {call.value}" if call.value is not None else "a value"
    if call.outcome == "error":
        return f"the error {call.error_kind or call.error or 'with no description'}"
    return "nothing (the call never ended)" if call.end_event is None else str(call.outcome)


def _eligible(policy: FallbackPolicy) -> str:
    kinds = sorted(policy.eligible)
    shown = ", ".join(kinds[:6]) + (", ..." if len(kinds) > 6 else "")
    return f"the fallback handles {shown}" if kinds else "the fallback handles no error"


def check_fallback(source: Source | Timeline, policy: FallbackPolicy) -> Verdict:
    """One verdict over F1 and F2; vacuous when no primary failed and no call was rejected."""
    tl = timeline(source)
    checks = fallback_checks(tl, policy)
    ended = [c for c in tl.calls if c.end_event is not None and policy.covers(c.method)]
    exercised = [c for c in ended if c.rejected or (c.last is not None and c.last.failed)]
    vacuous = not exercised
    verdict = combine(ORACLE, checks, vacuous=vacuous)
    if verdict.passed:
        used = sum(1 for c in ended if fell_back(c, policy))
        if vacuous:
            message = (
                f"fallback held over {len(ended)} call(s), vacuously: no primary failed and no "
                f"call was rejected, so the fallback was never needed"
            )
        else:
            message = (
                f"fallback held over {len(ended)} call(s): {len(exercised)} failed or rejected, "
                f"{used} fell back"
            )
        verdict = Verdict(ORACLE, verdict.property, True, vacuous, message, [], verdict.details)
    return verdict


def fallback_checks(source: Source | Timeline, policy: FallbackPolicy) -> list[Verdict]:
    tl = timeline(source)
    return [_iff(tl, policy), _once_and_last(tl, policy)]


def _iff(tl: Timeline, policy: FallbackPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, F1)
    succeeded: set[str | None] = set()
    for call in tl.calls:
        if call.end_event is None or not policy.covers(call.method):
            continue
        used = fell_back(call, policy)
        last = call.last
        nothing_yet = policy.needs_success and call.method not in succeeded
        if last is not None and last.ok and not used:
            succeeded.add(call.method)
        if last is None:
            check.checked += 1
            if policy.on_reject and not used and not nothing_yet:
                check.fail(
                    f"{call.name} made no request (a breaker rejected it, or the client gave up "
                    f"before sending) and the caller got {_got(call)} instead of the fallback, "
                    f"which the policy says covers calls that reach no service",
                    evidence_for(tl, call),
                    call=call.id,
                )
            elif not policy.on_reject and used:
                check.fail(
                    f"{call.name} made no request and the caller got {_got(call)} as a "
                    f"fallback ({fallback_reason(call, policy)}), but the policy's fallback does "
                    f"not cover rejected calls",
                    evidence_for(tl, call),
                    call=call.id,
                )
            continue
        if last.outcome is None:
            continue
        check.checked += 1
        if last.ok and used:
            check.fail(
                f"{call.name}: attempt {last.number} succeeded, yet the caller got "
                f"{_got(call)} as a fallback ({fallback_reason(call, policy)}); a successful "
                f"result must never be replaced",
                evidence_for(tl, call),
                call=call.id,
            )
        elif last.failed and policy.handles(last.error_kind) and not used and not nothing_yet:
            check.fail(
                f"{call.name}: its last attempt failed with {last.error_kind!r}, which is "
                f"eligible ({_eligible(policy)}), but the caller got {_got(call)} instead "
                f"of the fallback",
                evidence_for(tl, call),
                call=call.id,
            )
        elif last.failed and not policy.handles(last.error_kind) and used:
            check.fail(
                f"{call.name}: its last attempt failed with {last.error_kind!r}, which is not "
                f"eligible ({_eligible(policy)}), yet the caller got {_got(call)} as a "
                f"fallback ({fallback_reason(call, policy)}): the error was masked",
                evidence_for(tl, call),
                call=call.id,
                error_kind=last.error_kind,
            )
    return check.verdict()


def _once_and_last(tl: Timeline, policy: FallbackPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, F2)
    for call in tl.calls:
        if call.end_event is None or not policy.covers(call.method) or not fell_back(call, policy):
            continue
        check.checked += 1
        if len(call.fallback_events) > 1:
            check.fail(
                f"{call.name} ran its fallback {len(call.fallback_events)} times; at most once "
                f"per call",
                evidence_for(tl, call),
                call=call.id,
            )
            continue
        if call.fallback_events:
            t_fb = float(call.fallback_events[0]["t"])
            late = [a for a in call.attempts if a.t_start > t_fb]
            if late:
                check.fail(
                    f"{call.name}: attempt {late[0].number} started "
                    f"{secs(late[0].t_start - t_fb)} after the fallback ran; the fallback comes "
                    f"after the last attempt",
                    evidence_for(tl, call),
                    call=call.id,
                )
                continue
        last = call.last
        if (
            policy.inner_attempts is not None
            and last is not None
            and last.failed
            and policy.handles(last.error_kind)
            and len(call.attempts) < policy.inner_attempts
        ):
            check.fail(
                f"{call.name} fell back after {len(call.attempts)} attempt(s); the retry "
                f"budget inside the fallback is {policy.inner_attempts}",
                evidence_for(tl, call),
                call=call.id,
            )
    return check.verdict()
