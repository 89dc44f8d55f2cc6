"""Waits that end at their deadline on the monotonic clock: never before it, and on Linux
within a few tens of microseconds after it.

Why: uvloop keeps time in whole milliseconds (libuv's loop clock, truncated and cached per
loop iteration), so ``call_later(0.1)`` fires up to a millisecond early and a delay under
half a millisecond at once. A ``latency`` toxic built on it delivers before its latency,
which Toxiproxy (Go's nanosecond timers) never does, and a client test that allows 10 ms
either side of a 100 ms toxic loses a tenth of its margin.

:class:`PreciseTimers` is one Linux ``timerfd`` per event loop (``CLOCK_MONOTONIC``, the
clock of :func:`time.monotonic`, armed with an absolute deadline in nanoseconds) that wakes
the loop at the earliest deadline; the owner of the loop creates it and closes it
(:class:`faultlab.proxy.engine.ProxyEngine` does). :func:`wake_at` uses the loop's one if it
has one; otherwise (another OS, a loop nobody registered) it re-arms the loop's own timer
until the deadline has passed: late by up to a couple of milliseconds, never early.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import heapq
import itertools
import os
import time
from collections.abc import Callable

__all__ = ["PreciseTimers", "monotonic", "sleep", "start_precise_timers", "wake_at"]

monotonic = time.monotonic
"""The clock every deadline here is on (``CLOCK_MONOTONIC``)."""
_CLOCK_MONOTONIC = 1
_TFD_TIMER_ABSTIME = 1
_COMPACT_AT = 256
"""Abandoned waits kept in the heap past which it is rebuilt without them."""
_FOREVER = 30 * 86400.0
"""A wait longer than this (30 days) is never armed: it ends only some other way."""
_FALLBACK_MARGIN = 0.0005
"""Added to a fallback re-arm so the loop's millisecond timer does not round it to zero."""


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    if not hasattr(os, "O_CLOEXEC"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
    except (OSError, AttributeError):  # not Linux, or no timerfd in this libc
        return None
    return libc


_LIBC = _libc()
_REGISTRY: dict[int, PreciseTimers] = {}
"""The open timers of each event loop (by ``id``), as their owners registered them."""


class PreciseTimers:
    """Deadlines of one event loop on one timerfd (see the module docstring). Runs on the
    loop's thread; :meth:`close` it when the loop is done (it unregisters itself)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        if _LIBC is None:
            raise OSError("timerfd is not available here")
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self.loop = loop
        self._fd = fd
        self._heap: list[tuple[float, int, asyncio.Future[bool]]] = []
        self._order = itertools.count()
        self._armed: float | None = None
        self._abandoned = 0
        try:
            loop.add_reader(fd, self._fire)
        except BaseException:
            os.close(fd)
            raise
        _REGISTRY[id(loop)] = self

    def wait(self, deadline: float, waiter: asyncio.Future[bool]) -> Callable[[], None]:
        """Set ``waiter``'s result to ``True`` once :func:`monotonic` reaches ``deadline``
        (unless it is done by then); returns the function that abandons the wait."""
        heapq.heappush(self._heap, (deadline, next(self._order), waiter))
        if self._armed is None or deadline < self._armed:
            self._arm(deadline)
        return self._abandon

    def _abandon(self) -> None:
        """A waiter finished some other way: its entry goes when it reaches the top, or
        in a rebuild once too many are waiting to."""
        self._abandoned += 1
        if self._abandoned > _COMPACT_AT and self._abandoned * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].done()]
            heapq.heapify(self._heap)
            self._abandoned = 0

    def _arm(self, deadline: float) -> None:
        spec = _Itimerspec()
        if deadline > 0:  # all zeros would disarm it
            seconds = int(deadline)
            spec.it_value.tv_sec = seconds
            spec.it_value.tv_nsec = max(int((deadline - seconds) * 1e9), 0 if seconds else 1)
        assert _LIBC is not None
        if _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")
        self._armed = deadline if deadline > 0 else None

    def _fire(self) -> None:
        try:
            os.read(self._fd, 8)
        except (BlockingIOError, InterruptedError):
            pass
        now = monotonic()
        heap = self._heap
        while heap and (heap[0][0] <= now or heap[0][2].done()):
            _, _, waiter = heapq.heappop(heap)
            if not waiter.done():
                waiter.set_result(True)
        self._abandoned = min(self._abandoned, len(heap))
        self._armed = None
        self._arm(heap[0][0] if heap else 0.0)

    def close(self) -> None:
        """Stop watching the timerfd and close it (waits still pending never end here)."""
        if self._fd < 0:
            return
        _REGISTRY.pop(id(self.loop), None)
        try:
            self.loop.remove_reader(self._fd)
        except (RuntimeError, ValueError):  # the loop is already closed
            pass
        os.close(self._fd)
        self._fd = -1
        self._heap.clear()


def start_precise_timers(loop: asyncio.AbstractEventLoop) -> PreciseTimers | None:
    """The loop's :class:`PreciseTimers`, created now; ``None`` where timerfd is missing
    (:func:`wake_at` then uses the fallback)."""
    try:
        return PreciseTimers(loop)
    except OSError:
        return None


def wake_at(
    loop: asyncio.AbstractEventLoop, deadline: float, waiter: asyncio.Future[bool]
) -> Callable[[], None]:
    """Set ``waiter``'s result to ``True`` once :func:`monotonic` reaches ``deadline``, never
    before; returns the function that abandons the wait (call it when ``waiter`` ended some
    other way)."""
    if deadline - monotonic() > _FOREVER:
        return _nothing
    timers = _REGISTRY.get(id(loop))
    if timers is not None and timers.loop is loop:
        return timers.wait(deadline, waiter)
    handle: list[asyncio.TimerHandle] = []

    def check() -> None:
        remaining = deadline - monotonic()
        if waiter.done():
            return
        if remaining <= 0:
            waiter.set_result(True)
            return
        handle[:] = [loop.call_later(remaining + _FALLBACK_MARGIN, check)]

    handle.append(loop.call_later(max(deadline - monotonic(), 0) + _FALLBACK_MARGIN, check))
    return lambda: handle[0].cancel()


def _nothing() -> None:
    """Abandoning a wait that was never armed."""


async def sleep(seconds: float) -> None:
    """``asyncio.sleep`` that ends at its deadline, never before (for waits that no update
    interrupts; a toxic's own go through ``ToxicContext.sleep``)."""
    if seconds <= 0:
        await asyncio.sleep(0)
        return
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[bool] = loop.create_future()
    abandon = wake_at(loop, monotonic() + seconds, waiter)
    try:
        await waiter
    finally:
        if not waiter.done() or waiter.cancelled():
            abandon()
