"""``slow_open``: the first data of a connection waits ``delay_ms``: a slow accept or handshake.

Why: connection set-up cost (TLS handshakes, accept backlogs, cold
starts) hits only the first call, which is what connect timeouts and
connection pools must absorb. ``mode="first"`` holds the first chunk/frame
``delay_ms`` from its arrival; ``mode="connection"`` holds everything until
``delay_ms`` after the connection was opened (the kernel has already
accepted a TCP connection, so a slow accept shows as silence). Later data
queues behind, in order; every later chunk passes untouched.
"""

from __future__ import annotations

from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

MAX_MS = 3_600_000
MODES = ("first", "connection")


@register_toxic
class SlowOpen(Toxic):
    type_name = "slow_open"
    description = "delay the first chunk of each connection by delay_ms"
    attributes_spec = {
        "delay_ms": Attr(int, 0, 0, MAX_MS, "milliseconds", generate=(0, 300)),
        "mode": Attr(
            str, "first", help="first: from the first chunk; connection: from open", choices=MODES
        ),
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        if ctx.state.get("opened"):
            await emit(chunk)
            return
        ctx.state["opened"] = True
        delay = self.attributes["delay_ms"] / 1000
        until = (ctx.opened_at if self.attributes["mode"] == "connection" else chunk.t) + delay
        wait = until - ctx.now()
        if wait > 0:
            await ctx.sleep(wait)
            chunk.t += wait
        ctx.record(
            "slow_open",
            chunk,
            delay_ms=self.attributes["delay_ms"],
            waited_ms=round(max(wait, 0) * 1000, 3),
        )
        await emit(chunk)
