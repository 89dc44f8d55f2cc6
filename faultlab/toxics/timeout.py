"""``timeout``: swallow every chunk; close the connection after ``timeout`` ms of silence.

Why it matters: it is how Toxiproxy users simulate a peer that accepted the
connection and then hung. Exactly as Toxiproxy: data in this direction is
dropped, never buffered; the countdown restarts on every chunk (Toxiproxy
makes a new timer per loop turn), so it reads "close after ``timeout`` ms with
no data in this direction" and continuous traffic keeps the connection open;
``timeout <= 0`` never closes (any Go int64 is accepted, as Toxiproxy
accepts it). Removing the toxic tears live connections down
(``closes_on_remove``): data was dropped, so the stream would be corrupt.
"""

from __future__ import annotations

from faultlab.toxics._common import INT64_MAX, INT64_MIN
from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

__all__ = ["Timeout"]


@register_toxic
class Timeout(Toxic):
    type_name = "timeout"
    description = "drop all data; close after timeout ms without data (0 or less: never)"
    closes_on_remove = True
    ignores_unknown_attributes = True  # Toxiproxy's toxic: its clients send extra keys
    attributes_spec = {
        "timeout": Attr(
            int,
            0,
            INT64_MIN,
            INT64_MAX,
            "milliseconds; 0 or less never closes",
            generate=(1, 500),
            also=(0,),
        ),
    }

    def start(self, ctx: ToxicContext) -> None:
        ctx.state["last"] = ctx.now()  # a (re)started toxic restarts the countdown
        if self.attributes["timeout"] > 0:
            ctx.spawn(self._countdown(ctx))

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        ctx.state["last"] = ctx.now()
        ctx.record("drop", chunk)

    async def on_eof(self, ctx: ToxicContext) -> None:
        ctx.cancel_tasks()  # the EOF travels on; nothing left to time out

    async def _countdown(self, ctx: ToxicContext) -> None:
        limit = self.attributes["timeout"] / 1000
        while True:
            remaining = ctx.state["last"] + limit - ctx.now()
            if remaining <= 0:
                break
            if not await ctx.sleep(remaining):
                return  # updated or removed
        ctx.record(
            "timeout",
            timeout_ms=self.attributes["timeout"],
            idle_ms=round((ctx.now() - ctx.state["last"]) * 1000, 3),
        )
        ctx.close_connection()
