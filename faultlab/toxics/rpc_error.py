"""``rpc_error``: answer a matching request with the protocol's own error, never forwarding it.

Why: a retry policy or a circuit breaker reacts to what the server *says*
("unavailable" is retryable, "invalid params" is not), and a dropped
connection tests something else. On the ``upstream`` stream the Nth request
whose method matches the ``method`` glob is answered by the proxy itself
(the server never sees it): a JSON-RPC error object, an XML-RPC fault, a
msgpack-RPC error, a binrpc error reply in the request's version, a REST
status with its error body; over HTTP ``unavailable`` is a 503 for every
protocol. On the ``downstream`` stream replies are rewritten into errors
(the server did the work: "failed after effect"), keeping ids and versions.
Which requests: ``nth`` > 0 picks only that one; else every ``every``-th;
counted per connection or, with ``scope="proxy"``, across the proxy.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from faultlab.rpc.errors import KINDS
from faultlab.rpc.frames import WireMessage
from faultlab.toxics import _rpcwire as wire
from faultlab.toxics._common import SCOPES, check_choice, count
from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

__all__ = ["RpcErrorToxic", "inject_error"]

INT32 = 2**31 - 1
DRAWN_KINDS = ("unavailable", "deadline_exceeded", "internal_error", "invalid_params")
"""The kinds tests draw, mildest first: retryable ones, then one a retry must not repeat."""
ERROR_ATTRIBUTES = {
    "protocol": Attr(str, "", help="jsonrpc|xmlrpc|msgpackrpc|binrpc|rest; default: the proxy's"),
    "kind": Attr(
        str,
        "unavailable",
        help="error kind: unavailable, internal_error, ...",
        choices=tuple(KINDS),
        options=DRAWN_KINDS,
    ),
    "code": Attr(
        int, 0, -INT32 - 1, INT32, "native error code; 0: the kind's standard code", options=(0,)
    ),
    "message": Attr(str, "", help="error message; default names the kind"),
}


def check_error_attributes(toxic: str, attributes: dict[str, Any]) -> None:
    """The protocol, if named, must be one faultlab speaks (``kind`` is checked by its Attr)."""
    if attributes["protocol"]:
        check_choice(toxic, "protocol", attributes["protocol"], wire.protocols())


def decode(ctx: ToxicContext, attributes: dict[str, Any], chunk: Chunk) -> WireMessage | None:
    protocol = wire.resolve_protocol(attributes["protocol"], ctx.protocol)
    if protocol is None:
        return None
    return wire.decode(
        protocol, chunk.data, http=ctx.framing == "http", request=ctx.direction == "upstream"
    )


async def inject_error(
    ctx: ToxicContext,
    attributes: dict[str, Any],
    message: WireMessage,
    chunk: Chunk,
    emit: Emit,
    **fields: Any,
) -> None:
    """Answer the request in ``message`` (upstream) or replace the reply (downstream)."""
    info = wire.error_info(attributes["kind"], attributes["code"], attributes["message"])
    fields.update(error_kind=info.kind, code=info.code, protocol=message.protocol)
    data = wire.error_reply(message, info)
    ctx.record("rpc_error", chunk, replied=data is not None, **fields)
    if data is None:
        return
    if message.request:
        ctx.reply(data)
        return
    chunk.data = data
    await emit(chunk)


def error_reason(
    attributes: dict[str, Any],
    *,
    stream: str,
    framing: str | None,
    protocol: str | None,
    message_based: bool,
) -> str | None:
    resolved = wire.resolve_protocol(attributes["protocol"], protocol)
    return wire.protocol_reason(resolved, framing, message_based)


@register_toxic
class RpcErrorToxic(Toxic):
    type_name = "rpc_error"
    description = "answer the Nth request matching `method` with the protocol's native error"
    needs_frames = True
    attributes_spec = {
        **ERROR_ATTRIBUTES,
        "method": Attr(str, "*", help="glob over method names (upstream only)"),
        "nth": Attr(int, 0, 0, INT32, "only the Nth matching request (0: use every)", options=(0,)),
        "every": Attr(int, 1, 1, INT32, "every Nth matching request (1: all)", generate=(4, 1)),
        "scope": Attr(str, "connection", help="count per connection or per proxy", choices=SCOPES),
    }

    def validate(self, attributes: dict[str, Any]) -> None:
        check_error_attributes(self.type_name, attributes)

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        if stream == "downstream" and self.attributes["method"] != "*":
            return "replies carry no method name: on the downstream stream 'method' must be '*'"
        return error_reason(
            self.attributes,
            stream=stream,
            framing=framing,
            protocol=protocol,
            message_based=message_based,
        )

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        attrs = self.attributes
        message = decode(ctx, attrs, chunk)
        if message is None:
            ctx.record("pass", chunk, reason="not a message of the protocol")
            await emit(chunk)
            return
        methods = [item.method or "" for item in message.items]
        if message.request and not any(fnmatchcase(m, attrs["method"]) for m in methods):
            ctx.record("pass", chunk, reason="method", method=methods[0])
            await emit(chunk)
            return
        n = count(ctx, attrs["scope"], "matched")
        fire = n == attrs["nth"] if attrs["nth"] else n % attrs["every"] == 0
        if not fire:
            ctx.record("pass", chunk, match=n)
            await emit(chunk)
            return
        await inject_error(ctx, attrs, message, chunk, emit, match=n, method=methods[0] or None)
