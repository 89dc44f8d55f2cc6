"""The calc service: arithmetic, an echo of any value, a sleep, and a side-effecting counter.

Two schema versions exist so version skew can be tested: v2 adds a field to
``about()`` (``precision``) and a method (``pow``). ``counter.incr`` is not
idempotent: every call without a repeated idempotency key adds a side effect,
recorded so duplicates are visible.

``count``, ``sum`` and ``chat`` are the streaming methods (gRPC's ``Count``,
``Sum``, ``Chat``): plain Python iterators in and out, so the service knows no
protocol; a protocol that streams (faultlab's ``GrpcServer``) iterates them.
``count``'s items are deterministic (``value = index * index``), so a client
that resumes a broken stream can be checked item by item.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from faultlab.rpc.errors import InvalidParams
from faultlab.rpc.service import non_idempotent, service

__all__ = ["MAX_COUNT", "MAX_DELAY_MS", "Calc", "CalcV2", "Counter", "DomainError"]

MAX_COUNT = 10_000_000
"""``count`` refuses an ``n`` above this: a typo must not hold a server thread for hours."""
MAX_DELAY_MS = 10_000
"""``count`` refuses a ``delay_ms`` above this (or below 0)."""


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

    def count(
        self,
        start: int = 0,
        n: int = 0,
        delay_ms: int = 0,
        *,
        stopped: threading.Event | None = None,
    ) -> Iterator[dict[str, int]]:
        """Items ``{"index": i, "value": i * i}`` for ``i`` in ``[start, n)``, ``delay_ms`` apart.

        A generator: bad arguments raise at the first item, so the call itself
        always binds (what ``strategies.calls`` promises of a typed method), and a
        gRPC client still sees INVALID_ARGUMENT before any item (the server reports
        an error raised before the first reply as the call's status). ``stopped``
        is set by the server when the call ends (client cancel, deadline,
        shutdown): the wait between items watches it, so a cancelled stream frees
        its thread at once, not after the delay.
        """
        if n > MAX_COUNT:
            raise InvalidParams(f"count: n={n} is above {MAX_COUNT}")
        if not 0 <= delay_ms <= MAX_DELAY_MS:
            raise InvalidParams(f"count: delay_ms={delay_ms} is not in [0, {MAX_DELAY_MS}]")
        stop = stopped or threading.Event()
        for index in range(start, n):
            if index > start and delay_ms and stop.wait(delay_ms / 1000):
                return
            if stop.is_set():
                return
            yield {"index": index, "value": index * index}

    def sum(self, items: Iterable[Mapping[str, Any]]) -> int:
        """The sum of the items' ``value`` (a client stream)."""
        total = 0
        for item in items:
            total += int(item.get("value") or 0)
        return total

    def chat(self, items: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        """Each item echoed as it arrives, in order (a bidirectional stream)."""
        for item in items:
            yield dict(item)


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
