"""``slicer``: cut each chunk into pieces of about ``average_size`` bytes, ``delay`` µs apart.

Why: parsers that assume one ``recv`` is one message break on short reads,
and only a slicer makes those short reads happen on loopback. As Toxiproxy:
a chunk is halved recursively, each cut moved by up to ±``size_variation``,
until a piece is at most ``average_size + size_variation`` bytes; pieces leave
in order with ``delay`` µs after each, and an update or removal sends the
rest of the chunk in one piece.

Every Go int is accepted, as Toxiproxy accepts it, and where Toxiproxy's
halving is defined the pieces are drawn the same way (a cut that lands on an
end of the piece is drawn again, as Toxiproxy's recursion does). Where it is
not, faultlab gives the values a safe meaning instead of Toxiproxy's crash:

- ``average_size + size_variation < 1`` (e.g. ``average_size`` 0, the default:
  Toxiproxy recurses until its stack overflows): one-byte pieces;
- ``size_variation >= average_size + 2`` (a cut can land outside the piece and
  Toxiproxy panics on the slice bounds): such a cut is clamped inside it;
- a negative ``delay`` is no delay (Go's timer fires at once).

Slicing only means something on a byte stream: on a
proxy with framing or a message transport the toxic is refused when added
(the framer would turn each piece into a frame of its own), and a frame that
reaches it anyway passes whole, journaled.
"""

from __future__ import annotations

import random
from typing import Any

from faultlab.toxics._common import INT64_MAX, INT64_MIN
from faultlab.toxics.base import (
    Attr,
    Chunk,
    Emit,
    Toxic,
    ToxicContext,
    register_toxic,
)

__all__ = ["Slicer"]

_JOURNAL_SIZES = 100
"""Journal every piece size up to this many pieces per chunk (else only count/min/max)."""


@register_toxic
class Slicer(Toxic):
    type_name = "slicer"
    description = "slice chunks into ~average_size ± size_variation bytes, delay µs apart"
    ignores_unknown_attributes = True  # Toxiproxy's toxic: its clients send extra keys
    attributes_spec = {
        "average_size": Attr(
            int, 0, INT64_MIN, INT64_MAX, "bytes; below 1 (with no variation): 1", generate=(64, 1)
        ),
        "size_variation": Attr(
            int,
            0,
            INT64_MIN,
            INT64_MAX,
            "± bytes per cut (drawn below average_size)",
            generate=(0, 32),
        ),
        "delay": Attr(
            int, 0, INT64_MIN, INT64_MAX, "microseconds after each piece", generate=(0, 1000)
        ),
    }

    @classmethod
    def fix(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        """Draw size_variation below average_size: the range Toxiproxy documents (any value
        is accepted, but tests should exercise the meaning Toxiproxy shares)."""
        average = attributes.get("average_size", 1)
        if attributes.get("size_variation", 0) >= average:
            attributes["size_variation"] = max(0, average - 1)
        return attributes

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        if framing is not None:
            return (
                f"slicer cuts a byte stream into short reads, but with framing {framing!r} "
                "toxics see whole frames and each piece would become a frame of its own; "
                "use a proxy without framing"
            )
        if message_based:
            return (
                "slicer cuts a byte stream into short reads, but a message transport "
                "carries whole messages and each piece would become a message of its own"
            )
        return None

    def sizes(self, rng: random.Random, length: int) -> list[int]:
        """Piece sizes for a chunk of ``length`` bytes (Toxiproxy's recursive halving, made
        total: see the module docstring)."""
        average, variation = self.attributes["average_size"], self.attributes["size_variation"]
        sizes: list[int] = []
        stack = [(0, length)]
        while stack:
            start, end = stack.pop()
            if end - start - average <= variation or end - start <= 1:
                if end > start:
                    sizes.append(end - start)
                continue
            mid = start + (end - start) // 2
            if variation > 0:
                mid += rng.randrange(2 * variation) - variation
            if mid in (start, end):
                stack.append((start, end))  # an empty piece: Toxiproxy recurses on the rest
                continue
            mid = min(max(mid, start + 1), end - 1)  # Toxiproxy would panic out of bounds
            stack.append((mid, end))
            stack.append((start, mid))  # popped first: pieces come out in order
        return sizes

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        if chunk.frame:
            ctx.record("pass_frame", chunk, reason="whole frames are not sliced")
            await emit(chunk)
            return
        sizes = self.sizes(ctx.rng, len(chunk.data))
        fields: dict[str, Any] = {"pieces": len(sizes), "min": min(sizes), "max": max(sizes)}
        if len(sizes) <= _JOURNAL_SIZES:
            fields["sizes"] = sizes
        ctx.record("slice", chunk, **fields)
        delay = self.attributes["delay"] / 1_000_000
        data = chunk.data
        offset = 0
        for size in sizes:
            await emit(Chunk(data[offset : offset + size], chunk.t, chunk.index))
            offset += size
            if not await ctx.sleep(delay) and offset < len(data):
                ctx.record("slice_interrupted", chunk, rest=len(data) - offset)
                await emit(Chunk(data[offset:], chunk.t, chunk.index))
                return
