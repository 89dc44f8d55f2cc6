"""``grpc_message``: drop, duplicate, corrupt or reorder gRPC messages inside a stream.

Why: a streaming RPC's guarantees (every item once, in order, intact) are the client's and
the server's to keep, and a stream that loses, repeats, garbles or swaps one message while
the call itself stays healthy is what tests them (a buggy intermediary, a resumption that
replays, a corrupting NIC). On a proxy with ``h2`` framing (``protocol="grpc"``) this acts
on the gRPC length-prefixed messages of the selected calls' streams on this toxic's
stream: each whole message is acted on with ``probability`` (drawn from the seeded RNG), or
only the ``nth_message`` of each stream. ``action``:

- ``drop``: the message never arrives; its bytes are credited back to the sender's stream
  and connection windows, since the receiver never acknowledges them;
- ``duplicate``: the message arrives twice; the receiver's next window updates are reduced
  by the copy's size, so the sender is never granted window it did not use;
- ``corrupt``: one bit of the message's payload is flipped (its length prefix is kept, so
  the stream stays framed and the receiver's decoder meets the damage);
- ``reorder``: the message is held and delivered right after the next one (or before the
  stream ends).

Only messages that begin and end within one DATA frame are acted on (gRPC peers send each
message of up to the frame size in one frame); others pass. Calls are selected as
``rpc_error`` selects them (``method``, ``match_header`` upstream; ``nth``, ``times``,
``sequence``, ``every``).
"""

from __future__ import annotations

from faultlab.codecs.framing.h2 import (
    DATA,
    END_STREAM,
    HEADERS,
    RST_STREAM,
    GrpcMessageCounter,
    H2Unit,
    encode_frame,
)
from faultlab.toxics import _grpcwire as grpcwire
from faultlab.toxics._h2call import H2_CALL_ATTRIBUTES, H2CallToxic
from faultlab.toxics.base import (
    Attr,
    Chunk,
    Emit,
    ToxicContext,
    register_toxic,
)

ACTIONS = ("drop", "duplicate", "corrupt", "reorder")
INT32 = 2**31 - 1


class _Stream:
    __slots__ = ("counter", "held", "match")

    def __init__(self, match: int) -> None:
        self.match = match
        self.counter = GrpcMessageCounter()
        self.held: bytes | None = None


