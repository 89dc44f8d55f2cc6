"""What the HTTP/2 call toxics share: selecting calls, and acting after N messages.

A toxic that acts on one gRPC call (``rst_stream``, ``goaway``, ``stream_latency``,
``grpc_message``) selects calls as ``rpc_error`` does: by method and metadata upstream, then
``nth``, ``times``, ``sequence`` or ``every``; it only makes sense on a proxy that reads
HTTP/2. :class:`H2CallToxic` holds that once.
"""

from __future__ import annotations

from typing import Any

from faultlab.codecs.framing.h2 import DATA, HEADERS, error_code
from faultlab.toxics import _grpcwire as grpcwire
from faultlab.toxics._match import MATCH_ATTRIBUTES, RequestMatcher
from faultlab.toxics.base import Attr, Chunk, Emit, InvalidToxic, Toxic, ToxicContext

__all__ = ["H2_CALL_ATTRIBUTES", "H2CallToxic", "call_matcher", "h2_call_fault", "h2_reason"]

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


class H2CallToxic(Toxic):
    """A toxic acting on selected calls of an HTTP/2 proxy; a ``code`` attribute, if it
    declares one, is an HTTP/2 error code (a name or a number) read into ``self.code``."""

    needs_frames = True
    h2_aware = True

    def validate(self, attributes: dict[str, Any]) -> None:
        if "code" in attributes:
            try:
                error_code(attributes["code"])
            except ValueError as exc:
                raise InvalidToxic(f"{self.type_name}: attribute 'code': {exc}") from None
        call_matcher(self.type_name, attributes)

    def update(self, attributes: dict[str, Any]) -> None:
        super().update(attributes)
        self.matcher = call_matcher(self.type_name, self.attributes)
        if "code" in self.attributes:
            self.code = error_code(self.attributes["code"])

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        return h2_reason(framing) or self.matcher.unsupported_reason(stream=stream, framing=framing)


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
