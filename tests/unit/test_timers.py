"""faultlab._timers: waits end at their deadline on the monotonic clock, never before it,
with the timerfd and with the fallback, in deadline order, and leave nothing behind.

(uvloop, which the proxy runs on, fires ``call_later`` up to a millisecond early and rounds
a sub-millisecond delay to none: each test here would fail on it.)"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from faultlab import _timers
from faultlab._timers import PreciseTimers, monotonic, start_precise_timers, wake_at

try:
    import uvloop

    LOOPS = ["asyncio", "uvloop"]
except ImportError:  # pragma: no cover - uvloop is a dependency
    LOOPS = ["asyncio"]


def _run(kind: str, main: Callable[[], Awaitable[Any]]) -> Any:
    if kind == "uvloop":
        return uvloop.run(main())
    return asyncio.run(main())


async def _lateness(delays: list[float]) -> list[float]:
    """Each wait's end minus its deadline, in seconds (all waits armed at once)."""
    loop = asyncio.get_running_loop()
    start = monotonic()
    waits = []
    for delay in delays:
        waiter: asyncio.Future[bool] = loop.create_future()
        wake_at(loop, start + delay, waiter)
        waits.append((start + delay, waiter))
    ends = []
    for deadline, waiter in sorted(waits, key=lambda w: w[0]):
        assert await asyncio.wait_for(waiter, 5) is True
        ends.append(monotonic() - deadline)
    return ends


@pytest.mark.parametrize("kind", LOOPS)
@pytest.mark.parametrize("precise", [True, False], ids=["timerfd", "fallback"])
def test_waits_never_end_before_their_deadline(kind: str, precise: bool) -> None:
    delays = [0.0, 0.0001, 0.0004, 0.0009, 0.0015, 0.003, 0.0123, 0.02]
    rng = random.Random(7)
    delays += [rng.uniform(0, 0.03) for _ in range(40)]

    async def main() -> list[float]:
        timers = start_precise_timers(asyncio.get_running_loop()) if precise else None
        try:
            return await _lateness(delays)
        finally:
            if timers is not None:
                timers.close()

    lateness = _run(kind, main)
    assert min(lateness) >= 0, f"a wait ended {-min(lateness) * 1e6:.0f} µs early"
    assert max(lateness) < 0.5  # loose: a loaded machine may be late, never early


def test_waiters_wake_in_deadline_order_and_abandoned_ones_are_forgotten() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        timers = PreciseTimers(loop)
        try:
            order: list[int] = []
            base = monotonic() + 0.01
            futures = []
            for i in (5, 1, 4, 2, 3):
                waiter: asyncio.Future[bool] = loop.create_future()
                waiter.add_done_callback(lambda _f, i=i: order.append(i))
                timers.wait(base + i * 0.002, waiter)
                futures.append(waiter)
            # many abandoned waits far in the future: the heap is rebuilt without them
            for _ in range(2000):
                gone: asyncio.Future[bool] = loop.create_future()
                abandon = timers.wait(monotonic() + 3600, gone)
                gone.cancel()
                abandon()
            assert len(timers._heap) < 1000
            await asyncio.wait_for(asyncio.gather(*futures), 5)
            assert order == [1, 2, 3, 4, 5]
        finally:
            timers.close()

    asyncio.run(main())


def test_close_unregisters_and_closes_the_timerfd() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        timers = PreciseTimers(loop)
        fd = timers._fd
        assert _timers._REGISTRY[id(loop)] is timers
        timers.close()
        timers.close()  # twice is harmless
        assert id(loop) not in _timers._REGISTRY
        return fd

    fd = asyncio.run(main())
    try:  # the number may be reused since, but never by a timerfd of ours
        target = os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:
        target = ""
    assert "timerfd" not in target


def test_a_wait_beyond_thirty_days_is_never_armed() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        abandon = wake_at(loop, monotonic() + 1e12, waiter)
        await asyncio.sleep(0.01)
        assert not waiter.done()
        abandon()

    asyncio.run(main())


@pytest.mark.parametrize("kind", LOOPS)
def test_precise_sleep_is_never_short(kind: str) -> None:
    async def main() -> list[float]:
        timers = start_precise_timers(asyncio.get_running_loop())
        short = []
        try:
            for delay in (0.0003, 0.001, 0.0047, 0.01):
                start = monotonic()
                await _timers.sleep(delay)
                short.append(monotonic() - start - delay)
        finally:
            if timers is not None:
                timers.close()
        return short

    assert min(_run(kind, main)) >= 0
