"""``latency``: delay each chunk by ``latency`` ± ``jitter`` ms, counted from its arrival.

As Toxiproxy: the delay is uniform over [latency-jitter, latency+jitter), time
already spent queued counts (chunks are pipelined, not delayed cumulatively),
order is kept, and an interrupted wait forwards the chunk at once.
"""

from __future__ import annotations

from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

MAX_MS = 3_600_000


@register_toxic
class Latency(Toxic):
    type_name = "latency"
    description = "delay every chunk by latency ± jitter ms"
    attributes_spec = {
        "latency": Attr(int, 0, 0, MAX_MS, "milliseconds"),
        "jitter": Attr(int, 0, 0, MAX_MS, "milliseconds"),
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        latency, jitter = self.attributes["latency"], self.attributes["jitter"]
        delay_ms = latency + (ctx.rng.randrange(2 * jitter) - jitter if jitter else 0)
        wait = delay_ms / 1000 - (ctx.now() - chunk.t)
        if wait > 0:
            await ctx.sleep(wait)
            chunk.t += wait  # stacked latency toxics add up
        ctx.record("delay", chunk, delay_ms=delay_ms)
        await emit(chunk)
