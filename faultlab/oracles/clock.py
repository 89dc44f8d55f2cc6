"""A virtual clock: real elapsed time plus every sleep, so backoff costs nothing (§11).

``clock.sleep(d)`` returns at once and moves the clock ``d`` ahead; real time
keeps flowing underneath, so a latency toxic or a client timeout still counts.
Journal the lab on the same clock (``Lab(journal=clock.journal())``) and the
gaps between attempts are exactly what the client slept plus what it really
spent: R4/R5 bounds hold to the microsecond and minutes of simulated backoff
run in milliseconds. The library adapters patch the sleep hooks and clock
sources the reference lists: tenacity (``nap.sleep``, ``time.monotonic``,
which stamina's sync path uses too) and pybreaker (``datetime.now``).

Only in-process participants share the clock: use the thread backend (a
subprocess server stamps its events on the real clock).
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from faultlab.journal import DEFAULT_MAX_EVENTS, Journal

__all__ = ["ClockJournal", "VirtualClock"]


class VirtualClock:
    """Monotonic time that sleeps advance instantly; thread-safe."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[float], None]] = []
        self.slept: list[float] = []
        """Every sleep asked for, in order (for exact assertions on computed waits)."""

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def time(self) -> float:
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        """Seconds of virtual sleep so far."""
        return self._offset

    def sleep(self, seconds: float) -> None:
        """Advance the clock by ``seconds`` without waiting, then tell the listeners."""
        self._advance(seconds, record=True)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass (a test's "wait", not a client's sleep)."""
        self._advance(seconds, record=False)

    def _advance(self, seconds: float, *, record: bool) -> None:
        seconds = float(seconds)
        if seconds < 0 or seconds != seconds:
            raise ValueError(f"cannot sleep {seconds!r} seconds")
        with self._lock:
            self._offset += seconds
            if record:
                self.slept.append(seconds)
            listeners = list(self._listeners)
        now = self.monotonic()
        for listener in listeners:
            listener(now)

    def on_advance(self, listener: Callable[[float], None]) -> Callable[[], None]:
        """Call ``listener(now)`` after every advance; returns a function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def journal(self, *, max_events: int = DEFAULT_MAX_EVENTS) -> ClockJournal:
        """A journal stamped with this clock (pass it to ``Lab(journal=...)``)."""
        return ClockJournal(self, max_events=max_events)

    def datetime_class(self) -> type[_dt.datetime]:
        """A ``datetime`` whose ``now()`` follows this clock (for wall-clock breakers)."""
        clock = self
        base = time.time() - self.monotonic()

        class VirtualDatetime(_dt.datetime):
            @classmethod
            def now(cls, tz: _dt.tzinfo | None = None) -> VirtualDatetime:
                return cls.fromtimestamp(base + clock.monotonic(), tz)

            @classmethod
            def utcnow(cls) -> VirtualDatetime:
                return cls.fromtimestamp(base + clock.monotonic(), _dt.UTC).replace(tzinfo=None)

        return VirtualDatetime

    def time_module(self) -> types.SimpleNamespace:
        """A stand-in for the ``time`` module whose clocks and sleep are this clock's."""
        return types.SimpleNamespace(
            monotonic=self.monotonic,
            monotonic_ns=lambda: int(self.monotonic() * 1e9),
            perf_counter=self.monotonic,
            time=self.time,
            sleep=self.sleep,
        )

    # adapters ------------------------------------------------------------------------------
    @contextmanager
    def patch_tenacity(self) -> Iterator[None]:
        """tenacity (and stamina's sync path): default sleep and ``time.monotonic``."""
        import tenacity
        import tenacity.nap

        with ExitStack() as stack:
            stack.enter_context(_patched(tenacity, "time", self.time_module()))
            stack.enter_context(_patched(tenacity.nap, "time", self.time_module()))
            yield

    @contextmanager
    def patch_pybreaker(self) -> Iterator[None]:
        """pybreaker: its wall clock (``datetime.now(UTC)``) for opened_at and the reset check."""
        import pybreaker

        with _patched(pybreaker, "datetime", self.datetime_class()):
            yield

    @contextmanager
    def patch_all(self) -> Iterator[None]:
        """Every adapter whose library is installed."""
        with ExitStack() as stack:
            for patch in (self.patch_tenacity, self.patch_pybreaker):
                try:
                    stack.enter_context(patch())
                except ImportError:
                    continue
            yield


@contextmanager
def _patched(target: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, old)


class ClockJournal(Journal):
    """A journal whose timestamps come from a :class:`VirtualClock`."""

    def __init__(self, clock: VirtualClock, *, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        super().__init__(max_events=max_events, origin=clock.monotonic())
        self.clock = clock

    def now(self) -> float:
        return self.clock.monotonic() - self.origin
