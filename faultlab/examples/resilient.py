"""A reference resilient calc client: retry with capped exponential backoff and jitter,
stable idempotency keys, a consecutive-failure circuit breaker, a fallback, and an overall
deadline. Dependency-free, so the bundled suites and the demo run anywhere; its declared
policies (``POLICY``) are what the oracles check it against.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from faultlab.errors import FaultlabError, RemoteProtocolError, TransportError
from faultlab.rpc.errors import RpcError

__all__ = ["BreakerOpen", "ResilientCalc", "ResilientConfig"]


class BreakerOpen(FaultlabError):
    """The breaker is open: the call was not attempted."""


@dataclass(frozen=True)
class ResilientConfig:
    max_attempts: int = 4
    initial_backoff: float = 0.01
    multiplier: float = 2.0
    max_backoff: float = 0.2
    jitter: float = 0.5
    """Full jitter fraction: each wait is uniform in [(1 - jitter) * w, w]."""
    attempt_timeout: float = 0.3
    deadline: float = 1.0
    breaker_fail_max: int = 5
    breaker_reset_timeout: float = 0.3
    fallback_value: Any = None
    use_fallback: bool = False


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, RpcError):
        return exc.transient
    return isinstance(exc, TransportError | RemoteProtocolError)


class _Breaker:
    """Consecutive failures open it; after ``reset_timeout`` one probe may pass (half-open)."""

    def __init__(self, fail_max: int, reset_timeout: float, on_state: Any = None) -> None:
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self.failures = 0
        self.state = "closed"
        self.opened_at = 0.0
        self._lock = threading.Lock()
        self._probe = False
        self._on_state = on_state

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self._on_state:
                self._on_state(state)

    def before(self) -> None:
        with self._lock:
            if self.state == "open":
                if time.monotonic() - self.opened_at < self.reset_timeout:
                    raise BreakerOpen("circuit breaker is open")
                self._set("half_open")
                self._probe = False
            if self.state == "half_open":
                if self._probe:
                    raise BreakerOpen("circuit breaker is half-open and its probe is in flight")
                self._probe = True

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self._probe = False
            self._set("closed")

    def failure(self) -> None:
        with self._lock:
            self._probe = False
            self.failures += 1
            if self.state == "half_open" or self.failures >= self.fail_max:
                self.opened_at = time.monotonic()
                self._set("open")


class ResilientCalc:
    """Wraps a faultlab client; every method is one logical call with retries inside."""

    def __init__(
        self,
        client: Any,
        config: ResilientConfig | None = None,
        *,
        rng: random.Random | None = None,
        journal: Any = None,
    ) -> None:
        self.client = client
        self.config = config or ResilientConfig()
        self.rng = rng or random.Random(0)
        self.journal = journal
        self.breaker = _Breaker(
            self.config.breaker_fail_max,
            self.config.breaker_reset_timeout,
            on_state=self._breaker_changed,
        )

    def _breaker_changed(self, state: str) -> None:
        if self.journal is not None:
            self.journal.record("breaker", state=state, label="resilient-calc")

    def _wait(self, retry: int) -> float:
        c = self.config
        ceiling = min(c.max_backoff, c.initial_backoff * c.multiplier ** (retry - 1))
        return ceiling * (1 - c.jitter * self.rng.random())

    def call(self, method: str, *args: Any, idempotent: bool = True, **kwargs: Any) -> Any:
        c = self.config
        deadline = time.monotonic() + c.deadline
        key = None if idempotent else uuid.uuid4().hex  # one stable key per logical call
        if key is not None:
            args = (*args, key)  # calc's counter.incr(amount, key)
            kwargs["idempotency_key"] = key
        attempt = 0
        while True:
            attempt += 1
            self.breaker.before()
            left = deadline - time.monotonic()
            try:
                result = self.client.call(
                    method, *args, timeout=max(0.001, min(c.attempt_timeout, left)), **kwargs
                )
            except Exception as exc:
                if _retryable(exc):
                    self.breaker.failure()
                else:
                    self.breaker.success()  # the server answered: not a health failure
                    raise
                if attempt >= c.max_attempts:
                    raise
                pause = self._wait(attempt)
                if time.monotonic() + pause >= deadline:
                    raise
                time.sleep(pause)
                continue
            self.breaker.success()
            return result

    def add(self, a: float, b: float) -> Any:
        return self.call("add", a, b)

    def incr(self, amount: int = 1) -> Any:
        return self.call("counter.incr", amount, idempotent=False)


class CarelessCalc(ResilientCalc):
    """A deliberately broken client: no backoff, a fresh idempotency key per attempt, and
    far more attempts than it declares. The bundled suites must catch it."""

    def call(self, method: str, *args: Any, idempotent: bool = True, **kwargs: Any) -> Any:
        attempt = 0
        while True:
            attempt += 1
            call_args = args if idempotent else (*args, uuid.uuid4().hex)  # new key: the bug
            try:
                return self.client.call(
                    method, *call_args, timeout=self.config.attempt_timeout, **kwargs
                )
            except Exception as exc:
                if not _retryable(exc) or attempt >= 3 * self.config.max_attempts:
                    raise
                # no backoff at all: the bug
