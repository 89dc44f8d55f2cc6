"""Plan steps beyond toxics on a real pair: the proxy really refuses, the server really stalls,
dies and comes back on its address, calls run at their time, and leaving the runner undoes
everything even after an exception; minimize shortens and softens with a real predicate."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from faultlab.errors import TransportError, TransportTimeout
from faultlab.journal.timeline import index
from faultlab.lab import Lab
from faultlab.lab.pair import Pair
from faultlab.oracles import VirtualClock
from faultlab.strategies import FaultPlan, FaultStep, minimize


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """A binrpc server in its own process (so it can be paused and killed), behind a proxy."""
    with Lab(seed=11, backend="subprocess", client_timeout=2.0) as lab:
        yield lab.pair(protocol="binrpc", transport="tcp")


@pytest.fixture(autouse=True)
def healthy(pair: Pair) -> Iterator[None]:
    yield
    pair.clear_faults()  # a failing test must not leave the next one a broken pair
    pair.proxy.enable()


def add(pair: Pair, timeout: float = 1.0) -> int:
    """One call on a fresh connection (a cut connection stays cut)."""
    with pair.new_client(timeout=timeout) as client:
        result: int = client.add(2, 3)
        return result


def state(pair: Pair) -> tuple[bool, bool]:
    """(alive, paused) of the pair's server, read now."""
    return pair.server.alive, pair.server.paused


def actions_of(pair: Pair, since: int) -> list[str]:
    return [e["action"] for e in pair.events(kinds=["process"]) if e["seq"] >= since]


def last_seq(pair: Pair) -> int:
    events = pair.journal.events()
    return events[-1]["seq"] + 1 if events else 0


def test_a_disable_window_refuses_connections_then_lets_them_in(pair: Pair) -> None:
    clock = VirtualClock()
    since = last_seq(pair)
    plan = FaultPlan((FaultStep.disable(0.1, 0.2),), 0.5)
    with plan.runner(pair, clock=clock):
        assert add(pair) == 5
        clock.advance(0.15)
        with pytest.raises(TransportError):
            add(pair)
        clock.advance(0.2)
        assert add(pair) == 5
    kinds = [e["kind"] for e in pair.proxy.events() if e["kind"].startswith("proxy_")]
    assert kinds[-2:] == ["proxy_disabled", "proxy_enabled"]
    # the timeline (what oracles and reports read) has the disabled stretch as a fault window
    events = [e for e in pair.events() if e["seq"] >= since]
    (window,) = index(events).windows
    assert (window.kind, window.name) == ("proxy", f"disable {pair.proxy.name}")
    assert index(events).acted_between(window.start, window.end)


def test_a_pause_window_stalls_a_call_until_it_resumes(pair: Pair) -> None:
    since = last_seq(pair)
    plan = FaultPlan((FaultStep.pause(0.0, 0.4),), 0.5)
    with plan.runner(pair):  # real time: the runner's thread resumes the server at 0.4 s
        started = time.monotonic()
        assert state(pair) == (True, True)
        assert add(pair, timeout=3.0) == 5
        waited = time.monotonic() - started
    assert 0.3 <= waited < 2.5
    assert state(pair) == (True, False)
    assert actions_of(pair, since) == ["pause", "resume"]


def test_kill_then_restart_on_the_same_address(pair: Pair) -> None:
    clock = VirtualClock()
    address, pid = pair.server.address, pair.server.pid
    since = last_seq(pair)
    with FaultPlan((FaultStep.kill(0.1, 0.2),), 0.5).runner(pair, clock=clock):
        clock.advance(0.15)
        assert state(pair)[0] is False
        with pytest.raises(TransportError):
            add(pair, timeout=0.5)
        clock.advance(0.2)
        assert state(pair)[0] is True
        assert pair.server.address == address
        assert pair.server.pid != pid
        assert add(pair) == 5
    assert actions_of(pair, since) == ["kill", "restart"]


