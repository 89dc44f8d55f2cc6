"""``latency``: delay each chunk by ``latency`` ± ``jitter`` ms, counted from its arrival.

As Toxiproxy: the delay is uniform over [latency-jitter, latency+jitter), time
already spent queued counts (chunks are pipelined, not delayed cumulatively),
order is kept, and an interrupted wait forwards the chunk at once. A chunk's
timestamp advances by its full delay, so stacked latency toxics add up even for
chunks that queued behind others (they are pipelined through every stage).
"""

from __future__ import annotations

from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

__all__ = ["Latency"]

MAX_MS = 3_600_000


@register_toxic
class Latency(Toxic):
    type_name = "latency"
    description = "delay every chunk by latency ± jitter ms"
    ignores_unknown_attributes = True  # Toxiproxy's toxic: its clients send extra keys
    attributes_spec = {
        "latency": Attr(int, 0, 0, MAX_MS, "milliseconds", generate=(0, 300)),
        "jitter": Attr(int, 0, 0, MAX_MS, "milliseconds", generate=(0, 50)),
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        latency, jitter = self.attributes["latency"], self.attributes["jitter"]
        delay_ms = latency + (ctx.rng.randrange(2 * jitter) - jitter if jitter else 0)
        wait = delay_ms / 1000 - (ctx.now() - chunk.t)
        completed = await ctx.sleep(wait) if wait > 0 else True
        chunk.t += max(delay_ms, 0) / 1000  # the next latency toxic counts from here: they add up
        ctx.record("delay", chunk, delay_ms=delay_ms, interrupted=not completed)
        await emit(chunk)
