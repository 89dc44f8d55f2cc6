"""``bandwidth``: limit a link to ``rate`` KB/s (KB = 1000 bytes, as Toxiproxy).

Why a virtual clock: Toxiproxy sleeps ``len/rate`` per chunk and carries the
timer error into the next chunk; keeping one absolute "next byte may leave at"
deadline per link does the same with no drift, so the rate holds within a few
percent from 1 KB/s to 10 MB/s. Idle time earns no credit (the clock
never lags more than 10 ms behind now). Chunks bigger than 100 ms worth of data are cut into
100 ms slices, so a slow link still trickles instead of bursting; whole frames
are never cut. ``rate = 0`` holds the data forever without closing: the
testcontainers "cut connection" idiom relies on it, and removing or updating
the toxic lets the held data through at once. Any Go int64 is accepted, as
Toxiproxy accepts it: a negative rate (Toxiproxy panics on the first chunk and
the whole server dies) stalls like 0, which is what Toxiproxy's own
``rate <= 0`` branch intends; a rate beyond what a link can carry is no limit.
"""

from __future__ import annotations

from faultlab.toxics._common import INT64_MAX, INT64_MIN
from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

__all__ = ["Bandwidth"]

SLICE_SECONDS = 0.1
CATCH_UP_SECONDS = 0.01
_STALL_POLL = 3600.0


@register_toxic
class Bandwidth(Toxic):
    type_name = "bandwidth"
    description = "limit the link to rate KB/s (1 KB = 1000 bytes); 0 or less stalls it"
    ignores_unknown_attributes = True  # Toxiproxy's toxic: its clients send extra keys
    attributes_spec = {
        "rate": Attr(
            int,
            0,
            INT64_MIN,
            INT64_MAX,
            "KB/s (1000 bytes); 0 or less stalls without closing",
            generate=(1000, 1),  # more bandwidth is milder; 0 is left to explicit tests
        ),
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        rate: int = self.attributes["rate"]
        if rate <= 0:
            ctx.record("stall", chunk)
            while await ctx.sleep(_STALL_POLL):
                pass  # only an update or removal releases the data
            ctx.record("release", chunk)
            await emit(chunk)
            return
        bytes_per_second = rate * 1000
        now = ctx.now()
        # Lateness up to CATCH_UP (timer wake-up, writes, journaling) is made up for, not
        # lost; a longer idle gap earns no credit.
        due: float = max(ctx.state.get("next", now), now - CATCH_UP_SECONDS)
        start = due
        data = chunk.data
        piece = len(data) if chunk.frame else max(1, int(bytes_per_second * SLICE_SECONDS))
        offset = 0
        while offset < len(data):
            size = min(piece, len(data) - offset)
            due += size / bytes_per_second
            if not await ctx.sleep(due - ctx.now()):
                ctx.state["next"] = ctx.now()
                ctx.record("throttle", chunk, rate=rate, interrupted=True, sent=offset)
                await emit(_part(chunk, data[offset:]))  # don't drop data on the floor
                return
            await emit(chunk if size == len(data) else _part(chunk, data[offset : offset + size]))
            offset += size
        ctx.state["next"] = due
        ctx.record(
            "throttle",
            chunk,
            rate=rate,
            wait_ms=round((due - now) * 1000, 3),
            backlog_ms=round((start - now) * 1000, 3),  # < 0: caught up on lateness
        )


def _part(chunk: Chunk, data: bytes) -> Chunk:
    return Chunk(data, chunk.t, chunk.index, chunk.frame)