@register_toxic
class GrpcMessage(H2CallToxic):
    type_name = "grpc_message"
    description = "drop, duplicate, corrupt or reorder gRPC messages inside selected streams"
    attributes_spec = {
        "action": Attr(str, "drop", help="drop | duplicate | corrupt | reorder", choices=ACTIONS),
        "probability": Attr(
            float, 1.0, 0.0, 1.0, "chance per whole message", generate=(0.1, 1.0), step=0.05
        ),
        "nth_message": Attr(
            int,
            0,
            0,
            INT32,
            "only the Nth message of each stream (0: by probability)",
            options=(0,),
        ),
        **H2_CALL_ATTRIBUTES,
    }

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        unit = grpcwire.response_unit(chunk)
        streams: dict[int, _Stream] = ctx.state.setdefault("streams", {})
        if unit is None:
            await emit(chunk)
            return
        sid = unit.stream
        state = streams.get(sid)
        if state is None:
            if unit.type == HEADERS:
                self._select(ctx, chunk, unit, streams)
            await emit(chunk)
            return
        if unit.type == DATA:
            await self._data(ctx, chunk, unit, state, emit)
            if unit.end_stream:
                streams.pop(sid, None)
            return
        if unit.type == RST_STREAM:
            if state.held is not None:  # never delivered: the sender gets its window back
                ctx.h2.credit(ctx.direction, len(state.held))
                ctx.held_bytes -= len(state.held)
            streams.pop(sid, None)
        elif unit.end_stream:  # trailers: what is held goes first
            await self._release(ctx, chunk, state, sid, emit)
            streams.pop(sid, None)
        await emit(chunk)

    def _select(
        self, ctx: ToxicContext, chunk: Chunk, unit: H2Unit, streams: dict[int, _Stream]
    ) -> None:
        starts = unit.header(":method" if ctx.direction == "upstream" else ":status")
        if starts is None or (ctx.direction == "downstream" and starts.startswith("1")):
            return
        found = grpcwire.request_head(chunk) if ctx.direction == "upstream" else None
        head = found[1] if found is not None else None
        path = [head.target or ""] if head is not None else None
        n = self.matcher.select(ctx, chunk, head, path, {"stream": unit.stream})
        if n is None:
            return
        if len(streams) >= grpcwire.ArmedStreams.LIMIT:
            streams.pop(next(iter(streams)))
        streams[unit.stream] = _Stream(n)

    def _hits(self, ctx: ToxicContext, index: int) -> bool:
        nth = int(self.attributes["nth_message"])
        if nth:
            return index == nth
        return ctx.rng.random() < float(self.attributes["probability"])

    async def _data(
        self, ctx: ToxicContext, chunk: Chunk, unit: H2Unit, state: _Stream, emit: Emit
    ) -> None:
        data = unit.data
        counter = state.counter
        continued = counter.inside
        first_index = counter.count + 1
        ends = counter.boundaries(data)
        counter.feed(data)
        action = self.attributes["action"]
        out = bytearray()
        dropped = unit.flow - len(data)  # padding never reaches the receiver either
        added = 0
        start = 0
        for i, end in enumerate(ends):
            segment = data[start:end]
            whole = not (start == 0 and continued)
            start = end
            index = first_index + i
            if state.held is not None and whole:  # the held one goes after this one
                out += segment + state.held
                ctx.held_bytes -= len(state.held)
                state.held = None
                continue
            if not whole or not self._hits(ctx, index):
                out += segment
                continue
            ctx.record(
                action,
                chunk,
                stream=unit.stream,
                message=index,
                size=len(segment),
                match=state.match,
            )
            if action == "drop":
                dropped += len(segment)
            elif action == "duplicate":
                out += segment + segment
                added += len(segment)
            elif action == "corrupt":
                out += _flip(ctx, segment)
            else:  # reorder
                state.held = bytes(segment)
                ctx.held_bytes += len(segment)
        out += data[start:]
        if unit.end_stream and state.held is not None:
            out += state.held
            ctx.held_bytes -= len(state.held)
            state.held = None
        ctx.h2.credit_stream(ctx.direction, unit.stream, dropped)
        ctx.h2.owe(ctx.direction, unit.stream, added)
        if not out and not unit.end_stream:
            return
        if bytes(out) == data and not dropped:
            await emit(chunk)
            return
        flags = unit.flags & END_STREAM
        raw = encode_frame(DATA, flags, unit.stream, bytes(out))
        rebuilt = H2Unit(DATA, flags, unit.stream, raw, data=bytes(out), flow=len(out))
        await emit(Chunk(raw, chunk.t, chunk.index, True, rebuilt))

    async def _release(
        self, ctx: ToxicContext, chunk: Chunk, state: _Stream, sid: int, emit: Emit
    ) -> None:
        if state.held is None:
            return
        held, state.held = state.held, None
        ctx.held_bytes -= len(held)
        raw = encode_frame(DATA, 0, sid, held)
        await emit(
            Chunk(
                raw,
                chunk.t,
                chunk.index,
                True,
                H2Unit(DATA, 0, sid, raw, data=held, flow=len(held)),
            )
        )


def _flip(ctx: ToxicContext, segment: bytes) -> bytes:
    """One bit of the payload flipped (the 5-byte prefix kept: the stream stays framed)."""
    if len(segment) <= 5:
        return segment
    damaged = bytearray(segment)
    position = 5 + ctx.rng.randrange(len(segment) - 5)
    damaged[position] ^= 1 << ctx.rng.randrange(8)
    return bytes(damaged)
