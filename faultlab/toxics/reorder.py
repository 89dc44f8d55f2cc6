"""``reorder``: hold frames in a window and release them shuffled (seeded), losing none.

Why: unordered transports (UDP) and parallel workers deliver out of order,
and pipelining clients must match replies by id. Frames are held until
``window`` are waiting, or they add up to ``HOLD_LIMIT`` bytes (memory stays
bounded whatever the frame size), or the oldest has waited ``max_hold_ms`` (so a
lone request is not held for ever), or the source reaches EOF, or the toxic is
updated or removed; then the held frames leave in an order drawn from the
link's seeded RNG. Every release is journaled with its frame index.
"""

from __future__ import annotations

from faultlab.toxics._common import chain_lock
from faultlab.toxics.base import HOLD_LIMIT, Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

MAX_MS = 60_000


@register_toxic
class Reorder(Toxic):
    type_name = "reorder"
    description = "hold `window` frames and release them shuffled (max_hold_ms at most)"
    needs_frames = True
    attributes_spec = {
        "window": Attr(int, 4, 2, 1000, "frames held before a shuffled release", generate=(2, 8)),
        "max_hold_ms": Attr(
            int, 100, 1, MAX_MS, "longest a frame waits for the window", generate=(1, 100)
        ),
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        async with chain_lock(ctx):
            held: list[tuple[Chunk, Emit]] = ctx.state.setdefault("held", [])
            held.append((chunk, emit))
            ctx.held_bytes += len(chunk.data)
            if len(held) == 1:
                batch = ctx.state["batch"] = int(ctx.state.get("batch", 0)) + 1
                ctx.spawn(self._expire(ctx, batch))
            if len(held) >= self.attributes["window"]:
                await self._flush(ctx, "window")
            elif ctx.held_bytes >= HOLD_LIMIT:
                await self._flush(ctx, "bytes")

    async def _expire(self, ctx: ToxicContext, batch: int) -> None:
        if await ctx.sleep(self.attributes["max_hold_ms"] / 1000):
            # detached: a removal cancelling this timer must not cut a release short
            ctx.detach(self._release(ctx, "max_hold", batch))

    async def _flush(self, ctx: ToxicContext, reason: str) -> None:
        """Release every held frame in a seeded random order (the chain lock is held)."""
        held: list[tuple[Chunk, Emit]] = ctx.state.get("held", [])
        ctx.state["held"] = []
        ctx.held_bytes = 0
        ctx.state["batch"] = int(ctx.state.get("batch", 0)) + 1  # disarm the timer
        if not held:
            return
        order = list(range(len(held)))
        ctx.rng.shuffle(order)
        for position, i in enumerate(order):
            chunk, emit = held[i]
            ctx.record("reorder", chunk, position=position, held=len(held), reason=reason)
            await emit(chunk)

    async def on_eof(self, ctx: ToxicContext) -> None:
        async with chain_lock(ctx):
            await self._flush(ctx, "eof")

    def stop(self, ctx: ToxicContext) -> None:
        if ctx.state.get("held"):
            ctx.detach(self._release(ctx, "removed"))

    async def _release(self, ctx: ToxicContext, reason: str, batch: int | None = None) -> None:
        async with chain_lock(ctx):
            if batch is None or ctx.state.get("batch") == batch:
                await self._flush(ctx, reason)
