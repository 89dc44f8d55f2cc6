"""Two-sided oracle: what the client library says it did, held against what was observed.

A resilience library keeps its own books (tenacity's ``statistics``, stamina's retry
hooks, pybreaker's listeners; see :mod:`faultlab.oracles.reporters`). When the books and
the wire disagree, one of them is wrong, and either way the user is misled: a client that
says it retried twice but sent five requests has a second retry layer hidden somewhere
(R14 amplification); one whose breaker says open while requests flow does not protect the
service; one whose sleeps are shorter than it reports is not backing off.

- V1 reported attempts: a call's reported attempt count equals the attempts observed;
- V2 reported waits: the gap before retry n is the wait the library announced for it;
- V3 reported breaker state: no request starts while the breaker reports itself open.

Where the observation can miss an attempt (a fault acted, so a request may have died
before reaching the proxy), only the other direction is judged: more attempts on the wire
than reported is always wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from faultlab.journal import schema as ev
from faultlab.journal.timeline import Attempt, Call, Source, Timeline, timeline
from faultlab.oracles._common import PropertyCheck, evidence_for, secs
from faultlab.oracles.policies import DEFAULT_TOLERANCE, Tolerance
from faultlab.oracles.verdict import Verdict, combine

__all__ = ["check_reported", "reported_checks"]

ORACLE = "reported"
V1 = "V1 reported attempts"
V2 = "V2 reported waits"
V3 = "V3 reported breaker state"


def check_reported(
    source: Source | Timeline, *, tolerance: Tolerance = DEFAULT_TOLERANCE
) -> Verdict:
    """One verdict over V1 V2 V3; vacuous when the client reported nothing."""
    tl = timeline(source)
    checks = reported_checks(tl, tolerance=tolerance)
    reports = tl.of_kind(ev.CLIENT_REPORT, ev.CLIENT_RETRY) + _library_breaker_events(tl)
    verdict = combine(ORACLE, checks, vacuous=not reports or all(c.vacuous for c in checks))
    if verdict.passed:
        libraries = sorted({str(e.get("library") or "custom") for e in reports})
        message = (
            "the client reported nothing (no client_report, client_retry or library breaker "
            "event): wire its library's hooks (faultlab.oracles.reporters)"
            if not reports
            else f"what {', '.join(libraries)} reported agrees with what was observed "
            f"({len(reports)} report(s))"
        )
        verdict = Verdict(
            ORACLE, verdict.property, True, verdict.vacuous, message, [], verdict.details
        )
    return verdict


def reported_checks(
    source: Source | Timeline, *, tolerance: Tolerance = DEFAULT_TOLERANCE
) -> list[Verdict]:
    tl = timeline(source)
    return [_attempts(tl), _waits(tl, tolerance), _breaker_state(tl, tolerance)]


def _in_call(call: Call, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    t1 = call.t_end if call.t_end is not None else float("inf")
    return [e for e in events if call.t_start <= float(e.get("t", -1.0)) <= t1]


def _marked(tl: Timeline) -> list[Call]:
    return [c for c in tl.calls if c.end_event is not None]


def _acted(tl: Timeline, call: Call, *decisions: str) -> bool:
    t1 = call.t_end if call.t_end is not None else float("inf")
    faults = tl.faults_between(call.t_start, t1)
    return bool(faults) if not decisions else any(f.get("decision") in decisions for f in faults)


def _attempts(tl: Timeline) -> Verdict:
    check = PropertyCheck(ORACLE, V1)
    reports = tl.of_kind(ev.CLIENT_REPORT)
    retries = tl.of_kind(ev.CLIENT_RETRY)
    for call in _marked(tl):
        mine = _in_call(call, reports)
        announced = _in_call(call, retries)
        numbers = [n for e in announced if isinstance(n := e.get("retry"), int)]
        if mine:
            said = mine[-1].get("attempts")
            library = mine[-1].get("library") or "the client"
        elif numbers:
            said = 1 + max(numbers)  # n retries announced: n + 1 attempts
            library = announced[-1].get("library") or "the client"
        else:
            continue
        if not isinstance(said, int):
            continue
        seen = len(call.attempts)
        check.checked += 1
        if seen > said and not _acted(tl, call, "duplicate"):
            why = (
                "something else retries underneath it (a second retry layer multiplies "
                "attempts), or its books are wrong"
            )
        elif seen < said and not _acted(tl, call):
            why = "no fault could have swallowed one: it counts attempts it never made"
        else:
            continue
        check.fail(
            f"{call.name}: {library} reported {said} attempt(s), but "
            f"{'only ' if seen < said else ''}{seen} request(s) were observed: {why}",
            evidence_for(tl, call, extra=mine[-1:] + announced),
            call=call.id,
            reported=said,
            observed=seen,
        )
    if check.checked == 0:
        check.vacuous_reason = "V1: no call's attempts were reported by its library"
    return check.verdict()


def _gap_before(call: Call, retry: int) -> tuple[Attempt, float] | None:
    """The measured wait before retry ``retry`` (between attempt n and n+1); when the end of
    attempt n is only an upper bound (``end_exact`` false) the true wait is at least this."""
    if retry < 1 or retry >= len(call.attempts):
        return None
    attempt, nxt = call.attempts[retry - 1], call.attempts[retry]
    if attempt.t_end is None:
        return None
    return attempt, nxt.t_start - attempt.t_end


def _waits(tl: Timeline, tol: Tolerance) -> Verdict:
    check = PropertyCheck(ORACLE, V2)
    retries = tl.of_kind(ev.CLIENT_RETRY)
    for call in _marked(tl):
        for e in _in_call(call, retries):
            wait = e.get("wait")
            retry = e.get("retry")
            if not isinstance(wait, int | float) or not isinstance(retry, int):
                continue
            measured = _gap_before(call, retry)
            if measured is None:
                continue
            attempt, gap = measured
            check.checked += 1
            library = e.get("library") or "the client"
            # an end seen late (the client's close) only bounds the gap from below
            if attempt.end_exact and gap < tol.early(float(wait)):
                verdict = "it does not sleep what it says"
            elif gap > tol.late(float(wait)) and not _acted(tl, call):
                verdict = f"{attempt.describe()}, beyond the tolerance: something else sleeps too"
            else:
                continue
            check.fail(
                f"{call.name}: {library} announced a wait of {secs(wait)} before retry "
                f"{retry}, but attempt {retry + 1} started {secs(gap)} after attempt "
                f"{retry} failed: {verdict}",
                evidence_for(tl, call, extra=[e]),
                call=call.id,
                retry=retry,
                reported=wait,
                gap=gap,
            )
            break
    if check.checked == 0:
        check.vacuous_reason = "V2: no announced wait was followed by an observed retry"
    return check.verdict()


def _library_breaker_events(tl: Timeline) -> list[dict[str, Any]]:
    return [e for e in tl.of_kind(ev.BREAKER) if e.get("state")]


def _breaker_state(tl: Timeline, tol: Tolerance) -> Verdict:
    check = PropertyCheck(ORACLE, V3)
    states = _library_breaker_events(tl)
    labels = {str(e.get("label") or "") for e in states}
    if not states:
        check.vacuous_reason = "V3: no breaker reported its state"
        return check.verdict()
    if len(labels) > 1:
        check.vacuous_reason = (
            f"V3: {len(labels)} breakers reported ({', '.join(sorted(labels))}); which one "
            f"guarded a request cannot be told from the wire"
        )
        return check.verdict()
    attempts = tl.attempts
    # the open periods: from an "open" report to the next report of another state
    for i, e in enumerate(states):
        if e.get("state") != "open":
            continue
        t0 = float(e["t"])
        t1 = next((float(n["t"]) for n in states[i + 1 :] if n.get("state") != "open"), None)
        check.checked += 1
        # a request admitted just before the breaker opened may be journaled just after
        inside = [
            a for a in attempts if t0 + tol.eps_early < a.t_start and (t1 is None or a.t_start < t1)
        ]
        if inside:
            a = inside[0]
            owner = next((c for c in tl.calls if a in c.attempts), None)
            check.fail(
                f"the breaker {e.get('label') or ''} reported itself open at "
                f"{secs(t0)}{' until ' + secs(t1) if t1 is not None else ''}, yet "
                f"{len(inside)} request(s) flowed meanwhile (the first {secs(a.t_start - t0)} "
                f"after it opened{', in ' + owner.name if owner else ''}): an open breaker must "
                f"stop every call",
                evidence_for(tl, *([owner] if owner else []), extra=[e]),
                call=owner.id if owner else None,
                requests=len(inside),
            )
    return check.verdict()
