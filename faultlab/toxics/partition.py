"""``partition``: a black hole: everything in its direction vanishes, nothing is closed.

Why: a network partition is the fault a timeout exists for. Unlike
Toxiproxy's ``timeout`` nothing is ever closed, and unlike ``drop`` it works
on raw byte streams too (whole chunks vanish). Added to one stream it is a
one-way partition; add it to both streams for a full one. The EOF is held
as well (a FIN does not cross a partition) until the toxic is removed.
"""

from __future__ import annotations

from faultlab.toxics.base import Chunk, Emit, Toxic, ToxicContext, register_toxic


@register_toxic
class Partition(Toxic):
    type_name = "partition"
    description = "drop everything in this direction, without closing"
    attributes_spec = {}

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        ctx.record("blackhole", chunk)

    async def on_eof(self, ctx: ToxicContext) -> None:
        ctx.record("eof_held")
        await ctx.interrupted.wait()
