"""gRPC on the wire: the policy read from a service config, pushback (R9), the backoff reset
after a pushback, grpc-timeout against the declared deadline (T2), and hedged attempts.

Journals are scripted by hand as the proxy's h2 relay writes them (``wire_request`` /
``wire_response`` / ``wire_unanswered`` per stream), so every edge is exact.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

from faultlab.journal.timeline import timeline
from faultlab.oracles.deadline import T2_WIRE, check_deadline, deadline_checks
from faultlab.oracles.policies import (
    Bounds,
    DeadlinePolicy,
    GrpcBackoff,
    PolicyImportError,
    RetryPolicy,
    ServiceConfigError,
)
from faultlab.oracles.retry import check_retry, retry_checks

SERVICE = "faultlab.calc.v1.Calc"
ADD = f"/{SERVICE}/Add"
INCR = f"/{SERVICE}/CounterIncr"


def config(retry: dict[str, Any] | None = None, **entry: Any) -> dict[str, Any]:
    policy = {
        "maxAttempts": 3,
        "initialBackoff": "0.1s",
        "maxBackoff": "0.4s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    policy.update(retry or {})
    return {"methodConfig": [{"name": [{"service": SERVICE}], "retryPolicy": policy, **entry}]}


class Wire:
    """One proxy's gRPC streams, at chosen times."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.stream = 1

    def _record(self, kind: str, t: float, **fields: Any) -> None:
        event = {"seq": len(self.events), "t": t, "kind": kind, "proxy": "p", "connection": 0}
        self.events.append({**event, **fields})

    def attempt(
        self,
        t: float,
        took: float = 0.002,
        *,
        status: int = 0,
        pushback: int | None = None,
        deadline: float | None = None,
        previous: int | None = None,
        method: str = ADD,
        refused: bool = False,
        key: str | None = None,
    ) -> None:
        headers: dict[str, Any] = {}
        if key is not None:
            headers["idempotency-key"] = key
        request: dict[str, Any] = {"method": "POST", "target": method, "rpc_method": method}
        if deadline is not None:
            request["deadline"] = deadline
        if previous is not None:
            request["previous_attempts"] = previous
        self._record(
            "wire_request", t, exchange=self.stream, headers=headers, protocol="grpc", **request
        )
        if refused:
            self._record(
                "wire_unanswered",
                t + took,
                exchange=self.stream,
                error_kind="EndOfStream",
                error="left out by a GOAWAY",
                refused=True,
            )
        else:
            names = {0: "ok", 13: "internal", 14: "unavailable"}
            response: dict[str, Any] = {"status": 200, "grpc_status": status}
            if status:
                response.update(
                    rpc_error=f"grpc_{names[status]}", rpc_code=status, transient=status == 14
                )
            if pushback is not None:
                response["pushback_ms"] = pushback
                if pushback >= 0:
                    response["retry_after"] = pushback / 1000
            self._record("wire_response", t + took, exchange=self.stream, **response)
        self.stream += 2


# ---- reading the service config ------------------------------------------------------------
def test_a_retry_policy_is_read_with_a6_semantics() -> None:
    cfg = config({"maxAttempts": 4, "retryableStatusCodes": ["UNAVAILABLE", 8]}, timeout="2.5s")
    policy = RetryPolicy.from_grpc_service_config(cfg, method=ADD)
    assert policy.max_attempts == 4
    assert policy.wait == GrpcBackoff(0.1, 2.0, 0.4)
    assert policy.retry_on == {"grpc_unavailable", "grpc_resource_exhausted", "EndOfStream"}
    assert policy.deadline == 2.5
    assert policy.deadline_mode == "before"
    assert policy.respect_pushback
    assert not policy.respect_retry_after


def test_max_attempts_is_clamped_to_five_and_json_text_is_accepted() -> None:
    text = json.dumps(config({"maxAttempts": 9}))
    assert RetryPolicy.from_grpc_service_config(text).max_attempts == 5


def test_the_entry_is_chosen_as_grpc_does_exact_then_service_then_default() -> None:
    def entry(name: dict[str, str], attempts: int) -> dict[str, Any]:
        return config({"maxAttempts": attempts})["methodConfig"][0] | {"name": [name]}

    cfg = {
        "methodConfig": [
            entry({}, 2),
            entry({"service": SERVICE}, 3),
            entry({"service": SERVICE, "method": "CounterIncr"}, 4),
        ]
    }
    attempts = {
        m: RetryPolicy.from_grpc_service_config(cfg, method=m).max_attempts
        for m in (INCR, ADD, "other.Svc/Do")
    }
    assert attempts == {INCR: 4, ADD: 3, "other.Svc/Do": 2}
    with pytest.raises(ServiceConfigError, match="pass method="):
        RetryPolicy.from_grpc_service_config(cfg)


