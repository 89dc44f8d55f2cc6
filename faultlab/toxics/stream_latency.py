"""``stream_latency``: delay the selected gRPC calls, and only them.

Why beside ``latency``: ``latency`` slows every byte of the connection, so one slow method
holds up every call multiplexed with it, which is not what a slow handler or a slow
backend does. On a proxy with ``h2`` framing (``protocol="grpc"``) this delays the frames
of the selected calls' streams on this toxic's stream by ``latency`` ± ``jitter`` ms (drawn
once per call from the seeded RNG). Upstream the request's messages reach the server late
(the call itself opens on time: HTTP/2 streams must open in order); downstream the answer
reaches the client late. Every message of a stream is shifted by the same delay. Other
calls on the connection pass at once (the relay re-encodes header blocks that overtake a
delayed one). Calls are selected as ``rpc_error`` selects them (``method``,
``match_header`` upstream; ``nth``, ``times``, ``sequence``, ``every``). A removal or
update releases what is held at once; held frames count towards the link's bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from faultlab.codecs.framing.h2 import HEADERS, RST_STREAM
from faultlab.toxics import _grpcwire as grpcwire
from faultlab.toxics._common import chain_lock
from faultlab.toxics._h2call import H2_CALL_ATTRIBUTES, H2CallToxic
from faultlab.toxics.base import (
    HOLD_LIMIT,
    Attr,
    Chunk,
    Emit,
    ToxicContext,
    register_toxic,
)

MAX_MS = 3_600_000


class _Held:
    __slots__ = ("delay", "done", "queue", "running")

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.queue: deque[Chunk] = deque()
        self.running = False
        self.done = False


@register_toxic
class StreamLatency(H2CallToxic):
    type_name = "stream_latency"
    description = "delay the selected gRPC calls' frames by latency ± jitter ms, others untouched"
    attributes_spec = {
        "latency": Attr(int, 0, 0, MAX_MS, "milliseconds", generate=(0, 300)),
        "jitter": Attr(int, 0, 0, MAX_MS, "uniform ± milliseconds, drawn per call", options=(0,)),
        **H2_CALL_ATTRIBUTES,
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        unit = grpcwire.response_unit(chunk)
        held: dict[int, _Held] = ctx.state.setdefault("held", {})
        if unit is None:
            await self._pass(ctx, chunk, emit)
            return
        sid = unit.stream
        state = held.get(sid)
        if state is None and unit.type == HEADERS:
            state = self._select(ctx, chunk, unit, held)
            if state is not None and ctx.direction == "upstream":
                # A client opens streams in increasing order: a stream's first frame may not
                # come after a later stream's. The call opens on time; its messages are late.
                await self._pass(ctx, chunk, emit)
                return
        if state is None:
            await self._pass(ctx, chunk, emit)
            return
        left = _left(ctx)
        while ctx.held_bytes + len(chunk.data) > HOLD_LIMIT and ctx.held_bytes:
            left.clear()
            await left.wait()  # backpressure: the link stops reading meanwhile
        state.queue.append(chunk)
        ctx.held_bytes += len(chunk.data)
        if unit.end_stream or unit.type == RST_STREAM:
            state.done = True
        if not state.running:
            state.running = True
            ctx.detach(self._release(ctx, emit, sid, state))

    def _select(
        self, ctx: ToxicContext, chunk: Chunk, unit: Any, held: dict[int, _Held]
    ) -> _Held | None:
        starts = unit.header(":method" if ctx.direction == "upstream" else ":status")
        if starts is None:
            return None
        found = grpcwire.request_head(chunk) if ctx.direction == "upstream" else None
        head = found[1] if found is not None else None
        path = [head.target or ""] if head is not None else None
        n = self.matcher.select(ctx, chunk, head, path, {"stream": unit.stream})
        if n is None:
            return None
        latency, jitter = self.attributes["latency"], self.attributes["jitter"]
        delay_ms = latency
        if jitter:
            delay_ms = max(0, latency + ctx.rng.randrange(2 * jitter + 1) - jitter)
        ctx.record("delay", chunk, stream=unit.stream, delay_ms=delay_ms, match=n)
        if len(held) >= grpcwire.ArmedStreams.LIMIT:
            held.pop(next(iter(held)))
        state = held[unit.stream] = _Held(delay_ms / 1000)
        return state

    async def _pass(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        if ctx.state.get("held"):
            async with chain_lock(ctx):  # never inside a held stream's emit
                await emit(chunk)
        else:
            await emit(chunk)

    async def _release(self, ctx: ToxicContext, emit: Emit, sid: int, state: _Held) -> None:
        try:
            while state.queue:
                chunk = state.queue[0]
                wait = chunk.t + state.delay - ctx.now()
                if wait > 0:
                    await ctx.sleep(wait)  # an update or removal wakes it: release at once
                state.queue.popleft()
                ctx.held_bytes -= len(chunk.data)
                _left(ctx).set()
                async with chain_lock(ctx):
                    await emit(chunk)
        finally:
            state.running = False
            if state.done and not state.queue:
                ctx.state.get("held", {}).pop(sid, None)

    async def on_eof(self, ctx: ToxicContext) -> None:
        """Held frames leave before the EOF does."""
        left = _left(ctx)
        while any(s.queue for s in ctx.state.get("held", {}).values()):
            left.clear()
            await left.wait()


def _left(ctx: ToxicContext) -> asyncio.Event:
    """Set each time a held frame leaves (what a full hold or the EOF waits for)."""
    event = ctx.state.get("left")
    if not isinstance(event, asyncio.Event):
        event = ctx.state["left"] = asyncio.Event()
    return event
