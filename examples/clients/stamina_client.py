"""A calc client retrying with stamina (jittered exponential backoff, an overall timeout).

stamina has no public sleep hook: on a virtual clock run it inside
``VirtualClock.patch_tenacity()`` (its sync path sleeps through tenacity).
"""

from __future__ import annotations

from typing import Any

import stamina

from examples.clients.common import NON_IDEMPOTENT, CalcClient, is_retryable
from faultlab.oracles import RetryPolicy
from faultlab.rpc.client import Client

__all__ = ["StaminaCalc"]


class StaminaCalc(CalcClient):
    """``stamina.retry_context(on=is_retryable, attempts, timeout, wait_*)``."""

    def __init__(
        self,
        rpc: Client,
        *,
        attempts: int = 4,
        timeout: float | None = 10.0,
        wait_initial: float = 0.1,
        wait_max: float = 0.8,
        wait_jitter: float = 0.05,
        attempt_timeout: float = 0.05,
    ) -> None:
        super().__init__(rpc, attempt_timeout=attempt_timeout)
        self.options: dict[str, Any] = {
            "attempts": attempts,
            "timeout": timeout,
            "wait_initial": wait_initial,
            "wait_max": wait_max,
            "wait_jitter": wait_jitter,
        }
        self.retry_policy = RetryPolicy.from_stamina(
            is_retryable, **self.options, non_idempotent=NON_IDEMPOTENT, name="stamina"
        )

    def policies(self) -> dict[str, Any]:
        return {"retry": self.retry_policy}

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        for attempt in stamina.retry_context(on=is_retryable, **self.options):
            with attempt:
                return self.attempt(method, args, params, idempotency_key)
        raise AssertionError("stamina.retry_context ended without an outcome")  # pragma: no cover
