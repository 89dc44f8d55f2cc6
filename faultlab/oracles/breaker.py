"""Circuit-breaker oracle: replay the journal through a reference breaker and compare (§3.4).

The reference is a consecutive-failure breaker with pybreaker's rules
(:class:`BreakerPolicy`). Traffic that reached the server is seen as
attempts; a call that ended without a single attempt was rejected by the
breaker. Walking both in time order, the model says at every moment whether
a request was allowed, and each disagreement is named after the property it
breaks:

- C1 trip point: after ``fail_max`` consecutive failures the next request was
  still sent (the breaker never opened);
- C2 no early trip: a call was rejected while the model was closed;
- C4 open isolation: a request reached the server while open, after the
  breaker had already rejected calls in this open period;
- C5 open duration: the probe came before ``reset_timeout``, or calls were
  still rejected well after it (a lazy breaker admits the next call);
- C6 half-open admission: more requests in flight than ``half_open_max``
  while a probe was pending;
- C7 half-open exit: a failed probe did not re-open, or a successful one did
  not close (calls still rejected after it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faultlab.journal.timeline import Call, Source, Timeline, timeline
from faultlab.oracles._common import PropertyCheck, evidence_for, secs
from faultlab.oracles.fallback import fell_back
from faultlab.oracles.policies import BreakerPolicy, FallbackPolicy
from faultlab.oracles.verdict import Verdict, combine

__all__ = ["breaker_checks", "check_breaker"]

ORACLE = "breaker"
C1 = "C1 trip point"
C2 = "C2 no early trip"
C4 = "C4 open isolation"
C5 = "C5 open duration"
C6 = "C6 half-open admission"
C7 = "C7 half-open exit"
PROPERTIES = (C1, C2, C4, C5, C6, C7)


@dataclass
class _Unit:
    """One request the breaker guarded (an attempt, or a whole call with scope="call")."""

    call: Call
    t_start: float
    t_end: float | None
    failed: bool
    counted: bool
    label: str
    phase: str = ""


@dataclass
class _Model:
    policy: BreakerPolicy
    state: str = "closed"
    counter: int = 0
    t_open: float = 0.0
    cause: str = ""
    rejected_in_episode: int = 0
    half_in_flight: int = 0
    half_successes: int = 0
    closed_by_probe: bool = False
    trips: int = 0
    rejections: int = 0
    max_consecutive: int = 0
    recent: deque[Call] = field(default_factory=lambda: deque(maxlen=8))
    knew_open: bool = False
    """Some call of this open period reached the server yet was answered as rejected."""
    leaks: list[tuple[_Unit, float, float, list[dict[str, Any]], int]] = field(default_factory=list)

    def open(self, t: float, cause: str) -> None:
        self.state, self.t_open, self.cause = "open", t, cause
        self.rejected_in_episode = 0
        self.knew_open = False
        self.half_in_flight = 0
        self.half_successes = 0
        if cause != "resync":
            self.trips += 1

    def close(self) -> None:
        self.state, self.counter = "closed", 0
        self.closed_by_probe = True


def check_breaker(
    source: Source | Timeline,
    policy: BreakerPolicy,
    *,
    where: Callable[[Call], bool] | None = None,
    fallback: FallbackPolicy | None = None,
) -> Verdict:
    """One verdict over C1 C2 C4 C5 C6 C7 (``where`` selects the calls behind this breaker).

    Give the ``fallback`` policy when a fallback answers rejected calls: a call
    that reached the server yet came back as the fallback after a success
    tells the breaker thought it was open (C4, fabfuel PR #13).

    Vacuous when the reference breaker never opened and nothing was
    rejected: the faults never produced ``fail_max`` consecutive failures.
    """
    checks, model = _run(timeline(source), policy, where, fallback)
    vacuous = model.trips == 0 and model.rejections == 0
    # the earliest disagreement with the reference is the root cause; later ones may follow it
    ordered = sorted(checks, key=lambda v: (v.passed, v.details.get("t", 0.0)))
    verdict = combine(ORACLE, ordered, vacuous=vacuous)
    if verdict.passed:
        if vacuous:
            message = (
                f"breaker ({policy.describe()}) held, vacuously: the longest run of "
                f"consecutive failures was {model.max_consecutive}, so it never had to open"
            )
        else:
            message = (
                f"breaker ({policy.describe()}) held: the reference opened {model.trips} "
                f"time(s) and the client rejected {model.rejections} call(s) as expected"
            )
        verdict = Verdict(ORACLE, verdict.property, True, vacuous, message, [], verdict.details)
    return verdict


def breaker_checks(
    source: Source | Timeline,
    policy: BreakerPolicy,
    *,
    where: Callable[[Call], bool] | None = None,
    fallback: FallbackPolicy | None = None,
) -> list[Verdict]:
    return _run(timeline(source), policy, where, fallback)[0]


def _answered_as_open(call: Call, policy: BreakerPolicy, fallback: FallbackPolicy | None) -> bool:
    """The client answered this call as a rejection (its error, or the fallback) yet sent it."""
    if call.outcome == "error" and call.error_kind in policy.rejection_kinds:
        last = call.last
        return last is None or last.error_kind != call.error_kind
    if fallback is None or not fell_back(call, fallback):
        return False
    last = call.last
    return last is not None and last.ok


def _units(
    tl: Timeline, policy: BreakerPolicy, where: Callable[[Call], bool] | None
) -> tuple[list[_Unit], list[Call]]:
    units: list[_Unit] = []
    rejected: list[Call] = []
    for call in tl.calls:
        if where is not None and not where(call):
            continue
        if call.rejected:
            rejected.append(call)
            continue
        if policy.scope == "call":
            last = call.attempts[-1] if call.attempts else None
            if last is None:
                continue
            units.append(
                _Unit(
                    call,
                    call.attempts[0].t_start,
                    last.t_end,
                    last.failed,
                    last.failed and policy.counts(last.error_kind),
                    call.name,
                )
            )
            continue
        for a in call.attempts:
            units.append(
                _Unit(
                    call,
                    a.t_start,
                    a.t_end,
                    a.failed,
                    a.failed and policy.counts(a.error_kind),
                    f"{call.name} attempt {a.number}",
                )
            )
    return units, rejected


def _run(
    tl: Timeline,
    policy: BreakerPolicy,
    where: Callable[[Call], bool] | None,
    fallback: FallbackPolicy | None,
) -> tuple[list[Verdict], _Model]:
    checks = {name: PropertyCheck(ORACLE, name) for name in PROPERTIES}
    units, rejected = _units(tl, policy, where)
    tol = policy.tolerance
    # (time, order, action, payload): ends before starts at the same instant
    timeline_items: list[tuple[float, int, str, object]] = []
    for unit in units:
        timeline_items.append((unit.t_start, 1, "start", unit))
        if unit.t_end is not None:
            timeline_items.append((unit.t_end, 0, "end", unit))
    for call in rejected:
        # judged when the breaker answered (the call may have queued behind another first)
        t_decided = call.t_end if call.t_end is not None else call.t_start
        timeline_items.append((t_decided, 2, "reject", call))
    timeline_items.sort(key=lambda item: (item[0], item[1]))
    m = _Model(policy)

    def evidence(*calls: Call) -> list[dict[str, object]]:
        return evidence_for(tl, *dict.fromkeys([*m.recent, *calls]))

    def flush_leaks() -> None:
        """Name the leaks of the open period that ends: did the client know it was open?"""
        for unit, waited, t_leak, items, rejected_before in m.leaks:
            if rejected_before or m.knew_open:
                how = (
                    f"it had already rejected {rejected_before} call(s) in this open period"
                    if rejected_before
                    else "the client answered calls in this open period as rejected"
                )
                name, text = (
                    C4,
                    (
                        f"{unit.label} reached the server {secs(waited)} after the breaker opened "
                        f"({how}); while open no request may pass before "
                        f"{secs(policy.reset_timeout)}"
                    ),
                )
            elif m.cause == "probe":
                name, text = (
                    C7,
                    (
                        f"{unit.label} was sent {secs(waited)} after a failed half-open probe; a "
                        f"failed probe must re-open the breaker for {secs(policy.reset_timeout)}"
                    ),
                )
            else:
                name, text = (
                    C1,
                    (
                        f"{unit.label} was sent {secs(waited)} after the breaker should have "
                        f"opened ({policy.fail_max} consecutive failures reached, "
                        f"reset_timeout {secs(policy.reset_timeout)}): the breaker did not open"
                    ),
                )
            checks[name].checked += 1
            checks[name].fail(text, items, call=unit.call.id, t=t_leak)
        m.leaks.clear()

    def open_(t: float, cause: str) -> None:
        flush_leaks()
        m.open(t, cause)

    for t, _, action, payload in timeline_items:
        if action == "start":
            assert isinstance(payload, _Unit)
            unit = payload
            m.recent.append(unit.call)
            if m.state == "closed":
                unit.phase = "closed"
                checks[C2].checked += 1
                continue
            if m.state == "open":
                waited = t - m.t_open
                if waited >= tol.early(policy.reset_timeout):
                    flush_leaks()
                    m.state = "half_open"
                    m.half_in_flight = 1
                    unit.phase = "probe"
                    checks[C5].checked += 1
                    continue
                unit.phase = "leak"
                if _answered_as_open(unit.call, policy, fallback):
                    m.knew_open = True
                m.leaks.append((unit, waited, t, evidence(unit.call), m.rejected_in_episode))
                continue
            # half-open
            checks[C6].checked += 1
            if m.half_in_flight >= policy.half_open_max:
                unit.phase = "flood"
                checks[C6].fail(
                    f"{unit.label} was sent while the breaker was half-open with "
                    f"{m.half_in_flight} probe(s) still in flight; at most "
                    f"{policy.half_open_max} request(s) may pass until the probe's result",
                    evidence(unit.call),
                    call=unit.call.id,
                    t=t,
                )
                continue
            m.half_in_flight += 1
            unit.phase = "probe"
        elif action == "end":
            assert isinstance(payload, _Unit)
            unit = payload
            if unit.phase == "closed":
                if m.state != "closed":
                    continue  # a late outcome: cannot change an open breaker (C9)
                if unit.counted:
                    m.counter += 1
                    m.max_consecutive = max(m.max_consecutive, m.counter)
                    m.closed_by_probe = False
                    if m.counter >= policy.fail_max:
                        open_(t, "trip")
                else:
                    m.counter = 0
                    m.closed_by_probe = False
            elif unit.phase == "probe" and m.state == "half_open":
                m.half_in_flight = max(0, m.half_in_flight - 1)
                if unit.counted:
                    open_(t, "probe")
                else:
                    m.half_successes += 1
                    if m.half_successes >= policy.success_threshold:
                        m.close()
        else:
            assert isinstance(payload, Call)
            call = payload
            m.recent.append(call)
            m.rejections += 1
            if m.state == "closed":
                name = C7 if m.closed_by_probe else C2
                checks[name].checked += 1
                if m.closed_by_probe:
                    text = (
                        f"{call.name} was rejected after a successful half-open probe; a "
                        f"successful probe must close the breaker"
                    )
                else:
                    text = (
                        f"{call.name} was rejected although only {m.counter} consecutive "
                        f"failure(s) had happened (the breaker opens after {policy.fail_max})"
                    )
                checks[name].fail(text, evidence(call), call=call.id, t=t)
                open_(t, "resync")  # the client is evidently open: judge what follows from here
                m.rejected_in_episode = 1
                continue
            if m.state == "open":
                waited = t - m.t_open
                checks[C5].checked += 1
                if waited > tol.late(policy.reset_timeout):
                    checks[C5].fail(
                        f"{call.name} was rejected {secs(waited)} after the breaker opened; "
                        f"after reset_timeout {secs(policy.reset_timeout)} the next call must "
                        f"be let through as a probe (the breaker never half-opens)",
                        evidence(call),
                        call=call.id,
                        waited=waited,
                        t=t,
                    )
                    open_(t, "resync")
                m.rejected_in_episode += 1
                continue
            # half-open: rejecting while a probe is pending is right; with none pending it is not
            checks[C7].checked += 1
            if m.half_in_flight == 0:
                checks[C7].fail(
                    f"{call.name} was rejected while half-open with no probe in flight "
                    f"({m.half_successes} of {policy.success_threshold} probe successes so far); "
                    f"the breaker must keep probing",
                    evidence(call),
                    call=call.id,
                    t=t,
                )
    flush_leaks()
    return [checks[name].verdict() for name in PROPERTIES], m
