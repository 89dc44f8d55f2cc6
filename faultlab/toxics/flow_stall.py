"""``flow_stall``: HTTP/2 flow control stalls: the WINDOW_UPDATE frames on this stream are
held back.

Why: a receiver that stops granting window (a slow consumer, a full buffer) stalls the
sender without closing anything: the connection and its pings stay healthy while a large
message or a stream stops moving, and only a deadline or a keepalive policy ends the call.
On a proxy with ``h2`` framing, the WINDOW_UPDATE frames travelling on this toxic's stream
are withheld for ``duration`` ms (0: until the toxic is removed), then released summed up
per stream, so nothing is lost. On ``upstream`` the client's updates are held: the
server's responses stall once their window is spent; on ``downstream`` the server's: the
client's uploads stall. Small calls that fit in the window are not slowed at all.
"""

from __future__ import annotations

from faultlab.codecs.framing.h2 import WINDOW_UPDATE, H2Unit, window_update_frame
from faultlab.toxics._h2call import h2_reason
from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

MAX_MS = 3_600_000


@register_toxic
class FlowStall(Toxic):
    type_name = "flow_stall"
    description = "hold back HTTP/2 WINDOW_UPDATE frames for duration ms (0: until removed)"
    needs_frames = True
    h2_aware = True
    attributes_spec = {
        "duration": Attr(
            int, 0, 0, MAX_MS, "milliseconds; 0 until removed", generate=(100, 2000), also=(0,)
        ),
    }

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        return h2_reason(framing)

    def start(self, ctx: ToxicContext) -> None:
        ctx.state["held"] = {}
        ctx.state["released"] = False

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        unit = chunk.parsed
        if (
            ctx.state["released"]
            or not isinstance(unit, H2Unit)
            or unit.type != WINDOW_UPDATE
            or len(unit.data) < 4
        ):
            await emit(chunk)
            return
        held: dict[int, int] = ctx.state["held"]
        if not held and self.attributes["duration"] > 0 and "timer" not in ctx.state:
            ctx.state["timer"] = True
            ctx.spawn(self._release_later(ctx))
        increment = int.from_bytes(unit.data[:4], "big") & 0x7FFFFFFF
        held[unit.stream] = min(held.get(unit.stream, 0) + increment, 0x7FFFFFFF)
        ctx.record("hold", chunk, stream=unit.stream, increment=increment)

    async def _release_later(self, ctx: ToxicContext) -> None:
        if await ctx.sleep(self.attributes["duration"] / 1000):
            self._release(ctx)

    def _release(self, ctx: ToxicContext) -> None:
        ctx.state["released"] = True
        held: dict[int, int] = ctx.state.pop("held", {})
        ctx.state["held"] = {}
        if not held or ctx.h2 is None:
            return
        frames = b"".join(window_update_frame(s, inc) for s, inc in sorted(held.items()) if inc)
        ctx.record("release", streams=len(held), increment=sum(held.values()))
        ctx.h2.inject(ctx.direction, frames)

    def stop(self, ctx: ToxicContext) -> None:
        self._release(ctx)
