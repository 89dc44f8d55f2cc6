"""Run a client's workload through a real Lab pair under a fault plan, on a virtual clock.

One TCP pair (thread backend, binrpc) is reused for every Hypothesis
example: between examples the proxy's toxics are cleared and the counter is
reset, never the server. The Lab journals on a :class:`VirtualClock`, the
clients sleep on it and pybreaker/tenacity read it, so backoff and breaker
timeouts cost nothing while timeouts and latency toxics stay real.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import HealthCheck, Phase, settings

from examples.clients import FALLBACK
from faultlab.lab import Lab, Pair
from faultlab.oracles import (
    Tolerance,
    Verdict,
    VirtualClock,
    check_breaker,
    check_deadline,
    check_fallback,
    check_idempotency,
    check_retry,
    check_roundtrip_pairs,
)
from faultlab.strategies import FaultPlan, Num, fault_plans

TOLERANCE = Tolerance(eps_early=0.001, eps_late=0.15, late_ratio=0.1, typical_late=0.02)
"""Quality runs share a loaded 2-core box: eps_late wider than the default, eps_early as tight;
on the virtual clock a typical gap carries a millisecond or two of real processing (R6)."""

QUALITY = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)
SEARCH = settings(QUALITY, max_examples=40)

FAST_SHAPES: dict[str, dict[str, Any]] = {
    "latency": {"latency": Num(0, 100), "jitter": Num(0, 20)},
    "timeout": {"timeout": Num(1, 100, also=(0,))},
    "delay": {"delay_ms": Num(0, 100)},
    "slow_close": {"delay": Num(0, 100)},
    "slow_open": {"delay_ms": Num(0, 100)},
    "bandwidth": {"rate": Num(1, 100, "high")},
    "duplicate": {"delay_ms": Num(0, 20)},
    "reset_peer": {"timeout": Num(0, 40, "high")},
}
"""Real-time faults kept short so an example costs tens of milliseconds, not seconds."""
RETRY_TOXICS = (
    "rpc_error",
    "fail_first",
    "reset_peer",
    "limit_data",
    "latency",
    "timeout",
    "drop",
    "duplicate",
    "delay",
    "partition",
    "reorder",
    "slow_close",
    "slow_open",
    "bandwidth",
)
"""Everything but corruption and version skew: a flipped bit in an unchecked payload is a
protocol finding, not a client one."""


BREAKER_TOXICS = (
    "rpc_error",
    "fail_first",
    "reset_peer",
    "limit_data",
    "timeout",
    "partition",
    "drop",
    "latency",
)
"""Faults that make calls fail: a breaker is only exercised by runs of failures."""
SEARCH_TOXICS = ("rpc_error", "fail_first", "reset_peer", "limit_data", "timeout", "latency")
"""What the corpus search draws from: faults that fail calls quickly, so a search stays short."""
DEADLINE_TOXICS = ("timeout", "partition", "latency", "rpc_error", "reset_peer")
"""Black holes and slow links; no probabilistic drops, so a found plan replays the same."""


def plans(
    max_faults: int = 3,
    duration: float = 3.0,
    *,
    allow: Sequence[str] = RETRY_TOXICS,
    min_faults: int = 1,
    toxicity: float | None = None,
    quantum: float = 0.05,
    min_duration: float | None = None,
) -> Any:
    return fault_plans(
        max_faults,
        duration,
        min_faults=min_faults,
        allow=allow,
        protocol="binrpc",
        shapes=FAST_SHAPES,
        quantum=quantum,
        min_duration=quantum if min_duration is None else min_duration,
        toxicity=toxicity,
    )


@dataclass
class Env:
    lab: Lab
    pair: Pair
    clock: VirtualClock
    examples: int = 0
    seconds: float = 0.0
    vacuous: dict[str, int] = field(default_factory=dict)
    checked: dict[str, int] = field(default_factory=dict)


def make_env(seed: int = 20240611) -> Env:
    clock = VirtualClock()
    lab = Lab(seed=seed, journal=clock.journal(), client_timeout=2.0)
    pair = lab.pair("faultlab.examples.calc:Calc", protocol="binrpc", transport="tcp")
    return Env(lab, pair, clock)


# ---- workloads ---------------------------------------------------------------------------------
Step = Callable[[Env, Any, list[tuple[Any, Any, int]]], None]
MISSING = object()


def call(
    label: str,
    fn: Callable[[Any], Any],
    *,
    method: str,
    idempotent: bool = True,
    echo: Any = MISSING,
    think: float = 0.1,
) -> Step:
    """One logical call (errors are journaled, not raised), then ``think`` s of virtual time."""

    def run(env: Env, client: Any, exchanges: list[tuple[Any, Any, int]]) -> None:
        try:
            with env.pair.logical_call(label, method=method, idempotent=idempotent) as record:
                value = fn(client)
                record.value = value
            if echo is not MISSING and value != FALLBACK:
                exchanges.append((echo, value, record.call))
        except Exception:
            pass
        if think:
            env.clock.advance(think)

    return run


def wait(seconds: float) -> Step:
    def run(env: Env, client: Any, exchanges: list[tuple[Any, Any, int]]) -> None:
        env.clock.advance(seconds)

    return run


def burst(n: int, ms: int = 20, *, think: float = 0.1) -> Step:
    """``n`` concurrent slow calls released together (what a half-open breaker must ration)."""

    def run(env: Env, client: Any, exchanges: list[tuple[Any, Any, int]]) -> None:
        barrier = threading.Barrier(n)
        step = call("burst", lambda c: c.slow(ms), method="sleep", think=0)

        def worker() -> None:
            barrier.wait(timeout=5)
            step(env, client, exchanges)

        threads = [threading.Thread(target=worker) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        env.clock.advance(think)

    return run


RETRY_WORKLOAD: list[Step] = [
    call("add", lambda c: c.add(1, 2), method="add", think=0.3),
    call("incr", lambda c: c.incr(1), method="counter.incr", idempotent=False, think=0.3),
    call("echo", lambda c: c.echo("abc"), method="echo", echo="abc", think=0.3),
    call("add-zero", lambda c: c.add(2, -2), method="add", think=0.3),
    call("div", lambda c: c.div(6, 3), method="div", think=0.3),
    call("div-zero", lambda c: c.div(1, 0), method="div", think=0.3),
    call("incr", lambda c: c.incr(2), method="counter.incr", idempotent=False, think=0.3),
    call("echo", lambda c: c.echo([1, "x", 2.5]), method="echo", echo=[1, "x", 2.5], think=0.3),
    call("add", lambda c: c.add(3, 4), method="add", think=0.3),
    call("incr", lambda c: c.incr(3), method="counter.incr", idempotent=False, think=0.3),
]
BREAKER_WORKLOAD: list[Step] = [
    call("add", lambda c: c.add(1, 2), method="add"),
    call("add", lambda c: c.add(2, 3), method="add"),
    call("echo", lambda c: c.echo("abc"), method="echo", echo="abc"),
    call("add", lambda c: c.add(3, 4), method="add"),
    call("div-zero", lambda c: c.div(1, 0), method="div"),
    call("add-zero", lambda c: c.add(2, -2), method="add"),
    call("add", lambda c: c.add(4, 5), method="add"),
    wait(0.3),
    call("add", lambda c: c.add(5, 6), method="add"),
    burst(3),
    call("add", lambda c: c.add(6, 7), method="add"),
    wait(0.6),
    burst(3),
    call("echo", lambda c: c.echo("def"), method="echo", echo="def"),
    call("add", lambda c: c.add(7, 8), method="add"),
    call("add", lambda c: c.add(8, 9), method="add"),
    wait(0.6),
    call("add", lambda c: c.add(9, 10), method="add"),
    call("add", lambda c: c.add(10, 11), method="add"),
]
DEADLINE_WORKLOAD: list[Step] = [
    call("add", lambda c: c.add(1, 2), method="add", think=0.3),
    call("echo", lambda c: c.echo("abc"), method="echo", echo="abc", think=0.3),
    call("add", lambda c: c.add(3, 4), method="add", think=0.3),
    call("incr", lambda c: c.incr(1), method="counter.incr", idempotent=False, think=0.3),
]


# ---- one run -----------------------------------------------------------------------------------
@dataclass
class Run:
    plan: FaultPlan
    events: list[dict[str, Any]]
    exchanges: list[tuple[Any, Any, int]]


def run(env: Env, client: Any, workload: Sequence[Step], plan: FaultPlan) -> Run:
    """Reset, apply ``plan`` on the clock while the workload runs, return the journal excerpt."""
    pair = env.pair
    pair.clear_faults()
    pair.client.close()  # every run starts on a fresh connection: per-connection faults repeat
    with pair.direct_client() as direct:
        direct.call("counter.reset")
    since = len(pair.journal) and pair.journal.events()[-1]["seq"] + 1
    exchanges: list[tuple[Any, Any, int]] = []
    started = time.monotonic()
    runner = plan.runner(pair.proxy, clock=env.clock)
    with env.clock.patch_all(), runner:
        for step in workload:
            runner.sync()
            step(env, client, exchanges)
    pair.clear_faults()
    env.examples += 1
    env.seconds += time.monotonic() - started
    return Run(plan, pair.journal.events(since=since), exchanges)


def verdicts(result: Run, policies: dict[str, Any]) -> dict[str, Verdict]:
    """Every oracle the client's declared policies call for, plus the round-trip of echoes."""
    events = result.events
    policies = {name: replace(p, tolerance=TOLERANCE) for name, p in policies.items()}
    found: dict[str, Verdict] = {}
    if "retry" in policies:
        found["retry"] = check_retry(events, policies["retry"])
        found["idempotency"] = check_idempotency(events, policies["retry"])
    if "breaker" in policies:
        found["breaker"] = check_breaker(
            events, policies["breaker"], fallback=policies.get("fallback")
        )
    if "fallback" in policies:
        found["fallback"] = check_fallback(events, policies["fallback"])
    if "deadline" in policies:
        found["deadline"] = check_deadline(events, policies["deadline"])
    found["roundtrip"] = check_roundtrip_pairs(result.exchanges, source=events)
    return found
