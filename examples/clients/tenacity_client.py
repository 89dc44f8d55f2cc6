"""A calc client retrying with tenacity: exponential backoff, transient errors only."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import tenacity

from examples.clients.common import NON_IDEMPOTENT, CalcClient, is_retryable
from faultlab.oracles import RetryPolicy
from faultlab.rpc.client import Client

__all__ = ["TenacityCalc"]


class TenacityCalc(CalcClient):
    """``stop_after_attempt(attempts)``, ``wait_exponential(initial, max)``, ``reraise=True``;
    with ``full_jitter``, ``wait_random_exponential(initial, max)`` (AWS full jitter)."""

    def __init__(
        self,
        rpc: Client,
        *,
        attempts: int = 4,
        initial: float = 0.1,
        max_wait: float = 0.8,
        attempt_timeout: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        full_jitter: bool = False,
    ) -> None:
        super().__init__(rpc, attempt_timeout=attempt_timeout, sleep=sleep, monotonic=monotonic)
        wait = tenacity.wait_random_exponential if full_jitter else tenacity.wait_exponential
        self.retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=wait(multiplier=initial, max=max_wait),
            retry=tenacity.retry_if_exception(is_retryable),
            reraise=True,
            sleep=sleep,
        )
        self.retry_policy = RetryPolicy.from_tenacity(
            self.retrying, non_idempotent=NON_IDEMPOTENT, name="tenacity"
        )

    def policies(self) -> dict[str, Any]:
        return {"retry": self.retry_policy}

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        return self.retrying(self.attempt, method, args, params, idempotency_key)
