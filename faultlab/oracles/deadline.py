"""Deadline oracle: control back by the deadline, no attempt sent after it (§5.2 T2).

A black hole (the ``timeout`` toxic, a paused server) is where deadlines
break: a per-attempt timeout that ignores the overall budget, or a retry
started after the budget ran out, keeps the caller waiting. A call still
running when the excerpt ends counts as not returned.
"""

from __future__ import annotations

from faultlab.journal.timeline import Call, Source, Timeline, timeline
from faultlab.oracles._common import PropertyCheck, evidence_for, secs
from faultlab.oracles.policies import DeadlinePolicy
from faultlab.oracles.verdict import Verdict, combine

__all__ = ["check_deadline", "deadline_checks"]

ORACLE = "deadline"
T2_RETURN = "T2 overall deadline"
T2_SEND = "T2 no attempt after the deadline"


def _selected(tl: Timeline, policy: DeadlinePolicy) -> list[Call]:
    return [c for c in tl.calls if policy.methods is None or c.method in policy.methods]


def check_deadline(source: Source | Timeline, policy: DeadlinePolicy) -> Verdict:
    """One verdict over T2 (return by the deadline; no attempt at or after it).

    Vacuous when no call came under pressure: no failed attempt, no fault
    acting while it ran, none slower than half the deadline.
    """
    tl = timeline(source)
    checks = deadline_checks(tl, policy)
    calls = _selected(tl, policy)
    pressed = [c for c in calls if _under_pressure(tl, c, policy)]
    vacuous = not pressed
    verdict = combine(ORACLE, checks, vacuous=vacuous)
    if verdict.passed:
        slowest = max((c.t_end - c.t_start for c in calls if c.t_end is not None), default=0.0)
        if vacuous:
            message = (
                f"deadline {secs(policy.deadline)} held over {len(calls)} call(s), vacuously: "
                f"no fault pressed on any of them (slowest {secs(slowest)})"
            )
        else:
            message = (
                f"deadline {secs(policy.deadline)} held over {len(calls)} call(s), "
                f"{len(pressed)} under faults; slowest returned in {secs(slowest)}"
            )
        verdict = Verdict(ORACLE, verdict.property, True, vacuous, message, [], verdict.details)
    return verdict


def _under_pressure(tl: Timeline, call: Call, policy: DeadlinePolicy) -> bool:
    if call.t_end is None or any(a.failed or a.outcome is None for a in call.attempts):
        return True
    if call.t_end - call.t_start > policy.deadline / 2:
        return True
    return bool(tl.faults_between(call.t_start, call.t_end))


def deadline_checks(source: Source | Timeline, policy: DeadlinePolicy) -> list[Verdict]:
    tl = timeline(source)
    calls = _selected(tl, policy)
    tol = policy.tolerance
    returned = PropertyCheck(ORACLE, T2_RETURN)
    sent = PropertyCheck(ORACLE, T2_SEND)
    horizon = max((float(e.get("t", 0.0)) for e in tl.events), default=0.0)
    limit = tol.late(policy.deadline)
    for call in calls:
        returned.checked += 1
        if call.t_end is None:
            waited = horizon - call.t_start
            if waited > limit:
                returned.fail(
                    f"{call.name} had not returned {secs(waited)} after it started; the "
                    f"deadline is {secs(policy.deadline)}",
                    evidence_for(tl, call),
                    call=call.id,
                )
        else:
            took = call.t_end - call.t_start
            if took > limit:
                how = call.outcome or "?"
                returned.fail(
                    f"{call.name} returned ({how}) {secs(took)} after it started; the deadline "
                    f"is {secs(policy.deadline)} (tolerance up to {secs(limit)}), "
                    f"{len(call.attempts)} attempt(s) made",
                    evidence_for(tl, call),
                    call=call.id,
                    took=took,
                )
        for attempt in call.attempts:
            sent.checked += 1
            offset = attempt.t_start - call.t_start
            if offset > policy.deadline + tol.eps_late:
                sent.fail(
                    f"{call.name}: attempt {attempt.number} was sent {secs(offset)} after the "
                    f"call started, past its {secs(policy.deadline)} deadline; no attempt may "
                    f"start once the deadline has passed",
                    evidence_for(tl, call),
                    call=call.id,
                    attempt=attempt.number,
                )
                break
    return [returned.verdict(), sent.verdict()]
