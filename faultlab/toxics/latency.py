"""``latency``: delay each chunk by ``latency`` ± ``jitter`` ms, counted from its arrival.

As Toxiproxy: the delay is uniform over [latency-jitter, latency+jitter), time
already spent queued counts (chunks are pipelined, not delayed cumulatively),
order is kept, and an interrupted wait forwards the chunk at once. A chunk's
timestamp advances by its full delay, so stacked latency toxics add up even for
chunks that queued behind others (they are pipelined through every stage).

netem's distributions are faultlab's extension (``distribution``, ``correlation``;
see :mod:`faultlab.toxics._netem`): with ``normal``, ``pareto`` or ``paretonormal``,
``jitter`` is sigma as in ``tc qdisc ... delay T J distribution D`` (netem's table
shapes, capped at 4 sigma), and ``correlation`` (percent) correlates successive
delays without shrinking their spread. Left at their defaults they are not
shown in the toxic's attributes and draw nothing: Toxiproxy's meaning, its
JSON and its random draws (so seeded journals replay) are unchanged.

Each chunk it delays is journaled (``fault``, decision ``delay``, ``delay_ms``); a
delay of 0 or less changed nothing and is not journaled, and a latency that can
make none (0 or less, no jitter) is left out of the data path: a placeholder costs
nothing.

``latency`` and ``jitter`` take Go's whole int64 range, as Toxiproxy does: 0 or less
means no delay (no jitter); a delay too long to schedule waits until the toxic is
updated or removed.
"""

from __future__ import annotations

from typing import Any

from faultlab.toxics._common import INT64_MAX, INT64_MIN
from faultlab.toxics._netem import DISTRIBUTIONS, CorrelatedNormal, quantile
from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

__all__ = ["Latency"]

MAX_MS = 3_600_000
_EXTENSION = {"distribution": "uniform", "correlation": 0.0}
"""faultlab's attributes and their Toxiproxy-neutral defaults (hidden while at them)."""


@register_toxic
class Latency(Toxic):
    type_name = "latency"
    description = "delay every chunk by latency ± jitter ms"
    ignores_unknown_attributes = True  # Toxiproxy's toxic: its clients send extra keys
    attributes_spec = {
        "latency": Attr(
            int, 0, INT64_MIN, INT64_MAX, "milliseconds; 0 or less: no delay", generate=(0, 300)
        ),
        "jitter": Attr(
            int, 0, INT64_MIN, INT64_MAX, "milliseconds; 0 or less: no jitter", generate=(0, 50)
        ),
        # Toxiproxy's toxic: strategies keep to what a real Toxiproxy does (drawn: defaults)
        "distribution": Attr(
            str,
            "uniform",
            help="uniform (± jitter, Toxiproxy's) | normal | pareto | paretonormal "
            "(jitter is sigma, as netem's)",
            choices=DISTRIBUTIONS,
            options=("uniform",),
        ),
        "correlation": Attr(
            float,
            0.0,
            0.0,
            100.0,
            "percent: successive delays correlated (the spread kept)",
            options=(0.0,),  # not drawn: a search's examples stay those of Toxiproxy's toxic
        ),
    }

    def update(self, attributes: dict[str, Any]) -> None:
        """Merge, then hide the extension attributes left at their defaults (Toxiproxy's JSON)."""
        super().update(attributes)
        for name, default in _EXTENSION.items():
            if self.attributes.get(name, default) == default:
                self.attributes.pop(name, None)

    @classmethod
    def fix(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        for name, default in _EXTENSION.items():
            if attributes.get(name, default) == default:
                attributes.pop(name, None)
        return attributes

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        attrs = self.attributes
        latency, jitter = attrs["latency"], attrs["jitter"]
        if "distribution" in attrs or "correlation" in attrs:
            delay_ms: float = self._netem_delay(ctx, latency, jitter) if jitter > 0 else latency
        else:  # Toxiproxy's: exactly its draw, none without jitter
            delay_ms = latency + (ctx.rng.randrange(2 * jitter) - jitter if jitter > 0 else 0)
        wait = delay_ms / 1000 - (ctx.now() - chunk.t)
        completed = await ctx.sleep(wait) if wait > 0 else True
        chunk.t += max(delay_ms, 0) / 1000  # the next latency toxic counts from here: they add up
        if delay_ms > 0:  # a delay of 0 or less changed nothing: no fault to journal
            ctx.record("delay", chunk, delay_ms=delay_ms, interrupted=not completed)
        await emit(chunk)

    def passes_everything(self) -> bool:
        """No delay to make (latency 0 or less, no jitter): nothing drawn, nothing journaled."""
        attrs = self.attributes
        return bool(attrs["jitter"] <= 0 and attrs["latency"] <= 0)

    def _netem_delay(self, ctx: ToxicContext, latency: int, jitter: int) -> float:
        """One delay from the link's correlated source (kept in ``ctx.state`` across chunks)."""
        distribution = self.attributes.get("distribution", "uniform")
        correlation = self.attributes.get("correlation", 0.0) / 100.0
        source = ctx.state.get("netem_source")
        if not isinstance(source, CorrelatedNormal) or source.c != correlation:
            source = ctx.state["netem_source"] = CorrelatedNormal(ctx.rng, correlation)
        if distribution == "uniform":  # Toxiproxy's range, whole milliseconds
            return latency - jitter + min(int(source.uniform() * 2 * jitter), 2 * jitter - 1)
        delay = latency + jitter * quantile(distribution, source.next())
        return round(min(max(delay, 0.0), MAX_MS), 3)
