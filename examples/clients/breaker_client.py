"""A calc client behind a pybreaker circuit breaker, with a fallback value when it is open.

The breaker guards every call (no retries here): transient failures count,
business errors are excluded (they prove the server is up) and reach the
caller unchanged. When the breaker rejects a call, or a transient failure
trips it, the caller gets :data:`FALLBACK`. pybreaker reads a wall clock:
on a virtual clock run it inside ``VirtualClock.patch_pybreaker()``.
"""

from __future__ import annotations

from typing import Any

import pybreaker

from examples.clients.common import FALLBACK, CalcClient, is_business_error, is_retryable
from faultlab.oracles import DEFAULT_RETRY_ON, BreakerPolicy, FallbackPolicy
from faultlab.rpc.client import Client

__all__ = ["BreakerCalc"]


class BreakerCalc(CalcClient):
    def __init__(
        self,
        rpc: Client,
        *,
        fail_max: int = 3,
        reset_timeout: float = 0.5,
        attempt_timeout: float = 0.05,
        fallback: Any = FALLBACK,
    ) -> None:
        super().__init__(rpc, attempt_timeout=attempt_timeout)
        self.fallback = fallback
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max, reset_timeout=reset_timeout, exclude=[is_business_error]
        )
        self.breaker_policy = BreakerPolicy.from_pybreaker(self.breaker, name="calc")
        self.fallback_policy = FallbackPolicy(
            eligible=DEFAULT_RETRY_ON, value=fallback, on_reject=True, name="calc"
        )

    def policies(self) -> dict[str, Any]:
        return {"breaker": self.breaker_policy, "fallback": self.fallback_policy}

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        try:
            return self.breaker.call(self.attempt, method, args, params, idempotency_key)
        except pybreaker.CircuitBreakerError:
            return self.fallback  # open, or this very failure tripped it
        except Exception as exc:
            if is_retryable(exc):
                return self.fallback
            raise
