"""What every example client shares: the calc methods, error classification, the policies.

Classification is the one decision every resilient client makes: a
transient error (the server said "unavailable", the connection broke, the
reply was cut) may be retried or counted by a breaker; a business error
(division by zero, bad params) is the answer and must reach the caller.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from faultlab.errors import RemoteProtocolError, TransportError
from faultlab.rpc.client import Client
from faultlab.rpc.errors import RpcError

__all__ = ["FALLBACK", "NON_IDEMPOTENT", "CalcClient", "is_business_error", "is_retryable"]

NON_IDEMPOTENT = frozenset({"counter.incr"})
"""calc's methods with side effects: retried only with an idempotency key."""
FALLBACK = "fallback:degraded"
"""The value a fallback returns (distinct from any real calc answer, so it is recognisable)."""


def is_retryable(exc: BaseException) -> bool:
    """Transient: the server said so, the transport failed, or the reply was broken."""
    if isinstance(exc, RpcError):
        return exc.transient
    return isinstance(exc, TransportError | RemoteProtocolError)


def is_business_error(exc: BaseException) -> bool:
    """An answer, not an outage: breakers exclude it and fallbacks must not hide it."""
    return isinstance(exc, RpcError) and not exc.transient


class CalcClient:
    """The calc surface over one RPC client; subclasses decide how each attempt is wrapped."""

    def __init__(
        self,
        rpc: Client,
        *,
        attempt_timeout: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpc = rpc
        self.attempt_timeout = attempt_timeout
        self.sleep = sleep
        self.monotonic = monotonic

    def policies(self) -> dict[str, Any]:
        """The declared policies, by oracle name (``retry``, ``breaker``, ``fallback``...)."""
        return {}

    # one attempt, as every subclass sends it
    def attempt(
        self,
        method: str,
        args: tuple[Any, ...],
        params: dict[str, Any],
        key: str | None,
        timeout: float | None = None,
    ) -> Any:
        budget = self.attempt_timeout if timeout is None else timeout
        if params:
            return self.rpc.call(method, timeout=budget, idempotency_key=key, **params)
        return self.rpc.call(method, *args, timeout=budget, idempotency_key=key)

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        """One logical call; the base class makes exactly one attempt."""
        return self.attempt(method, args, params, idempotency_key)

    @staticmethod
    def new_key() -> str:
        return uuid.uuid4().hex

    # the calc surface
    def add(self, a: float, b: float) -> Any:
        return self.call("add", a, b)

    def div(self, a: float, b: float) -> Any:
        return self.call("div", a, b)

    def echo(self, value: Any) -> Any:
        return self.call("echo", value)

    def slow(self, ms: int) -> Any:
        return self.call("sleep", ms)

    def incr(self, amount: int = 1) -> Any:
        """Not idempotent: one key per logical call, reused by every retry of it."""
        key = self.new_key()
        return self.call("counter.incr", amount=amount, key=key, idempotency_key=key)
