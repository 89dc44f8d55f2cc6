"""``drop``: lose whole frames with a probability, optionally in bursts (Gilbert-Elliott style).

Why frames, not bytes: losing part of a byte stream only desynchronises the
framing, which is ``corrupt``'s job; real loss (UDP, a queue, a crashed
broker) loses whole messages. ``correlation`` makes losses bursty: right
after a drop the chance of dropping the next frame rises from ``probability``
``p`` to ``p + correlation * (1 - p)``, so the long-run rate is
``p / (1 - correlation * (1 - p))``. Each frame's draw and outcome is journaled.
"""

from __future__ import annotations

from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic


@register_toxic
class Drop(Toxic):
    type_name = "drop"
    description = "drop each frame with a probability (bursty with correlation)"
    needs_frames = True
    attributes_spec = {
        "probability": Attr(float, 0.0, 0.0, 1.0, "chance to drop each frame"),
        "correlation": Attr(
            float, 0.0, 0.0, 1.0, "after a drop, share of the rest added", generate=(0.0, 0.5)
        ),
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        p, c = self.attributes["probability"], self.attributes["correlation"]
        threshold = p + c * (1.0 - p) if ctx.state.get("dropped_last") else p
        draw = ctx.rng.random()
        dropped = draw < threshold
        ctx.state["dropped_last"] = dropped
        ctx.record(
            "drop" if dropped else "pass",
            chunk,
            draw=round(draw, 6),
            threshold=round(threshold, 6),
        )
        if not dropped:
            await emit(chunk)
