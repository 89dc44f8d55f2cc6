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

from faultlab.codecs.framing.h2 import ERROR_NAMES, rst_stream_frame
from faultlab.toxics._h2call import H2_CALL_ATTRIBUTES, H2CallToxic, h2_call_fault
from faultlab.toxics.base import Attr, Chunk, Emit, ToxicContext, register_toxic

INT32 = 2**31 - 1


@register_toxic
class RstStream(H2CallToxic):
    type_name = "rst_stream"
    description = "reset a selected gRPC call's HTTP/2 stream (after N messages)"
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
