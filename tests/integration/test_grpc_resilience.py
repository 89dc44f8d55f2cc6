"""grpcio's own retry, pushback and deadline behaviour, judged from the proxy's wire.

Unmodified grpcio channels (retries from a ``grpc.service_config``) call the calc service
through a ``protocol="grpc"`` proxy; faults are trailers-only gRPC statuses the proxy
answers (``rpc_error``), latency and a black hole. The policy the oracles judge against is
read from the same service config (:meth:`RetryPolicy.from_grpc_service_config`): a correct
config passes over seeded fault plans, and each wrong one is caught with its property id.
Every blocking call has a timeout; timing tolerances are one-sided (Tolerance).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")

from faultlab.examples.protos import calc_v1_pb2, calc_v1_pb2_grpc  # noqa: E402
from faultlab.lab.pair import Lab, Pair  # noqa: E402
from faultlab.oracles.deadline import T2_RETURN, T2_WIRE, check_deadline  # noqa: E402
from faultlab.oracles.policies import (  # noqa: E402
    DeadlinePolicy,
    Exponential,
    RetryPolicy,
    Tolerance,
)
from faultlab.oracles.retry import (  # noqa: E402
    check_backoff_distribution,
    check_retry,
    delay_samples,
    retry_checks,
)
from faultlab.oracles.verdict import Verdict, format_evidence  # noqa: E402

SERVICE = "faultlab.calc.v1.Calc"
ADD = f"/{SERVICE}/Add"
INCR = f"/{SERVICE}/CounterIncr"
DEADLINE = 0.8
"""Seconds: every call's timeout (the black hole plans wait this long)."""
RETRYABLE = ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]
WIRE = Tolerance(eps_early=0.005, eps_late=0.25)
"""One-sided slack for times read on the wire of a loaded 2-core machine. Lower bounds: 5 ms
early at most (the proxy stamps an answer it wrote itself a little after the write: a 40 ms
pushback was once measured as 38.6 ms between the stamps while grpcio waited its 40 ms).
Upper bounds: 250 ms late (a scheduler can stall grpcio's timer thread that long); a wait
that is too *long* matters less here than one too short, and R6 checks the typical wait."""


def service_config(attempts: int = 4, codes: list[str] = RETRYABLE) -> dict[str, Any]:
    """The channel's retry policy; the deadline is each call's ``timeout``. No methodConfig
    ``timeout``: grpcio 1.85 enforces it early by a per-process constant (1.0-1.9 s measured
    here, docs/grpc.md) and never sends it as grpc-timeout."""
    entry: dict[str, Any] = {
        "name": [{"service": SERVICE}],
        "retryPolicy": {
            "maxAttempts": attempts,
            "initialBackoff": "0.02s",
            "maxBackoff": "0.08s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": codes,
        },
    }
    return {"methodConfig": [entry]}


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with Lab(seed=11) as lab:
        yield lab.pair("faultlab.examples.calc:Calc", protocol="grpc", options={"proto": "v1"})


