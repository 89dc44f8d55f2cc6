"""``truncate``: cut a chunk (or a whole frame) to its first ``keep`` bytes.

Why: a message that ends early is a fault every parser must refuse, and
this module is also the complete example of adding a toxic (docs/toxics.md):
importing it registers the type, and the proxy, the API catalogue and the
Hypothesis strategies all work from what it declares here.
"""

from __future__ import annotations

from faultlab.toxics import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic


@register_toxic
class Truncate(Toxic):
    type_name = "truncate"
    description = "cut each chunk or frame to its first `keep` bytes, with a probability"
    attributes_spec = {
        # (1024, 0): keeping more is milder, so generated tests shrink toward 1024
        "keep": Attr(int, 0, 0, 1 << 20, "bytes kept of a cut chunk", generate=(1024, 0)),
        # no generate: drawn from 0.0 (the mildest) up to 1.0 in steps of 0.001
        "probability": Attr(float, 1.0, 0.0, 1.0, "chance each chunk is cut"),
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        keep: int = self.attributes["keep"]
        cut = ctx.rng.random() < self.attributes["probability"] and len(chunk.data) > keep
        if not cut:
            ctx.record("pass", chunk)
            await emit(chunk)
            return
        ctx.record("truncate", chunk, kept=keep)  # the journal says what the toxic did
        if keep:  # nothing kept: nothing to send
            await emit(Chunk(chunk.data[:keep], chunk.t, chunk.index, chunk.frame))
