"""``rst_stream``: reset one gRPC call's HTTP/2 stream while the connection lives.

Why: a proxy or server that resets a stream (Envoy's upstream reset, a server cancelling a
call, a stream cut mid-way through a server stream) fails one call and leaves every other
call on the connection alone, which is not what a connection reset tests. On a proxy with
``h2`` framing (``protocol="grpc"``), the selected call's stream gets RST_STREAM with
``code`` (an HTTP/2 error name or number: ``INTERNAL_ERROR`` reads as gRPC INTERNAL,
``CANCEL`` as CANCELLED, ``REFUSED_STREAM`` as never processed, which gRPC clients retry
transparently) after ``after_messages`` gRPC messages on this toxic's stream: upstream the
client's (0: as the request arrives: the server never sees the call), downstream the
server's (0: as the response starts: the server did the work). The server's side of the
stream is cancelled; whatever else comes on it is dropped (flow-control credit given back).
Calls are selected as ``rpc_error`` selects them (``method``, ``match_header``, ``nth``,
``times``, ``sequence``, ``every``; the method and header upstream only).
"""

from __future__ import annotations

from typing import Any

from faultlab.codecs.framing.h2 import DATA, ERROR_NAMES, HEADERS, error_code, rst_stream_frame
from faultlab.toxics import _grpcwire as grpcwire
from faultlab.toxics._match import MATCH_ATTRIBUTES, RequestMatcher
from faultlab.toxics.base import (
    Attr,
    Chunk,
    Emit,
    InvalidToxic,
    Toxic,
    ToxicContext,
    register_toxic,
)

INT32 = 2**31 - 1
H2_CALL_ATTRIBUTES: dict[str, Attr] = {
    "method": Attr(str, "*", help="glob over the gRPC method /pkg.Service/Method (upstream)"),
    "match_header": MATCH_ATTRIBUTES["match_header"],
    "nth": MATCH_ATTRIBUTES["nth"],
    "times": MATCH_ATTRIBUTES["times"],
    "sequence": MATCH_ATTRIBUTES["sequence"],
    "every": MATCH_ATTRIBUTES["every"],
    "scope": MATCH_ATTRIBUTES["scope"],
}
"""How the HTTP/2 stream toxics select calls."""


def h2_reason(framing: str | None) -> str | None:
    if framing != "h2":
        return 'it acts on HTTP/2 streams: create the proxy with protocol="grpc" (or framing="h2")'
    return None


def call_matcher(toxic: str, attributes: dict[str, Any]) -> RequestMatcher:
    return RequestMatcher.from_attributes(toxic, attributes, rpc_attribute="method")


@register_toxic
class RstStream(Toxic):
    type_name = "rst_stream"
    description = "reset a selected gRPC call's HTTP/2 stream (after N messages)"
    needs_frames = True
    h2_aware = True
    attributes_spec = {
        "code": Attr(
            str,
            "INTERNAL_ERROR",
            help="HTTP/2 error code: a name (CANCEL, REFUSED_STREAM, ...) or number",
            options=("INTERNAL_ERROR", "CANCEL", "REFUSED_STREAM"),
            numbers_as_text=True,
        ),
        "after_messages": Attr(
            int, 0, 0, INT32, "gRPC messages on this stream before the reset", options=(0,)
        ),
        **H2_CALL_ATTRIBUTES,
    }

    def validate(self, attributes: dict[str, Any]) -> None:
        try:
            error_code(attributes["code"])
        except ValueError as exc:
            raise InvalidToxic(f"{self.type_name}: attribute 'code': {exc}") from None
        call_matcher(self.type_name, attributes)

    def update(self, attributes: dict[str, Any]) -> None:
        super().update(attributes)
        self.matcher = call_matcher(self.type_name, self.attributes)
        self.code = error_code(self.attributes["code"])

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        return h2_reason(framing) or self.matcher.unsupported_reason(stream=stream, framing=framing)

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        await h2_call_fault(self, ctx, chunk, emit, self._act)

    def _act(self, ctx: ToxicContext, chunk: Chunk, sid: int, match: int, messages: int) -> None:
        ctx.record(
            "rst_stream",
            chunk,
            stream=sid,
            code=ERROR_NAMES.get(self.code, self.code),
            after_messages=messages,
            match=match,
        )
        if ctx.direction == "upstream" and messages == 0:
            ctx.h2.refuse(sid, rst_stream_frame(sid, self.code))  # the server never sees it
        else:
            ctx.h2.reset_stream(sid, self.code)


async def h2_call_fault(toxic: Any, ctx: ToxicContext, chunk: Chunk, emit: Emit, act: Any) -> None:
    """Select calls (upstream: by their request; downstream: by their response's start) and
    call ``act(ctx, chunk, stream, match, messages)`` once ``after_messages`` messages of
    the selected call went by on this link (the frame that completes the last one is cut
    after it); the unit that triggers at 0 messages is not forwarded."""
    unit = grpcwire.response_unit(chunk)
    armed: grpcwire.ArmedStreams = ctx.state.setdefault("armed", grpcwire.ArmedStreams())
    if unit is None:
        await emit(chunk)
        return
    sid = unit.stream
    after = toxic.attributes["after_messages"]
    if unit.type == HEADERS and sid not in armed.streams:
        starts = unit.header(":method" if ctx.direction == "upstream" else ":status")
        if starts is not None and not (ctx.direction == "downstream" and starts.startswith("1")):
            found = grpcwire.request_head(chunk) if ctx.direction == "upstream" else None
            head = found[1] if found is not None else None
            path = [head.target or ""] if head is not None else None
            n = toxic.matcher.select(ctx, chunk, head, path, {"stream": sid})
            if n is None:
                await emit(chunk)
            elif after == 0:
                act(ctx, chunk, sid, n, 0)
            else:
                armed.arm(sid, n)
                await emit(chunk)
            return
    state = armed.get(sid)
    if state is None:
        await emit(chunk)
        return
    n, counter = state
    if unit.type != DATA:
        if unit.end_stream:
            armed.disarm(sid)
            ctx.record("pass", chunk, reason="stream ended", stream=sid, match=n)
        await emit(chunk)
        return
    if await grpcwire.forward_until(ctx, chunk, unit, counter, after, emit):
        armed.disarm(sid)
        act(ctx, chunk, sid, n, counter.count)
    elif unit.end_stream:
        armed.disarm(sid)
        ctx.record("pass", chunk, reason="stream ended", stream=sid, match=n)