@contextmanager
def excerpt(pair: Pair) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The events journaled inside the block (the server's merged in)."""
    before = pair.events()
    mark = max((int(e["seq"]) for e in before), default=-1) + 1
    yield lambda: pair.events(since=mark)


@contextmanager
def channel(pair: Pair, cfg: dict[str, Any] | None, *, retries: bool = True) -> Iterator[Any]:
    """A fresh grpcio channel through the proxy (its own connection: a black hole's teardown
    never reaches the next plan), warmed up with one call outside every logical call."""
    options: list[tuple[str, Any]] = [
        ("grpc.enable_retries", 1 if retries else 0),
        ("grpc.use_local_subchannel_pool", 1),
    ]
    if cfg is not None:
        options.append(("grpc.service_config", json.dumps(cfg)))
    ch = grpc.insecure_channel(pair.address.replace("tcp://", ""), options=options)
    try:
        stub = calc_v1_pb2_grpc.CalcStub(ch)
        assert stub.Add(calc_v1_pb2.AddRequest(a=1, b=1), timeout=5).value == 2
        yield stub
    finally:
        ch.close()


@contextmanager
def toxics(pair: Pair, *specs: dict[str, Any]) -> Iterator[None]:
    names = []
    try:
        for i, spec in enumerate(specs):
            spec = dict(spec)
            kind = spec.pop("type")
            pair.proxy.add_toxic(kind, name=f"t{i}_{kind}", **spec)
            names.append(f"t{i}_{kind}")
        yield
    finally:
        for name in names:
            pair.proxy.remove_toxic(name)


def call(pair: Pair, fn: Callable[[], Any], label: str = "add") -> str:
    """One logical call; its gRPC status name (``OK``, ``UNAVAILABLE``...)."""
    with pair.logical_call(label):
        try:
            fn()
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return "OK"


def explain(v: Verdict) -> str:
    return f"{v.property}: {v.message}\n{format_evidence(v.evidence)}"


# ---- fault plans ---------------------------------------------------------------------------
@dataclass
class Plan:
    seed: int
    faults: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        return f"plan {self.seed}: " + "; ".join(
            ", ".join(f"{k}={v}" for k, v in f.items()) for f in self.faults
        )


def plan(seed: int) -> Plan:
    """A seeded plan: gRPC statuses in a sequence (with or without pushback), latency, or a
    black hole (every 8th) that only the call's deadline ends."""
    rng = random.Random(seed)
    found = Plan(seed)
    if seed % 8 == 7:
        found.faults.append({"type": "timeout", "stream": "upstream", "timeout": 0})
        return found
    if seed % 8 == 6:
        latency = rng.choice([10, 30])
        found.faults.append({"type": "latency", "stream": "downstream", "latency": latency})
    status = rng.choice(["UNAVAILABLE", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "INTERNAL"])
    steps = "F" + "".join(rng.choice("FFP") for _ in range(rng.randint(0, 5)))
    error: dict[str, Any] = {"type": "rpc_error", "stream": "upstream", "status": status}
    error["sequence"] = steps
    pushback = rng.choice([None, None, "40", "-1"])
    if pushback is not None:
        error["pushback_ms"] = pushback
    found.faults.append(error)
    return found


PLANS = [plan(seed) for seed in range(24)]


def add(stub: Any, a: int, *, timeout: float | None = DEADLINE) -> Callable[[], Any]:
    return lambda: stub.Add(calc_v1_pb2.AddRequest(a=a, b=2), timeout=timeout)


def test_a_correct_service_config_passes_over_seeded_fault_plans(pair: Pair) -> None:
    cfg = service_config()
    retry = RetryPolicy.from_grpc_service_config(cfg, method=ADD, deadline=DEADLINE, tolerance=WIRE)
    deadline = DeadlinePolicy.from_grpc_service_config(
        cfg, method=ADD, deadline=DEADLINE, tolerance=WIRE
    )
    statuses: dict[str, int] = {}
    with excerpt(pair) as events:
        for p in PLANS:
            with channel(pair, cfg) as stub, toxics(pair, *p.faults):
                for i in range(2):
                    got = call(pair, add(stub, i), label=p.describe())
                    statuses[got] = statuses.get(got, 0) + 1
        journal = events()
    verdict = check_retry(journal, retry)
    assert verdict.passed, explain(verdict)
    assert not verdict.vacuous, explain(verdict)
    judged = check_deadline(journal, deadline)
    assert judged.passed, explain(judged)
    assert not judged.vacuous, explain(judged)
    # the plans did exercise every path: retried and exhausted, non-retryable, black hole,
    # pushback waits and "do not retry" pushbacks
    assert {"OK", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"} <= set(statuses), statuses
    live = {v.property.split()[0] for v in retry_checks(journal, retry) if not v.vacuous}
    assert {"R1", "R3", "R4", "R5", "R8", "R9"} <= live, live
    assert any(e.get("pushback_ms") == -1 for e in journal)


def test_grpcio_waits_a6_jitter_not_full_jitter(pair: Pair) -> None:
    """The measurement behind GrpcBackoff: every attempt answered UNAVAILABLE, the waits
    read on the wire follow ``min(ib*m^(k-1), max) * U(0.8, 1.2)`` (R4/R5 and the R6
    distribution test), and a declared full jitter ``U(0, cur)`` is rejected by R6."""
    cfg = service_config()
    cfg["methodConfig"][0]["retryPolicy"].update(initialBackoff="0.05s", maxBackoff="0.2s")
    # a typical wait carries at most 10 ms of scheduling on a loaded machine
    tight = replace(WIRE, typical_late=0.01)
    a6 = RetryPolicy.from_grpc_service_config(cfg, deadline=5.0, tolerance=tight)
    full = replace(a6, wait=Exponential(0.05, 2.0, max=0.2, full_jitter=True))
    fault = {"type": "rpc_error", "stream": "upstream", "kind": "unavailable"}
    with excerpt(pair) as events:
        with channel(pair, cfg) as stub, toxics(pair, fault):
            for i in range(12):
                assert call(pair, add(stub, i, timeout=5.0)) == "UNAVAILABLE"
        journal = events()
    verdict = check_retry(journal, a6)
    assert verdict.passed, explain(verdict)
    assert len(delay_samples(journal, a6)) == 36
    wrong = check_backoff_distribution([journal], full)
    assert not wrong.passed, explain(wrong)
    assert wrong.property.startswith("R6"), explain(wrong)


def test_max_attempts_off_by_one_is_caught_by_r1(pair: Pair) -> None:
    declared = RetryPolicy.from_grpc_service_config(
        service_config(attempts=3), deadline=DEADLINE, tolerance=WIRE
    )
    with excerpt(pair) as events:
        with channel(pair, service_config(attempts=4)) as stub:
            with toxics(pair, {"type": "rpc_error", "stream": "upstream", "kind": "unavailable"}):
                assert call(pair, add(stub, 1)) == "UNAVAILABLE"
        journal = events()
    verdict = check_retry(journal, declared)
    assert not verdict.passed, explain(verdict)
    assert verdict.property.startswith("R1"), explain(verdict)
    assert "made 4 attempts" in verdict.message


def test_internal_retried_on_a_non_idempotent_method_is_caught_by_r11(pair: Pair) -> None:
    cfg = service_config(codes=["UNAVAILABLE", "INTERNAL"])
    declared = RetryPolicy.from_grpc_service_config(
        cfg, method=INCR, deadline=DEADLINE, non_idempotent=[INCR], tolerance=WIRE
    )
    fault = {"type": "rpc_error", "stream": "upstream", "status": "INTERNAL", "times": 1}
    with excerpt(pair) as events:
        with channel(pair, cfg) as stub, toxics(pair, {**fault, "method": "*/CounterIncr"}):
            incr = lambda: stub.CounterIncr(calc_v1_pb2.IncrRequest(amount=1), timeout=DEADLINE)  # noqa: E731
            assert call(pair, incr, label="incr") == "OK"
        journal = events()
    verdict = check_retry(journal, declared)
    assert not verdict.passed, explain(verdict)
    assert verdict.property.startswith("R11"), explain(verdict)
    assert "not idempotent" in verdict.message


def test_no_deadline_under_a_black_hole_is_caught_by_t2(pair: Pair) -> None:
    cfg = service_config()
    declared = DeadlinePolicy(DEADLINE, tolerance=WIRE)
    with excerpt(pair) as events:
        with channel(pair, cfg) as stub:
            with toxics(pair, {"type": "timeout", "stream": "upstream", "timeout": 0}):
                with pair.logical_call("add without a deadline"):
                    future = stub.Add.future(calc_v1_pb2.AddRequest(a=1, b=2))  # no timeout
                    try:
                        future.result(timeout=DEADLINE * 2)
                        pytest.fail("a black hole answered")
                    except grpc.FutureTimeoutError:
                        pass
                    finally:
                        future.cancel()  # bound the test: the call itself would never end
        journal = events()
    verdict = check_deadline(journal, declared)
    assert not verdict.passed, explain(verdict)
    assert verdict.property == T2_WIRE, explain(verdict)
    assert "no deadline sent" in verdict.message
    assert "waits forever" in verdict.message
    assert T2_RETURN in verdict.details["failed"]


# ---- pushback: a hand-rolled loop over a stub with grpcio's retries off ----------------------
def hand_rolled(stub: Any, a: int, *, honour_pushback: bool) -> Callable[[], Any]:
    """The retry loop a user might write around a stub: A6 backoff, up to 4 attempts, within
    one deadline; ``honour_pushback`` follows grpc-retry-pushback-ms as A6 says."""
    policy = service_config()["methodConfig"][0]["retryPolicy"]
    retryable = {getattr(grpc.StatusCode, c) for c in policy["retryableStatusCodes"]}
    rng = random.Random(a)

    def run() -> Any:
        start = time.monotonic()
        n = 1  # the backoff index: restarts after a pushback
        for attempt in range(1, policy["maxAttempts"] + 1):
            left = DEADLINE - (time.monotonic() - start)
            try:
                return stub.Add(calc_v1_pb2.AddRequest(a=a, b=2), timeout=left)
            except grpc.RpcError as exc:
                if exc.code() not in retryable or attempt == policy["maxAttempts"]:
                    raise
                trailers = dict(exc.trailing_metadata() or ())
                pushback = trailers.get("grpc-retry-pushback-ms")
                if honour_pushback and pushback is not None:
                    ms = int(pushback) if pushback.lstrip("-").isdigit() else -1
                    if ms < 0:
                        raise
                    time.sleep(ms / 1000)
                    n = 1
                    continue
                nominal = min(0.02 * 2 ** (n - 1), 0.08)
                time.sleep(nominal * rng.uniform(0.8, 1.2))
                n += 1
        raise AssertionError("unreachable")

    return run


@pytest.mark.parametrize("honour", [True, False], ids=["honours-pushback", "ignores-pushback"])
def test_pushback_ignored_is_caught_by_r9_and_honoured_passes(pair: Pair, honour: bool) -> None:
    declared = RetryPolicy.from_grpc_service_config(
        service_config(), deadline=DEADLINE, tolerance=WIRE
    )
    faults: list[dict[str, Any]] = [
        {"type": "rpc_error", "stream": "upstream", "kind": "unavailable", "sequence": "FFP",
         "pushback_ms": "150"},
        {"type": "rpc_error", "stream": "upstream", "kind": "unavailable", "times": 1,
         "pushback_ms": "-1"},
    ]  # fmt: skip
    with excerpt(pair) as events:
        with channel(pair, None, retries=False) as stub:
            with toxics(pair, faults[0]):
                assert call(pair, hand_rolled(stub, 1, honour_pushback=honour)) == "OK"
            with toxics(pair, faults[1]):
                got = call(pair, hand_rolled(stub, 2, honour_pushback=honour))
        journal = events()
    verdict = check_retry(journal, declared)
    if honour:
        assert got == "UNAVAILABLE"  # a negative pushback: no retry
        assert verdict.passed, explain(verdict)
        assert not verdict.vacuous, explain(verdict)
    else:
        assert got == "OK"  # retried although the server said do not
        assert not verdict.passed, explain(verdict)
        assert verdict.property.startswith("R9"), explain(verdict)
        r9 = next(v for v in retry_checks(journal, declared) if v.property.startswith("R9"))
        assert r9.details["violations"] == 2, r9.message  # the short wait and the -1 retried
