"""Deliberately wrong breakers and fallbacks. Each declares the policies of the correct
BreakerCalc (pybreaker: 3 consecutive transient failures open it for 0.5 s, business errors
excluded; the fallback answers transient failures and rejections)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from examples.clients import FALLBACK, BreakerCalc, CalcClient, is_business_error, is_retryable
from faultlab.oracles.clock import VirtualClock
from faultlab.rpc.client import Client


class Rejected(Exception):
    """The toy breaker said no."""


class ToyBreaker:
    """A pybreaker look-alike whose knobs break one rule each."""

    def __init__(
        self,
        clock: VirtualClock,
        *,
        fail_max: int = 3,
        reset_timeout: float = 0.5,
        trips: bool = True,
        leak_every: int = 0,
        primary_when_open: bool = False,
        flood: bool = False,
        closes: bool = True,
        half_opens: bool = True,
    ) -> None:
        self.clock = clock
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self.trips = trips
        self.leak_every = leak_every
        self.primary_when_open = primary_when_open
        self.flood = flood
        self.closes = closes
        self.half_opens = half_opens
        self.state = "closed"
        self.counter = 0
        self.opened_at = 0.0
        self.rejected = 0
        self.serial = threading.RLock()

    def call(self, fn: Callable[[], Any]) -> Any:
        if self.flood:  # no lock held across the call: half-open admits everybody
            return self._call(fn)
        with self.serial:
            return self._call(fn)

    def _call(self, fn: Callable[[], Any]) -> Any:
        with self.serial:
            if self.state == "open":
                waited = self.clock.monotonic() - self.opened_at
                if waited < self.reset_timeout or not self.half_opens:
                    self.rejected += 1
                    if self.primary_when_open:
                        try:
                            fn()  # fabfuel PR #13: the protected function still ran
                        except Exception:
                            pass
                        raise Rejected
                    if self.leak_every and self.rejected % self.leak_every == 0:
                        return self._run(fn, probe=False)
                    raise Rejected
                self.state = "half_open"
                probe = True
            else:
                probe = self.state == "half_open"
        return self._run(fn, probe)

    def _run(self, fn: Callable[[], Any], probe: bool) -> Any:
        try:
            result = fn()
        except Exception as exc:
            with self.serial:
                if is_business_error(exc):
                    self._success(probe)
                else:
                    self._failure(probe)
            raise
        with self.serial:
            self._success(probe)
        return result

    def _open(self) -> None:
        self.state = "open"
        self.opened_at = self.clock.monotonic()

    def _failure(self, probe: bool) -> None:
        if probe or self.state == "half_open":
            self._open()
        elif self.state == "closed":
            self.counter += 1
            if self.trips and self.counter >= self.fail_max:
                self._open()

    def _success(self, probe: bool) -> None:
        if self.state == "half_open":
            if self.closes:
                self.state, self.counter = "closed", 0
            else:
                self._open()  # a good probe, and it stays open anyway
        elif self.state == "closed":
            self.counter = 0


class ToyBreakerCalc(CalcClient):
    """BreakerCalc's shape around a ToyBreaker, declaring BreakerCalc's policies."""

    knobs: dict[str, Any] = {}

    def __init__(self, rpc: Client, clock: VirtualClock) -> None:
        super().__init__(rpc)
        self.breaker = ToyBreaker(clock, **self.knobs)
        self.declared = BreakerCalc(rpc).policies()

    def policies(self) -> dict[str, Any]:
        return self.declared

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        try:
            return self.breaker.call(lambda: self.attempt(method, args, params, idempotency_key))
        except Rejected:
            return FALLBACK
        except Exception as exc:
            if is_retryable(exc):
                return FALLBACK
            raise


class NeverOpens(ToyBreakerCalc):
    """Counts failures but never trips (pybreaker #7: a wrapper that never sees the error)."""

    knobs = {"trips": False}


class LeaksWhileOpen(ToyBreakerCalc):
    """Open, yet every other call goes through."""

    knobs = {"leak_every": 2}


class PrimaryWhenOpen(ToyBreakerCalc):
    """Open: runs the protected call anyway, then answers with the fallback (fabfuel PR #13)."""

    knobs = {"primary_when_open": True}


class HalfOpenFloods(ToyBreakerCalc):
    """Half-open lets every waiting caller through (smallrye #319, opossum #119)."""

    knobs = {"flood": True}


class NeverCloses(ToyBreakerCalc):
    """A successful probe re-opens it instead of closing it (opossum #276: stuck)."""

    knobs = {"closes": False}


class StuckOpen(ToyBreakerCalc):
    """Never half-opens: once open, open for good."""

    knobs = {"half_opens": False}


class FallbackHidesBusinessErrors(BreakerCalc):
    """Falls back on any exception: a division by zero comes back as the fallback (opossum #540)."""

    def __init__(self, rpc: Client, clock: VirtualClock) -> None:
        super().__init__(rpc)

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        try:
            return super().call(method, *args, idempotency_key=idempotency_key, **params)
        except Exception:
            return self.fallback


class FallbackReplacesFalsy(BreakerCalc):
    """Treats a falsy result as "no result" and serves the fallback (Failsafe #75)."""

    def __init__(self, rpc: Client, clock: VirtualClock) -> None:
        super().__init__(rpc)

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        result = super().call(method, *args, idempotency_key=idempotency_key, **params)
        return result or self.fallback