def test_a_method_no_entry_names_gets_one_attempt() -> None:
    policy = RetryPolicy.from_grpc_service_config(config(), method="other.Svc/Do")
    assert policy.max_attempts == 1
    assert policy.retry_on == frozenset()


def test_the_callers_timeout_and_the_configs_take_the_smaller() -> None:
    cfg = config(timeout="2s")
    assert RetryPolicy.from_grpc_service_config(cfg, deadline=1.0).deadline == 1.0
    assert RetryPolicy.from_grpc_service_config(cfg, deadline=5.0).deadline == 2.0
    assert RetryPolicy.from_grpc_service_config(config(), deadline=5.0).deadline == 5.0
    deadline = DeadlinePolicy.from_grpc_service_config(cfg, method=ADD)
    assert deadline.deadline == 2.0
    assert deadline.methods == {ADD}
    with pytest.raises(ServiceConfigError, match="sets no timeout"):
        DeadlinePolicy.from_grpc_service_config(config())


def test_non_idempotent_methods_are_named_as_the_wire_names_them() -> None:
    policy = RetryPolicy.from_grpc_service_config(
        config(), non_idempotent=[f"{SERVICE}/CounterIncr"]
    )
    assert policy.non_idempotent == {INCR}


@pytest.mark.parametrize(
    ("retry", "field"),
    [
        ({"maxAttempts": 1}, "retryPolicy.maxAttempts"),
        ({"maxAttempts": "3"}, "retryPolicy.maxAttempts"),
        ({"initialBackoff": "100ms"}, "retryPolicy.initialBackoff"),
        ({"initialBackoff": "0s"}, "retryPolicy.initialBackoff"),
        ({"maxBackoff": 1}, "retryPolicy.maxBackoff"),
        ({"backoffMultiplier": 0}, "retryPolicy.backoffMultiplier"),
        ({"retryableStatusCodes": []}, "retryPolicy.retryableStatusCodes"),
        ({"retryableStatusCodes": ["UNAVAILBLE"]}, "retryPolicy.retryableStatusCodes[0]"),
        ({"retryableStatusCodes": [17]}, "retryPolicy.retryableStatusCodes[0]"),
        ({"retryableStatusCodes": ["OK"]}, "retryPolicy.retryableStatusCodes[0]"),
    ],
)
def test_an_invalid_retry_policy_names_the_field(retry: dict[str, Any], field: str) -> None:
    with pytest.raises(ServiceConfigError, match=re.escape(f"methodConfig[0].{field}")):
        RetryPolicy.from_grpc_service_config(config(retry))


def test_other_invalid_configs_are_refused_with_a_typed_error() -> None:
    missing = config()
    del missing["methodConfig"][0]["retryPolicy"]["maxBackoff"]
    both = config(hedgingPolicy={"maxAttempts": 2})
    twice = {"methodConfig": [config()["methodConfig"][0]] * 2}
    cases = {
        "maxBackoff is required": missing,
        "exclude each other": both,
        "already named": twice,
        "not valid JSON": "{",
        "timeout must be a duration": config(timeout=3),
    }
    for message, cfg in cases.items():
        with pytest.raises(ServiceConfigError, match=message) as caught:
            RetryPolicy.from_grpc_service_config(cfg)  # type: ignore[arg-type]
        assert isinstance(caught.value, PolicyImportError | ValueError)
    with pytest.raises(ServiceConfigError, match="full gRPC method name"):
        RetryPolicy.from_grpc_service_config(config(), method="Add")


def test_grpc_backoff_is_the_capped_value_times_u_08_12() -> None:
    wait = GrpcBackoff(0.1, 2.0, 0.3)
    assert wait.bounds(1) == pytest.approx((0.08, 0.12))
    assert wait.bounds(2) == pytest.approx((0.16, 0.24))
    assert wait.bounds(3) == pytest.approx((0.24, 0.36))  # above maxBackoff, as A6 allows
    dist = wait.distribution(3)
    assert dist is not None
    assert (dist.low, dist.high) == pytest.approx((0.24, 0.36))
    with pytest.raises(ValueError, match="initial"):
        GrpcBackoff(0.0)


