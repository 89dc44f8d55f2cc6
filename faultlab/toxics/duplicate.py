"""``duplicate``: deliver a frame twice, as a retransmitting network or an at-least-once queue.

Why: a non-idempotent call executed twice is the bug idempotency keys
exist for; the second copy must reach the server as a whole frame (hence
``needs_frames``). The copy follows ``delay_ms`` after the original; frames
behind it wait, so order is kept (use ``reorder`` to mix them up).
"""

from __future__ import annotations

from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

MAX_MS = 60_000


@register_toxic
class Duplicate(Toxic):
    type_name = "duplicate"
    description = "send a frame twice with a probability, the copy delay_ms later"
    needs_frames = True
    attributes_spec = {
        "probability": Attr(float, 1.0, 0.0, 1.0, "chance to duplicate each frame"),
        "delay_ms": Attr(
            int, 0, 0, MAX_MS, "milliseconds between original and copy", generate=(0, 100)
        ),
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        draw = ctx.rng.random()
        duplicated = draw < self.attributes["probability"]
        ctx.record("duplicate" if duplicated else "pass", chunk, draw=round(draw, 6))
        copy = Chunk(chunk.data, chunk.t, chunk.index, chunk.frame)
        await emit(chunk)
        if duplicated:
            await ctx.sleep(self.attributes["delay_ms"] / 1000)
            copy.t = ctx.now()
            await emit(copy)
