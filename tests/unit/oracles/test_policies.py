"""Policies: wait bounds per the reference's formulas, and reading tenacity/stamina/pybreaker."""

from __future__ import annotations

import math

import pybreaker
import pytest
import tenacity

from faultlab.errors import TransportError
from faultlab.oracles import (
    DEFAULT_RETRY_ON,
    BreakerPolicy,
    Chain,
    Combined,
    Exponential,
    Fixed,
    Incrementing,
    RandomWait,
    RetryPolicy,
    Tolerance,
    kinds_of,
    non_idempotent_methods,
)
from faultlab.rpc.errors import ApplicationError, RpcError, ServiceUnavailable


def test_exponential_bounds_follow_tenacity() -> None:
    w = Exponential(0.1, 2.0, max=1.0, min=0.15)
    assert w.bounds(1) == (0.15, 0.15)  # clamped up to min
    assert w.bounds(2) == (0.2, 0.2)
    assert w.bounds(5) == (1.0, 1.0)  # capped
    assert w.bounds(2000) == (1.0, 1.0)  # no overflow


def test_stamina_jitter_and_full_jitter_bounds() -> None:
    stamina_like = Exponential(0.1, 2.0, max=5.0, jitter=1.0)
    assert stamina_like.bounds(1) == pytest.approx((0.1, 1.1))
    assert stamina_like.bounds(7) == pytest.approx((5.0, 5.0))
    full = Exponential(0.1, 2.0, max=1.0, min=0.05, full_jitter=True)
    assert full.bounds(3) == pytest.approx((0.05, 0.4))


def test_other_waits() -> None:
    assert Fixed(0.2).bounds(9) == (0.2, 0.2)
    assert RandomWait(0.1, 0.3).bounds(1) == (0.1, 0.3)
    assert Incrementing(0.1, 0.1, max=0.25).bounds(3) == (0.25, 0.25)
    assert Combined((Fixed(0.1), RandomWait(0, 0.2))).bounds(1) == (0.1, pytest.approx(0.3))
    chain = Chain((Fixed(0.1), Fixed(0.5)))
    assert chain.bounds(1) == (0.1, 0.1)
    assert chain.bounds(4) == (0.5, 0.5)


def test_tolerance() -> None:
    tol = Tolerance(eps_early=0.001, eps_late=0.05, late_ratio=0.1)
    assert tol.early(0.1) == pytest.approx(0.099)
    assert tol.late(1.0) == pytest.approx(1.15)


def test_default_retry_on_is_transient_kinds_and_transport_errors() -> None:
    assert {"unavailable", "deadline_exceeded", "TransportTimeout", "EndOfStream"} <= set(
        DEFAULT_RETRY_ON
    )
    assert "application_error" not in DEFAULT_RETRY_ON
    assert "invalid_params" not in DEFAULT_RETRY_ON


def test_kinds_of_follows_the_class_hierarchy() -> None:
    assert kinds_of(ServiceUnavailable) == {"unavailable"}
    assert "TransportTimeout" in kinds_of(TransportError)
    assert "application_error" in kinds_of(RpcError)
    assert kinds_of((ApplicationError,)) == {"application_error"}


def test_from_tenacity_reads_stop_wait_and_retry() -> None:
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(4) | tenacity.stop_after_delay(2.5),
        wait=tenacity.wait_exponential(multiplier=0.01, max=0.08),
        retry=tenacity.retry_if_exception_type((ServiceUnavailable, TransportError)),
    )
    policy = RetryPolicy.from_tenacity(retrying, non_idempotent=frozenset({"counter.incr"}))
    assert policy.max_attempts == 4
    assert policy.deadline == 2.5
    assert policy.deadline_mode == "after"
    assert policy.wait == Exponential(0.01, 2.0, max=0.08, min=0.0)
    assert "unavailable" in policy.retry_on
    assert "TransportTimeout" in policy.retry_on
    assert "deadline_exceeded" not in policy.retry_on
    assert policy.non_idempotent == {"counter.incr"}


def test_from_tenacity_predicates_and_other_waits() -> None:
    retrying = tenacity.Retrying(
        stop=tenacity.stop_before_delay(1.0),
        wait=tenacity.wait_fixed(0.1) + tenacity.wait_random(0, 0.05),
        retry=tenacity.retry_if_exception(lambda e: getattr(e, "transient", False)),
    )
    policy = RetryPolicy.from_tenacity(retrying)
    assert policy.max_attempts is None
    assert policy.deadline_mode == "before"
    assert policy.wait.bounds(1) == pytest.approx((0.1, 0.15))
    assert policy.retry_on == {"unavailable", "deadline_exceeded"}
    jitter = RetryPolicy.from_tenacity(
        tenacity.Retrying(wait=tenacity.wait_random_exponential(multiplier=0.1, max=1))
    )
    assert jitter.wait.bounds(2) == pytest.approx((0.0, 0.2))
    assert jitter.max_attempts is None  # bare tenacity retries forever


def test_from_stamina_uses_its_defaults_and_formula() -> None:
    policy = RetryPolicy.from_stamina(ServiceUnavailable)
    assert policy.max_attempts == 10
    assert policy.deadline == 45.0
    assert policy.wait.bounds(1) == pytest.approx((0.1, 1.1))
    assert policy.retry_on == {"unavailable"}
    hook = RetryPolicy.from_stamina(
        lambda e: isinstance(e, TransportError), attempts=3, timeout=None
    )
    assert hook.deadline is None
    assert "EndOfStream" in hook.retry_on


def test_from_pybreaker() -> None:
    cb = pybreaker.CircuitBreaker(
        fail_max=3, reset_timeout=0.5, exclude=[lambda e: not getattr(e, "transient", True)]
    )
    policy = BreakerPolicy.from_pybreaker(cb)
    assert (policy.fail_max, policy.reset_timeout, policy.success_threshold) == (3, 0.5, 1)
    assert "application_error" in policy.excluded
    assert "unavailable" not in policy.excluded
    assert not policy.counts("application_error")
    assert policy.counts("TransportTimeout")


def test_policy_validation_and_idempotency_rules() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="fail_max"):
        BreakerPolicy(fail_max=0)
    p = RetryPolicy(non_idempotent=frozenset({"counter.incr"}))
    assert not p.is_idempotent("counter.incr")
    assert p.is_idempotent("add")
    assert not p.is_idempotent("other", declared=False)
    only = RetryPolicy(idempotent_methods=frozenset({"add"}))
    assert only.is_idempotent("add")
    assert not only.is_idempotent("echo")
    assert math.isinf(Exponential(1.0).max)


def test_non_idempotent_methods_of_a_service() -> None:
    from faultlab.examples.calc import Calc

    assert non_idempotent_methods(Calc()) == {"counter.incr"}
