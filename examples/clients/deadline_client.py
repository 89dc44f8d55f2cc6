"""A calc client that keeps one overall deadline per call, even when the server goes silent.

Each attempt's timeout is what is left of the deadline (capped per attempt),
the backoff never sleeps past it, and no attempt starts once it is spent, so
the caller gets control back by the deadline under a black hole too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from examples.clients.common import NON_IDEMPOTENT, CalcClient, is_retryable
from faultlab.oracles import DeadlinePolicy, Fixed, RetryPolicy
from faultlab.rpc.client import Client

__all__ = ["DeadlineCalc"]

MIN_ATTEMPT = 0.005
"""Less time than this left: not worth an attempt."""


class DeadlineCalc(CalcClient):
    def __init__(
        self,
        rpc: Client,
        *,
        deadline: float = 0.3,
        attempts: int = 4,
        backoff: float = 0.02,
        attempt_timeout: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(rpc, attempt_timeout=attempt_timeout, sleep=sleep, monotonic=monotonic)
        self.deadline = deadline
        self.attempts = attempts
        self.backoff = backoff
        self.deadline_policy = DeadlinePolicy(deadline, name="calc")
        self.retry_policy = RetryPolicy(
            max_attempts=attempts,
            wait=Fixed(backoff),
            deadline=deadline,
            deadline_mode="before",
            non_idempotent=NON_IDEMPOTENT,
            name="deadline",
        )

    def policies(self) -> dict[str, Any]:
        return {"deadline": self.deadline_policy, "retry": self.retry_policy}

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        end = self.monotonic() + self.deadline
        for number in range(1, self.attempts + 1):
            remaining = end - self.monotonic()
            try:
                return self.attempt(
                    method, args, params, idempotency_key, min(self.attempt_timeout, remaining)
                )
            except Exception as exc:
                left = end - self.monotonic()
                if (
                    not is_retryable(exc)
                    or number == self.attempts
                    or left < self.backoff + MIN_ATTEMPT
                ):
                    raise
                self.sleep(self.backoff)
        raise AssertionError("unreachable")  # pragma: no cover
