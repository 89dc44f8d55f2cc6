"""``run_hostile``: the canary keeps calling while each attack runs in turn; all journaled.

Phases: a baseline (the canary alone, RSS measured), each attack (``hostile_attack``
start and end events, with its counts and the server's answers), a cool-down, then one
last canary call as the liveness probe. Every socket is closed and every thread joined on
the way out, also when an attack raises or the run is interrupted (Ctrl-C).
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faultlab.journal import schema as ev
from faultlab.suites.hostile._net import HostileError, parse_target
from faultlab.suites.hostile.base import Attack, AttackContext, AttackReport
from faultlab.suites.hostile.canary import Canary, CanaryCall
from faultlab.suites.hostile.config import HostileBudget, HostileLimits
from faultlab.suites.hostile.flood import FLOOD
from faultlab.suites.hostile.h2_abuse import H2_CONTINUATION, H2_RAPID_RESET
from faultlab.suites.hostile.half_open import HALF_OPEN
from faultlab.suites.hostile.malformed import MALFORMED
from faultlab.suites.hostile.oversized import OVERSIZED
from faultlab.suites.hostile.rss import RssSampler, rss_bytes
from faultlab.suites.hostile.slow_read import SLOW_READ
from faultlab.suites.hostile.slowloris import SLOWLORIS
from faultlab.suites.hostile.wire import wire_for

__all__ = ["ATTACKS", "HostileResult", "run_hostile"]

ATTACKS: dict[str, Attack] = {
    a.name: a
    for a in (
        SLOWLORIS,
        SLOW_READ,
        OVERSIZED,
        MALFORMED,
        FLOOD,
        HALF_OPEN,
        H2_RAPID_RESET,
        H2_CONTINUATION,
    )
}
"""Every attack by name, in the order a run makes them."""

_runs = itertools.count(1)


class _Recorder:
    """Where the events go: the caller's journal, or a private one."""

    def __init__(self, journal: Any) -> None:
        if journal is None:
            from faultlab.journal.store import Journal

            journal = Journal()
        self.journal = journal
        # journal times are seconds since its origin; canary and RSS samples are monotonic
        self.offset = time.monotonic() - journal.now()

    def record(self, kind: str, *, at: float | None = None, **fields: Any) -> dict[str, Any]:
        if at is not None:
            fields["t"] = at - self.offset
        event: dict[str, Any] = self.journal.record(kind, **fields)
        return event


@dataclass
class HostileResult:
    """One run: what was attacked (``target``, ``protocol``, ``seed``, the server's ``pid``
    when known), the ``budget`` it is judged against by default, and the run's journal
    events (what :func:`check_hostile` and the report read)."""

    run: str
    target: str
    protocol: str
    seed: int
    pid: int | None
    budget: HostileBudget
    events: list[dict[str, Any]] = field(default_factory=list)

    def canary_calls(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == ev.HOSTILE_CANARY]

    def attacks(self) -> list[dict[str, Any]]:
        return [
            e for e in self.events if e["kind"] == ev.HOSTILE_ATTACK and e.get("phase") == "end"
        ]


def _choose(attacks: Iterable[str] | None) -> list[Attack]:
    if attacks is None:
        return list(ATTACKS.values())
    chosen = []
    for name in attacks:
        if name not in ATTACKS:
            raise HostileError(f"unknown hostile attack {name!r}; known: {', '.join(ATTACKS)}")
        chosen.append(ATTACKS[name])
    return chosen


