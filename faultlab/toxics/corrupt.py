"""``corrupt``: flip bits, at ``rate`` per byte and/or one bit in a frame with ``probability``.

Why: checksums, codecs and clients must refuse damaged data, never take it
for a value. On a raw byte stream the bytes of each read are corrupted (the
damage may land in a length prefix: that is what a broken cable does). On
frames the payload is corrupted and re-framed, so frame boundaries hold and
the damage reaches the decoder; an HTTP message keeps its head intact and
only its body is damaged. Byte positions and bits come from the seeded RNG;
on raw streams they depend on how reads were cut, on frames they replay.
"""

from __future__ import annotations

import math

from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

_JOURNALED_POSITIONS = 16


@register_toxic
class Corrupt(Toxic):
    type_name = "corrupt"
    description = "flip a bit in bytes at `rate`, or one bit per frame with `probability`"
    attributes_spec = {
        "rate": Attr(
            float,
            0.0,
            0.0,
            1.0,
            "chance each byte gets one bit flipped",
            generate=(0.0, 0.01),  # 1% of bytes already garbles nearly every message
            step=0.0001,
        ),
        "probability": Attr(float, 0.0, 0.0, 1.0, "chance a chunk/frame gets one bit flipped"),
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        data = chunk.data
        start = 0
        if ctx.framing == "http" and chunk.frame:
            end = data.find(b"\r\n\r\n")
            start = len(data) if end < 0 else end + 4
        positions = self._positions(ctx, start, len(data))
        if positions:
            buf = bytearray(data)
            for pos in positions:
                buf[pos] ^= 1 << ctx.rng.randrange(8)
            chunk.data = bytes(buf)
            ctx.record(
                "corrupt",
                chunk,
                flips=len(positions),
                positions=positions[:_JOURNALED_POSITIONS],
            )
        else:
            ctx.record("pass", chunk)
        await emit(chunk)

    def _positions(self, ctx: ToxicContext, start: int, end: int) -> list[int]:
        rate, probability = self.attributes["rate"], self.attributes["probability"]
        positions: list[int] = []
        if end <= start:
            return positions
        if rate >= 1.0:
            positions = list(range(start, end))
        elif rate > 0.0:
            log_keep = math.log1p(-rate)
            pos = start - 1
            while True:  # geometric gaps: O(flips), not O(bytes)
                gap = int(math.log1p(-ctx.rng.random()) / log_keep)
                pos += gap + 1
                if pos >= end:
                    break
                positions.append(pos)
        if probability > 0.0 and ctx.rng.random() < probability:
            positions.append(ctx.rng.randrange(start, end))
        return positions
