"""``goaway``: the server (as the client sees it) sends HTTP/2 GOAWAY when a selected call
arrives.

Why: servers send GOAWAY on every graceful shutdown, rolling deploy and max-connection-age,
and a gRPC client must move to a new connection without losing or repeating calls. On a
proxy with ``h2`` framing (``protocol="grpc"``) the selected call (``method``, ``nth``, ...
as ``rpc_error`` selects; upstream stream only) triggers a GOAWAY to the client with error
``code``:

- ``mode="graceful"``: calls already running finish; the selected call is left out
  (``include_call=false``: the GOAWAY's last stream id is below it, so the client knows it
  was never processed and retries it elsewhere, transparently) or finishes too
  (``include_call=true``); no later stream of this connection reaches the server.
- ``mode="abrupt"``: the connection closes right after the GOAWAY: every call still
  running on it fails (UNAVAILABLE), the selected one included unless left out.
"""

from __future__ import annotations

from faultlab.codecs.framing.h2 import ERROR_NAMES
from faultlab.toxics import _grpcwire as grpcwire
from faultlab.toxics._h2call import H2_CALL_ATTRIBUTES, H2CallToxic
from faultlab.toxics.base import (
    Attr,
    Chunk,
    Emit,
    ToxicContext,
    register_toxic,
)

MODES = ("graceful", "abrupt")


@register_toxic
class Goaway(H2CallToxic):
    type_name = "goaway"
    description = "send HTTP/2 GOAWAY to the client when a selected call arrives"
    attributes_spec = {
        "mode": Attr(str, "graceful", help="graceful | abrupt (close after it)", choices=MODES),
        "code": Attr(
            str,
            "NO_ERROR",
            help="HTTP/2 error code: a name (NO_ERROR, ENHANCE_YOUR_CALM, ...) or number",
            options=("NO_ERROR",),
            numbers_as_text=True,
        ),
        "include_call": Attr(
            bool, False, help="the selected call is the last one processed (false: left out)"
        ),
        **H2_CALL_ATTRIBUTES,
    }

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        if framing == "h2" and stream != "upstream":
            return 'it acts when a call arrives from the client: add it with stream="upstream"'
        return super().unsupported_reason(
            stream=stream, framing=framing, protocol=protocol, message_based=message_based
        )

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        found = grpcwire.request_head(chunk)
        if found is None or ctx.h2.goaway_last is not None:
            await emit(chunk)
            return
        unit, head = found
        sid = unit.stream
        n = self.matcher.select(ctx, chunk, head, [head.target or ""], {"stream": sid})
        if n is None:
            await emit(chunk)
            return
        include = bool(self.attributes["include_call"])
        last = sid if include else ctx.h2.max_opened
        abrupt = self.attributes["mode"] == "abrupt"
        ctx.record(
            "goaway",
            chunk,
            stream=sid,
            last_stream=last,
            code=ERROR_NAMES.get(self.code, self.code),
            mode=self.attributes["mode"],
            match=n,
        )
        if include:
            await emit(chunk)
        else:
            ctx.h2.refused.add(sid)
        ctx.h2.goaway(last, self.code, abrupt=abrupt)
