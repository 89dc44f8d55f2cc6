"""The calc service: arithmetic, an echo of any value, a sleep, and a side-effecting counter.

Two schema versions exist so version skew can be tested: v2 adds a field to
``about()`` (``precision``) and a method (``pow``). ``counter.incr`` is not
idempotent: every call without a repeated idempotency key adds a side effect,
recorded so duplicates are visible.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from faultlab.rpc.service import non_idempotent, service

__all__ = ["Calc", "CalcV2", "Counter", "DomainError"]


class DomainError(ValueError):
    """A well-formed call the domain refuses (division by zero)."""


@service
class Counter:
    """Counts, and remembers each side effect and idempotency key it applied."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0
        self._by_key: dict[str, int] = {}
        self._effects: list[dict[str, Any]] = []

    @non_idempotent
    def incr(self, amount: int = 1, key: str | None = None) -> int:
        """Add ``amount``; a repeated ``key`` returns the first result and changes nothing."""
        with self._lock:
            if key is not None and key in self._by_key:
                return self._by_key[key]
            self._value += amount
            self._effects.append({"key": key, "amount": amount, "value": self._value})
            if key is not None:
                self._by_key[key] = self._value
            return self._value

    def get(self) -> int:
        return self._value

    def effects(self) -> list[dict[str, Any]]:
        """Every applied side effect, in order (what an idempotency oracle counts)."""
        with self._lock:
            return list(self._effects)

    def reset(self) -> int:
        with self._lock:
            self._value = 0
            self._by_key.clear()
            self._effects.clear()
            return 0


class Calc:
    """Schema version 1."""

    version = 1

    def __init__(self) -> None:
        self.counter = Counter()

    def add(self, a: int | float, b: int | float) -> int | float:
        return a + b

    def div(self, a: int | float, b: int | float) -> float:
        if b == 0:
            raise DomainError("division by zero")
        return a / b

    def echo(self, value: Any) -> Any:
        return value

    def sleep(self, ms: int) -> int:
        """Sleep ``ms`` milliseconds (capped at 60 s) and return it."""
        time.sleep(min(max(ms, 0), 60_000) / 1000)
        return ms

    def about(self) -> dict[str, Any]:
        return {"service": "calc", "version": self.version}


class CalcV2(Calc):
    """Schema version 2: ``about()`` gains ``precision``; ``pow`` is new."""

    version = 2

    def about(self) -> dict[str, Any]:
        return {**super().about(), "precision": "double"}

    def pow(self, base: int | float, exponent: int) -> int | float:
        if abs(exponent) > 1000:
            raise DomainError("exponent too large")
        result: int | float = base**exponent
        return result
