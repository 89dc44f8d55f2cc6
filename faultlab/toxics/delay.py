"""``delay``: hold selected messages ``delay_ms`` ± ``jitter_ms``, optionally only every Nth.

Why beside ``latency``: latency slows a whole byte stream evenly; ``delay``
picks messages (every ``every``-th frame) and, with ``keep_order=false``,
lets later frames overtake a delayed one, as a stalled queue consumer or a
retransmitted datagram does. With ``keep_order=true`` (the default) frames
behind a delayed one wait, so order is kept. Delays count from the frame's
arrival; an update or removal releases held frames at once. Frames held
out of order add up to ``HOLD_LIMIT`` bytes at most: past that, the next
frame waits for one to leave (backpressure, not growth).
"""

from __future__ import annotations

import asyncio

from faultlab.toxics._common import chain_lock
from faultlab.toxics.base import HOLD_LIMIT, Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

MAX_MS = 3_600_000


@register_toxic
class Delay(Toxic):
    type_name = "delay"
    description = "delay every Nth message by delay_ms ± jitter_ms"
    needs_frames = True
    attributes_spec = {
        "delay_ms": Attr(int, 0, 0, MAX_MS, "milliseconds", generate=(0, 300)),
        "jitter_ms": Attr(int, 0, 0, MAX_MS, "uniform ± milliseconds", generate=(0, 50)),
        "every": Attr(int, 1, 1, 1_000_000, "delay only every Nth frame (1: all)", generate=(5, 1)),
        "keep_order": Attr(bool, True, help="later frames wait behind a delayed one"),
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        n = int(ctx.state.get("seen", 0)) + 1
        ctx.state["seen"] = n
        if n % self.attributes["every"]:
            ctx.record("pass", chunk)
            await self._emit(ctx, emit, chunk)
            return
        delay_ms, jitter = self.attributes["delay_ms"], self.attributes["jitter_ms"]
        if jitter:
            delay_ms = max(0, delay_ms + ctx.rng.randrange(2 * jitter + 1) - jitter)
        ctx.record("delay", chunk, delay_ms=delay_ms)
        if self.attributes["keep_order"]:
            await self._hold(ctx, chunk, delay_ms)
            await emit(chunk)
            return
        pending: set[asyncio.Future[None]] = ctx.state.setdefault("pending", set())
        while pending and ctx.held_bytes + len(chunk.data) > HOLD_LIMIT:
            await asyncio.wait(set(pending), return_when=asyncio.FIRST_COMPLETED)
        done = ctx.loop.create_future()
        pending.add(done)
        ctx.held_bytes += len(chunk.data)
        ctx.detach(self._later(ctx, emit, chunk, delay_ms, done))

    async def _hold(self, ctx: ToxicContext, chunk: Chunk, delay_ms: int) -> None:
        wait = delay_ms / 1000 - (ctx.now() - chunk.t)
        if wait > 0:
            await ctx.sleep(wait)
            chunk.t += wait

    async def _emit(self, ctx: ToxicContext, emit: Emit, chunk: Chunk) -> None:
        if self.attributes["keep_order"] and not ctx.state.get("pending"):
            await emit(chunk)
            return
        async with chain_lock(ctx):
            await emit(chunk)

    async def _later(
        self,
        ctx: ToxicContext,
        emit: Emit,
        chunk: Chunk,
        delay_ms: int,
        done: asyncio.Future[None],
    ) -> None:
        try:
            await self._hold(ctx, chunk, delay_ms)
            async with chain_lock(ctx):
                await emit(chunk)
        finally:
            ctx.held_bytes -= len(chunk.data)
            ctx.state.get("pending", set()).discard(done)
            if not done.done():
                done.set_result(None)

    async def on_eof(self, ctx: ToxicContext) -> None:
        """Delayed frames leave before the EOF does."""
        pending: set[asyncio.Future[None]] = ctx.state.get("pending", set())
        if pending:
            await asyncio.wait(set(pending))
