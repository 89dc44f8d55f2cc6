"""Strategies: valid toxics from the registry, plans that shrink toward mild, replay, runners."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from faultlab.codecs import UnknownCodec
from faultlab.journal import Journal
from faultlab.oracles import VirtualClock
from faultlab.proxy.engine import ProxyEngine, ProxyHandle
from faultlab.rpc.messages import Request
from faultlab.rpc.service import Service
from faultlab.strategies import (
    PLAN_ENV,
    FaultPlan,
    FaultStep,
    ToxicSpec,
    calls,
    fault_plans,
    minimize,
    toxics,
    values,
)
from faultlab.toxics import InvalidToxic, get_toxic_class

FEW = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
QUIET = settings(database=None, max_examples=200, deadline=None, derandomize=True)


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyHandle]:
    """A framed binrpc proxy whose upstream is never dialled (adding toxics needs no traffic)."""
    engine = ProxyEngine(seed=1, journal=Journal())
    try:
        yield engine.create(
            "strategies", upstream="tcp://127.0.0.1:9", framing="length-prefix", protocol="binrpc"
        )
    finally:
        engine.close()


def test_every_drawn_toxic_is_accepted_by_a_real_proxy(proxy: ProxyHandle) -> None:
    seen: set[str] = set()

    @FEW
    @given(toxics(protocol="binrpc"))
    def accepted(spec: ToxicSpec) -> None:
        seen.add(spec.type)
        spec.add_to(proxy, name="t")
        proxy.remove_toxic("t")

    accepted()
    assert len(seen) >= 5


def test_allow_deny_and_framing() -> None:
    @FEW
    @given(toxics(allow=["latency", "timeout"], streams=["upstream"]))
    def only_allowed(spec: ToxicSpec) -> None:
        assert spec.type in {"latency", "timeout"}
        assert spec.stream == "upstream"

    only_allowed()
    with pytest.raises(InvalidToxic, match="unknown toxic"):
        toxics(allow=["no_such_toxic"])

    @FEW
    @given(toxics(framing=None))
    def no_frame_toxics_on_raw_bytes(spec: ToxicSpec) -> None:
        assert not get_toxic_class(spec.type).needs_frames
        assert spec.type not in {"rpc_error", "version_skew"}  # no protocol given

    no_frame_toxics_on_raw_bytes()


@pytest.mark.parametrize(
    ("toxic", "mildest"),
    [
        ("latency", {"latency": 0, "jitter": 0}),
        ("limit_data", {"bytes": 256}),
        ("bandwidth", {"rate": 1000}),
        ("timeout", {"timeout": 1}),
        ("reset_peer", {"timeout": 500}),
    ],
)
def test_toxics_shrink_toward_milder(toxic: str, mildest: dict[str, int]) -> None:
    spec = find(toxics(allow=[toxic]), lambda s: True, settings=QUIET)
    assert dict(spec.attributes) == mildest
    assert spec.toxicity == 0.25  # the lowest probability drawn
    assert spec.stream == "downstream"


def test_shrinking_keeps_what_the_failure_needs() -> None:
    spec = find(toxics(allow=["latency"]), lambda s: s.attributes["latency"] >= 120, settings=QUIET)
    assert spec.attributes["latency"] == 120


def test_plans_shrink_toward_fewer_shorter_earlier_faults() -> None:
    plan = find(fault_plans(max_faults=3, duration=2.0), lambda p: len(p) >= 2, settings=QUIET)
    assert len(plan) == 2
    assert all(step.at_s == 0.0 and step.duration_s == 0.02 for step in plan)
    needs_long = lambda p: any((s.duration_s or 0) >= 0.5 for s in p)  # noqa: E731
    long_one = minimize(
        find(fault_plans(max_faults=3, duration=2.0), needs_long, settings=QUIET), needs_long
    )
    assert len(long_one) == 1
    assert long_one.steps[0].duration_s == 0.5


@FEW
@given(fault_plans(max_faults=4, duration=1.0, targets=["a", "b"], open_ended=True))
def test_plans_are_well_formed_and_round_trip_as_json(plan: FaultPlan) -> None:
    assert 1 <= len(plan) <= 4
    assert [s.at_s for s in plan] == sorted(s.at_s for s in plan)
    for step in plan:
        assert 0 <= step.at_s <= 1.0
        assert step.target in {"a", "b"}
        assert step.duration_s is None or step.duration_s >= 0.02
    assert FaultPlan.from_json(plan.to_json()) == plan
    assert FaultPlan.from_json(plan.dumps()) == plan


def test_replay_command_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = FaultPlan((FaultStep(0.1, "latency", "upstream", {"latency": 50}, 0.2),), 1.0)
    command = plan.replay_command(1234, "tests/x.py::test_y")
    assert command.startswith(f"{PLAN_ENV}='")
    assert command.endswith("pytest tests/x.py::test_y --faultlab-seed=1234")
    monkeypatch.setenv(PLAN_ENV, plan.dumps())
    assert find(fault_plans(), lambda p: True, settings=QUIET) == plan
    assert "0.100-0.300 s: latency upstream latency=50" in plan.describe()


def test_minimize_drops_needless_faults_and_shortens_windows() -> None:
    needed = FaultStep(0.0, "timeout", "downstream", {"timeout": 0}, 0.8)
    noise = FaultStep(0.1, "latency", "upstream", {"latency": 5}, 0.3)
    plan = FaultPlan((noise, needed, noise), 1.0)
    smaller = minimize(
        plan, lambda p: any(s.toxic == "timeout" and (s.duration_s or 0) >= 0.2 for s in p)
    )
    # the timeout's attribute does not matter to this predicate: softened too; the toxicity
    # stays (a plan below toxicity 1 is a coin toss) unless asked for
    assert smaller.steps == (FaultStep(0.0, "timeout", "downstream", {"timeout": 1}, 0.2, 1.0),)
    lowered = minimize(
        plan,
        lambda p: any(s.toxic == "timeout" and (s.duration_s or 0) >= 0.2 for s in p),
        lower_toxicity=True,
    )
    assert lowered.steps[0].toxicity == 0.25


def test_runner_follows_a_virtual_clock(proxy: ProxyHandle) -> None:
    clock = VirtualClock()
    plan = FaultPlan(
        (
            FaultStep(0.0, "latency", "downstream", {"latency": 10}, 1.0),
            FaultStep(0.5, "timeout", "upstream", {"timeout": 0}, None),
        ),
        2.0,
    )

    def active() -> set[str]:
        return {t["type"] for t in proxy.toxics()}

    with plan.runner(proxy, clock=clock) as runner:
        assert active() == {"latency"}
        clock.advance(0.6)
        assert active() == {"latency", "timeout"}
        clock.advance(0.6)
        assert active() == {"timeout"}
        assert runner.next_boundary() is None
    assert active() == set()


def test_runner_follows_real_time(proxy: ProxyHandle) -> None:
    plan = FaultPlan((FaultStep(0.05, "latency", "downstream", {"latency": 1}, 0.1),), 0.2)
    with plan.runner(proxy):
        assert proxy.toxics() == []
        deadline = time.monotonic() + 2
        while not proxy.toxics() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [t["type"] for t in proxy.toxics()] == ["latency"]
        while proxy.toxics() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.toxics() == []


def test_calls_from_type_hints_bind() -> None:
    from faultlab.examples.calc import Calc

    service = Service(Calc())

    @FEW
    @given(calls(Calc, exclude=["sleep"], overrides={"div": {"b": st.integers(1, 9)}}))
    def binds(call: tuple[str, tuple[object, ...]]) -> None:
        method, args = call
        assert method != "sleep"
        reply = service.dispatch(Request(method, list(args), 1))
        assert reply.error is None or reply.error.kind == "application_error", reply.error

    binds()
    with pytest.raises(ValueError, match="no method"):
        calls(Calc, methods=["nope"])
    assert find(
        calls("faultlab.examples.calc:Calc", methods=["add"]), lambda c: True, settings=QUIET
    ) == (
        "add",
        (0, 0),
    )


def test_values_are_the_codec_domain() -> None:
    @FEW
    @given(values("binrpc"))
    def msgpack_values(value: object) -> None:
        from faultlab.codecs import get_codec, same

        codec = get_codec("msgpack")
        assert same(codec.decode(codec.encode(value)), value)

    msgpack_values()
    with pytest.raises(UnknownCodec, match="no codec or protocol"):
        values("nope")