def run_hostile(
    target: str,
    *,
    protocol: str,
    canary: Callable[[], object],
    budget: HostileBudget | None = None,
    limits: HostileLimits | None = None,
    attacks: Sequence[str] | None = None,
    seed: int = 0,
    pid: int | None = None,
    journal: Any = None,
    framing: str | None = None,
    path: str | None = None,
    canary_interval: float = 0.02,
    allow_remote: bool = False,
    log: Callable[[str], None] | None = None,
) -> HostileResult:
    """Attack the server at ``target`` (``host:port``, ``tcp://`` or ``http://``; loopback
    only unless ``allow_remote``) while ``canary`` (one call, raising on failure, with its
    own timeout) keeps calling it. ``protocol`` is what it speaks (``http`` for a plain HTTP
    service, or a faultlab protocol name); ``pid`` is the server's process, for the RSS
    property; ``attacks`` picks from :data:`ATTACKS` (default: all); ``seed`` draws the
    malformed inputs (printed, so a run can be replayed). Events go to ``journal`` (a
    :class:`~faultlab.journal.Journal`, e.g. ``lab.journal``) or a private one."""
    endpoint = parse_target(target, allow_remote=allow_remote)
    wire = wire_for(protocol, framing=framing, path=path)
    chosen = _choose(attacks)
    budget = budget or HostileBudget()
    limits = limits or HostileLimits()
    rec = _Recorder(journal)
    run_id = f"hostile-{os.getpid()}-{next(_runs)}"
    say = log or (lambda text: print(text, file=sys.stderr))
    say(f"faultlab hostile: {endpoint} ({protocol}, {wire.kind}) seed={seed}")
    first = rec.record(
        ev.HOSTILE_RUN,
        run=run_id,
        phase="start",
        target=str(endpoint),
        protocol=protocol,
        wire=wire.kind,
        seed=seed,
        pid=pid,
        attacks=[a.name for a in chosen],
        budget=budget.to_json(),
        limits=limits.to_json(),
    )

    def on_call(call: CanaryCall) -> None:
        rec.record(
            ev.HOSTILE_CANARY,
            at=call.start,
            run=run_id,
            latency=call.latency,
            ok=call.ok,
            error=call.error or None,
        )

    def on_rss(when: float, value: int, main: int, hwm: int) -> None:
        rec.record(ev.HOSTILE_RSS, at=when, run=run_id, pid=pid, rss=value, main=main, hwm=hwm)

    ctx = AttackContext(endpoint, wire, limits, rng=_rng(seed), seed=seed)
    sampler = RssSampler(pid, on_sample=on_rss) if pid is not None else None
    worker = Canary(canary, interval=canary_interval, on_call=on_call)
    try:
        if sampler is not None:
            sampler.start()
        worker.start()
        ctx.wait(limits.baseline)
        for attack in chosen:
            _one(attack, ctx, rec, run_id, say)
        ctx.wait(limits.cooldown)
    finally:
        ctx.stop.set()
        worker.stop()
        if sampler is not None:
            sampler.stop()
    probe = worker.once()
    alive = None if pid is None else rss_bytes(pid) is not None and _running(pid)
    rec.record(
        ev.HOSTILE_PROBE,
        at=probe.start,
        run=run_id,
        ok=probe.ok,
        latency=probe.latency,
        error=probe.error or None,
        alive=alive,
    )
    rec.record(ev.HOSTILE_RUN, run=run_id, phase="end")
    events = [e for e in rec.journal.events(since=first["seq"]) if e.get("run") == run_id]
    return HostileResult(run_id, str(endpoint), protocol, seed, pid, budget, events)


def _one(attack: Attack, ctx: AttackContext, rec: _Recorder, run_id: str, say: Any) -> None:
    rec.record(
        ev.HOSTILE_ATTACK, run=run_id, attack=attack.name, phase="start", bad_input=attack.bad_input
    )
    error = None
    report = AttackReport()
    ctx.until = time.monotonic() + ctx.limits.attack_timeout
    try:
        report = attack.run(ctx)
    except (OSError, HostileError) as exc:  # the attack itself failed: say so, go on
        error = f"{type(exc).__name__}: {exc}"
    rec.record(
        ev.HOSTILE_ATTACK,
        run=run_id,
        attack=attack.name,
        phase="end",
        bad_input=attack.bad_input,
        counts=dict(report.counts),
        answers=dict(report.answers),
        samples=report.samples,
        error=error,
    )
    answers = ", ".join(f"{k}={v}" for k, v in sorted(report.answers.items()))
    say(f"  {attack.name}: {answers or 'no answers'}{f' ({error})' if error else ''}")


def _rng(seed: int) -> Any:
    from faultlab import _seed

    return _seed.derive(seed, "hostile")


def _running(pid: int) -> bool:
    """Alive and not a zombie (a crashed child not yet reaped still has a /proc entry)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