# ---- the oracles over gRPC streams -----------------------------------------------------------
POLICY = RetryPolicy.from_grpc_service_config(config({"maxAttempts": 5}), method=ADD)


def failing_call(
    gaps: list[float], *, pushback: dict[int, int] | None = None, ok: bool = False
) -> list[dict[str, Any]]:
    """A call of len(gaps)+1 attempts, each UNAVAILABLE (the last one OK with ``ok``), with
    the given waits between them; ``pushback`` maps attempt number -> its pushback."""
    wire = Wire()
    t = 0.0
    n = len(gaps) + 1
    for i in range(1, n + 1):
        status = 0 if ok and i == n else 14
        wire.attempt(t, status=status, pushback=(pushback or {}).get(i), deadline=5.0)
        t += 0.002 + (gaps[i - 1] if i < n else 0.0)
    return wire.events


def verdict(events: list[dict[str, Any]], prop: str, policy: RetryPolicy = POLICY) -> Any:
    return next(v for v in retry_checks(events, policy) if v.property.startswith(prop))


def test_a6_backoff_passes_and_full_jitter_is_caught() -> None:
    assert check_retry(failing_call([0.1, 0.2, 0.4], ok=True), POLICY).passed
    assert check_retry(failing_call([0.095, 0.17, 0.45, 0.33]), POLICY).passed
    short = check_retry(failing_call([0.01, 0.2], ok=True), POLICY)
    assert not short.passed
    assert short.property.startswith("R4")


def test_a_pushback_sets_the_wait_exactly_and_resets_the_backoff() -> None:
    # retry 3 would wait 0.4 s; after the pushback on attempt 2 it waits initialBackoff again
    events = failing_call([0.1, 0.25, 0.1], pushback={2: 250}, ok=True)
    assert check_retry(events, POLICY).passed, check_retry(events, POLICY).message
    assert not verdict(events, "R9").vacuous
    ignored = failing_call([0.1, 0.2], pushback={2: 250}, ok=True)
    found = check_retry(ignored, POLICY)
    assert not found.passed, found.message
    assert found.property.startswith("R9"), found.message
    assert "at least 250" in found.message
    late = failing_call([0.1, 0.6], pushback={2: 250}, ok=True)
    assert not check_retry(late, POLICY).passed  # R5 says it first: too long for any wait
    assert "exactly 250" in verdict(late, "R9").message
    no_reset = failing_call([0.1, 0.25, 0.4], pushback={2: 250})
    assert verdict(no_reset, "R5").passed is False  # 0.4 s where initialBackoff is due


def test_a_negative_pushback_forbids_the_retry() -> None:
    stopped = failing_call([0.1], pushback={2: -1})
    assert check_retry(stopped, POLICY).passed  # R3 does not call stopping there a give-up
    retried = check_retry(failing_call([0.1, 0.01], pushback={2: -1}, ok=True), POLICY)
    assert not retried.passed, retried.message
    assert retried.property.startswith("R9"), retried.message
    assert "do not retry" in retried.message


def test_pushback_is_not_judged_when_the_policy_does_not_honour_it() -> None:
    policy = RetryPolicy(
        max_attempts=5, wait=GrpcBackoff(0.1, 2, 0.4), retry_on={"grpc_unavailable"}
    )
    assert check_retry(failing_call([0.1, 0.2], pushback={2: 250}, ok=True), policy).passed
    assert not any(v.property.startswith("R9") for v in retry_checks([], policy))


def test_attempt_bound_counts_neither_refused_streams_nor_more_than_declared() -> None:
    wire = Wire()
    wire.attempt(0.0, refused=True)  # left out by a GOAWAY: retried transparently
    for i, t in enumerate((0.01, 0.12, 0.34)):
        wire.attempt(t, status=14, deadline=5.0, previous=i or None)
    attempts = timeline(wire.events).calls[0].attempts
    assert [a.previous_attempts for a in attempts] == [None, 1, 2]
    assert [a.deadline for a in attempts] == [5.0] * 3
    policy = RetryPolicy.from_grpc_service_config(config(), method=ADD)
    assert check_retry(wire.events, policy).passed
    bound = check_retry(
        wire.events, RetryPolicy.from_grpc_service_config(config({"maxAttempts": 2}))
    )
    assert not bound.passed
    assert bound.property.startswith("R1")