def test_call_steps_run_at_their_time_and_keep_their_outcome(pair: Pair) -> None:
    plan = FaultPlan(
        (
            FaultStep.call(0.0, "add"),
            FaultStep.disable(0.1, 0.2),
            FaultStep.call(0.15, "add"),
            FaultStep.call(0.35, "add"),
        ),
        0.5,
    )
    with plan.runner(pair, actions={"add": lambda: add(pair, timeout=0.5)}) as runner:
        time.sleep(0.5)
    outcomes = sorted(runner.calls, key=lambda c: c.index)
    assert [(c.index, c.ok, c.value) for c in outcomes] == [(0, True, 5), (2, False, None),
                                                             (3, True, 5)]  # fmt: skip
    assert isinstance(outcomes[1].error, TransportError)
    assert outcomes[2].at_s >= 0.35


def test_a_call_held_back_by_a_slow_restart_still_runs_before_the_runner_exits(
    pair: Pair,
) -> None:
    """The restart at 0.4 s takes a few hundred ms; the block ends at 0.6 s: the call due at
    0.5 s runs on exit (against the restarted server) instead of being dropped."""
    plan = FaultPlan((FaultStep.kill(0.1, 0.3), FaultStep.call(0.5, "add")), 0.6)
    with plan.runner(pair, actions={"add": lambda: add(pair)}) as runner:
        time.sleep(0.6)
    assert [(c.action, c.ok, c.value) for c in runner.calls] == [("add", True, 5)]
    assert runner.calls[0].at_s >= 0.5


def test_leaving_the_runner_on_an_exception_undoes_everything(pair: Pair) -> None:
    clock = VirtualClock()
    since = last_seq(pair)
    plan = FaultPlan(
        (
            FaultStep(0.0, "latency", attributes={"latency": 100}),
            FaultStep.disable(0.0),
            FaultStep.pause(0.0),
            FaultStep.sigterm(0.0),
        ),
        1.0,
    )
    seen: list[tuple[int, bool, bool, bool]] = []

    def workload() -> None:
        with plan.runner(pair, clock=clock):
            seen.append(
                (
                    len(pair.proxy.toxics()),
                    pair.proxy.info()["enabled"],
                    pair.server.paused,
                    pair.server.alive,
                )
            )
            raise RuntimeError("the workload failed mid-plan")

    with pytest.raises(RuntimeError, match="mid-plan"):
        workload()
    assert seen == [(1, False, True, False)]
    assert pair.proxy.toxics() == []
    assert pair.proxy.info()["enabled"] is True
    assert state(pair) == (True, False)
    assert add(pair) == 5
    assert actions_of(pair, since) == ["pause", "stop", "restart", "pause", "resume"]
    # the journal's timeline sees the SIGTERM's downtime as a process fault window, as a kill's
    windows = index([e for e in pair.events() if e["seq"] >= since]).windows
    assert sorted(w.type for w in windows if w.kind == "process") == ["pause", "stop"]
    assert [w.name for w in windows if w.kind == "proxy"] == [f"disable {pair.proxy.name}"]


def test_minimize_shortens_the_window_and_softens_the_latency_it_needs(pair: Pair) -> None:
    """The failure: a call made 0.5 s into the plan times out after 0.15 s."""

    def times_out_at_half(plan: FaultPlan) -> bool:
        clock = VirtualClock()
        with plan.runner(pair, clock=clock):
            clock.advance(0.5)
            try:
                add(pair, timeout=0.15)
            except TransportTimeout:
                return True
        return False

    harsh = FaultStep(0.0, "latency", "downstream", {"latency": 250, "jitter": 0}, 1.0)
    plan = FaultPlan((harsh,), 1.0)
    assert times_out_at_half(plan)
    (step,) = minimize(plan, times_out_at_half, max_runs=30).steps
    assert step.duration_s is not None
    assert step.duration_s < 0.1
    assert step.at_s <= 0.5 < step.end_s
    assert 50 <= step.attributes["latency"] < 250
