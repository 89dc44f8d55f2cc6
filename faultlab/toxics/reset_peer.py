"""``reset_peer``: drop the first chunk (or EOF) in its direction, reset after ``timeout`` ms.

Why: ECONNRESET mid-request is the failure clients handle worst, and a plain
close cannot produce it. As Toxiproxy: the countdown starts at the first data
in this direction (not at creation), that chunk is dropped, and the wait is
not interruptible: the reset happens even if the toxic is updated or removed
meanwhile (the dropped chunk left the stream corrupt anyway). Both sockets
are then closed with SO_LINGER 0, so both peers see ECONNRESET.

Differences from Toxiproxy, on purpose: SO_LINGER 0 is set when the reset
fires, not when a link starts, so a reset_peer whose toxicity draw chose
"inactive" leaves ordinary closes alone (Toxiproxy #603), and a reset_peer
added to an already open connection resets it too (Toxiproxy sends a FIN).
Any Go int64 is accepted, as Toxiproxy accepts it: a negative timeout resets
at once, like 0 (Go's timer fires at once).
"""

from __future__ import annotations

from faultlab._timers import sleep as precise_sleep
from faultlab.toxics._common import INT64_MAX, INT64_MIN
from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

__all__ = ["ResetPeer"]


@register_toxic
class ResetPeer(Toxic):
    type_name = "reset_peer"
    description = "on first data, drop it and reset the connection (RST) after timeout ms"
    ignores_unknown_attributes = True  # Toxiproxy's toxic: its clients send extra keys
    attributes_spec = {
        "timeout": Attr(
            int,
            0,
            INT64_MIN,
            INT64_MAX,
            "milliseconds, counted from the first data; 0 or less: at once",
            generate=(500, 0),
        ),
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        await self._reset(ctx, chunk)

    async def on_eof(self, ctx: ToxicContext) -> None:
        await self._reset(ctx, None)

    async def _reset(self, ctx: ToxicContext, chunk: Chunk | None) -> None:
        timeout: int = self.attributes["timeout"]
        ctx.record("drop", chunk, eof=chunk is None, timeout_ms=timeout)
        await precise_sleep(max(timeout, 0) / 1000)  # not interruptible, as Toxiproxy
        ctx.record("reset", timeout_ms=timeout)
        ctx.reset_connection()