def test_an_injected_answer_ends_when_the_proxy_decided_it() -> None:
    """The relay may journal an answer it wrote itself late; the fault's decision bounds when
    the client can have had it, so the wait after it is not read as too short."""
    wire = Wire()
    wire.attempt(0.0, 0.025, status=14, deadline=5.0)
    wire.events[-1]["injected"] = True
    wire.events.insert(1, {"seq": 99, "t": 0.001, "kind": "fault", "proxy": "p", "connection": 0,
                           "decision": "rpc_error", "replied": True, "stream": 1})  # fmt: skip
    wire.attempt(0.102, deadline=5.0, previous=1)  # 77 ms after the stamp, 101 ms after it was
    attempt = timeline(wire.events).calls[0].attempts[0]
    assert attempt.t_end == 0.001
    assert check_retry(wire.events, POLICY).passed


def test_retrying_a_non_idempotent_method_without_a_key_fails_r11() -> None:
    policy = RetryPolicy.from_grpc_service_config(
        config({"retryableStatusCodes": ["INTERNAL"]}), non_idempotent=[INCR]
    )
    wire = Wire()
    wire.attempt(0.0, status=13, method=INCR)
    wire.attempt(0.1, method=INCR)
    found = check_retry(wire.events, policy)
    assert not found.passed
    assert found.property.startswith("R11")
    keyed = Wire()
    keyed.attempt(0.0, status=13, method=INCR, key="k1")
    keyed.attempt(0.1, method=INCR, key="k1")
    assert check_retry(keyed.events, policy).passed


def test_hedged_attempts_are_bounded_and_overlap_is_not_a_retry_after_success() -> None:
    cfg = {
        "methodConfig": [
            {
                "name": [{"service": SERVICE}],
                "hedgingPolicy": {
                    "maxAttempts": 3,
                    "hedgingDelay": "0.05s",
                    "nonFatalStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
    policy = RetryPolicy.from_grpc_service_config(cfg)
    assert policy.hedging
    assert policy.max_attempts == 3
    assert policy.retry_on == {"grpc_unavailable"}
    assert isinstance(policy.wait, Bounds)
    assert policy.wait.bounds(1)[0] == -math.inf
    wire = Wire()
    wire.attempt(0.0, 0.2)  # the original: succeeds after the hedges went out
    wire.attempt(0.05, 0.2)
    wire.attempt(0.1, 0.2)
    assert check_retry(wire.events, policy).passed
    wire.attempt(0.35)  # a fourth: past maxAttempts and after a success
    assert not check_retry(wire.events, policy).passed


# ---- T2 on the wire --------------------------------------------------------------------------
def deadline_call(sent: list[float | None], starts: list[float]) -> list[dict[str, Any]]:
    wire = Wire()
    for i, (t, d) in enumerate(zip(starts, sent, strict=True)):
        wire.attempt(t, status=14 if i < len(sent) - 1 else 0, deadline=d)
    return wire.events


def wire_verdict(events: list[dict[str, Any]], deadline: float) -> Any:
    checks = deadline_checks(events, DeadlinePolicy(deadline))
    return next(v for v in checks if v.property == T2_WIRE)


def test_grpc_timeout_shrinking_with_the_time_spent_passes_with_grpc_core_rounding() -> None:
    # grpcio sends a 1 s timeout as 1010m; later attempts send what is left
    events = deadline_call([1.01, 0.86, 0.5], [0.0, 0.15, 0.5])
    v = wire_verdict(events, 1.0)
    assert v.passed
    assert not v.vacuous
    assert check_deadline(events, DeadlinePolicy(1.0)).passed


def test_a_per_attempt_timeout_outliving_the_call_is_caught() -> None:
    v = wire_verdict(deadline_call([1.0, 1.0], [0.0, 0.3]), 1.0)
    assert not v.passed, v.message
    assert "only 700" in v.message, v.message
    first = wire_verdict(deadline_call([2.0], [0.0]), 1.0)
    assert not first.passed


def test_no_grpc_timeout_under_a_declared_deadline_is_a_finding() -> None:
    v = wire_verdict(deadline_call([None], [0.0]), 1.0)
    assert not v.passed
    assert "no deadline sent" in v.message
    assert "waits forever" in v.message
    whole = check_deadline(deadline_call([None], [0.0]), DeadlinePolicy(1.0))
    assert not whole.passed
    assert whole.property == T2_WIRE


def test_t2_on_the_wire_is_vacuous_without_grpc_attempts() -> None:
    assert wire_verdict([], 1.0).vacuous
