"""``limit_data``: let exactly ``bytes`` bytes through on a link, then close the connection.

Why: a transfer cut at a precise byte offset is how truncated responses and
half-written requests are reproduced. As Toxiproxy: bytes are counted per
link, the chunk that crosses the limit is truncated so exactly ``bytes`` get
through, then the whole connection is closed (``bytes = 0`` closes on the
first chunk, and so does a negative ``bytes``: any Go int64 is accepted, as
Toxiproxy accepts it). The count lives in ``ctx.state``, which survives updates, so
raising ``bytes`` on a live connection lets more data through; a toxic newly
added to an open connection starts counting from zero. On frame links a frame
is never truncated (it would re-frame as a shorter, bogus message): the frame
that would cross the limit is dropped and the connection closed.
"""

from __future__ import annotations

from faultlab.toxics._common import INT64_MAX, INT64_MIN
from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

__all__ = ["LimitData"]


@register_toxic
class LimitData(Toxic):
    type_name = "limit_data"
    description = "pass exactly `bytes` bytes, then close the connection"
    ignores_unknown_attributes = True  # Toxiproxy's toxic: its clients send extra keys
    attributes_spec = {
        "bytes": Attr(
            int,
            0,
            INT64_MIN,
            INT64_MAX,
            "bytes let through per link; 0 or less closes on the first data",
            generate=(256, 0),
        ),
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        limit: int = self.attributes["bytes"]
        sent: int = ctx.state.get("sent", 0)
        remaining = max(limit - sent, 0)
        truncated = len(chunk.data) > remaining
        if not truncated:
            ctx.state["sent"] = sent = sent + len(chunk.data)
            ctx.record("pass", chunk, sent=sent, limit=limit)
            await emit(chunk)
        else:
            keep = 0 if chunk.frame else remaining
            ctx.state["sent"] = sent = sent + keep
            ctx.record("truncate", chunk, kept=keep, sent=sent, limit=limit)
            if keep:
                await emit(Chunk(chunk.data[:keep], chunk.t, chunk.index, chunk.frame))
        if truncated or sent >= limit:
            ctx.record("limit_reached", sent=sent, limit=limit)
            ctx.close_connection()
