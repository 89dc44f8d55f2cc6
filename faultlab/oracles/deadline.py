"""Deadline oracle: control back by the deadline, no attempt sent after it (§5.2 T2).

A black hole (the ``timeout`` toxic, a paused server) is where deadlines
break: a per-attempt timeout that ignores the overall budget, or a retry
started after the budget ran out, keeps the caller waiting. A call still
running when the excerpt ends counts as not returned.

gRPC carries the deadline on the wire (``grpc-timeout``), so for a gRPC attempt the
proxy also checks what the server was told: at most the time left of the declared
deadline, and present at all (a call without one waits forever under a black hole).
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
T2_WIRE = "T2 deadline sent on the wire"

GRPC_TIMEOUT_ROUNDING = 0.01
"""How much above the time left a ``grpc-timeout`` may be, relative: grpc-core rounds the
value up to about 3 significant digits (1 s is sent as ``1010m``, 150 s as ``151S``)."""
GRPC_TIMEOUT_UNIT = 0.001
"""Seconds: the smallest rounding step (a millisecond) allowed on top."""


def _selected(tl: Timeline, policy: DeadlinePolicy) -> list[Call]:
    return [c for c in tl.calls if policy.methods is None or c.method in policy.methods]


def check_deadline(source: Source | Timeline, policy: DeadlinePolicy) -> Verdict:
    """One verdict over T2 (return by the deadline; no attempt at or after it; for gRPC, a
    ``grpc-timeout`` on every attempt within the time left).

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
    # the wire first: a gRPC call that sent no deadline is why it did not return in time
    return [_on_the_wire(tl, calls, policy), returned.verdict(), sent.verdict()]


def _on_the_wire(tl: Timeline, calls: list[Call], policy: DeadlinePolicy) -> Verdict:
    """T2 for gRPC: each attempt's ``grpc-timeout`` is at most the declared deadline minus
    the time since the call's first attempt, plus grpc-core's rounding; none sent is a
    finding. One-sided: time is counted from the first attempt the proxy saw (the client
    started its clock no later), so a correct client is never blamed for our latency."""
    check = PropertyCheck(ORACLE, T2_WIRE)
    tol = policy.tolerance
    for call in calls:
        grpc = [a for a in call.attempts if a.protocol == "grpc"]
        if not grpc:
            continue
        t0 = call.attempts[0].t_start
        for attempt in grpc:
            check.checked += 1
            if attempt.deadline is None:
                check.fail(
                    f"{call.name}: attempt {attempt.number} sent no grpc-timeout although the "
                    f"call's deadline is {secs(policy.deadline)}: no deadline sent, so under a "
                    f"black hole this call waits forever (the server cannot give up either)",
                    evidence_for(tl, call),
                    call=call.id,
                    attempt=attempt.number,
                )
                break
            left = policy.deadline - (attempt.t_start - t0)
            limit = left + abs(left) * GRPC_TIMEOUT_ROUNDING + GRPC_TIMEOUT_UNIT + tol.eps_late
            if attempt.deadline > limit:
                check.fail(
                    f"{call.name}: attempt {attempt.number} told the server grpc-timeout "
                    f"{secs(attempt.deadline)}, but only {secs(left)} of the "
                    f"{secs(policy.deadline)} deadline was left when it was sent (a per-attempt "
                    f"deadline must not outlive the call's)",
                    evidence_for(tl, call),
                    call=call.id,
                    attempt=attempt.number,
                    sent=attempt.deadline,
                    left=left,
                )
                break
    if check.checked == 0:
        check.vacuous_reason = "T2: no gRPC attempt (no grpc-timeout to read on the wire)"
    return check.verdict()
