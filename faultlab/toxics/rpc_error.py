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
Which requests: those whose RPC method matches ``method`` and, on a proxy with
``framing="http"``, whose HTTP method, path and a header match ``match_method``,
``match_path``, ``match_header`` (:mod:`faultlab.toxics._match`); of those, ``nth`` > 0
picks only that one, ``times`` the first N, ``sequence`` ("fail,fail,pass") steps through
them, else every ``every``-th; counted per connection or, with ``scope="proxy"``, across
the proxy.

A JSON-RPC batch is several calls: each matching call counts as one match, and only the
selected calls are errored. The rest of the batch goes to the server, and its reply is
merged with the injected errors into one batch reply in the request's order
(:class:`~faultlab.toxics._rpcwire.BatchMerge`, applied by the link to the reply in this
request's place); a batch whose every call is selected is answered whole, as before.
"""

from __future__ import annotations

from typing import Any

from faultlab.codecs.framing.httpinfo import HttpHeadInfo, parse_head
from faultlab.journal import wire as wk
from faultlab.rpc.errors import KINDS
from faultlab.rpc.frames import Item, WireMessage
from faultlab.toxics import _grpcwire as grpcwire
from faultlab.toxics import _rpcwire as wire
from faultlab.toxics._common import check_choice
from faultlab.toxics._h2call import h2_call_fault
from faultlab.toxics._match import MATCH_ATTRIBUTES, RequestMatcher
from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic

__all__ = ["GRPC_ERROR_ATTRIBUTES", "RpcErrorToxic", "http_fields", "inject_error", "request_head"]

INT32 = 2**31 - 1
DRAWN_KINDS = ("unavailable", "deadline_exceeded", "internal_error", "invalid_params")
"""The kinds tests draw, mildest first: retryable ones, then one a retry must not repeat."""
ERROR_ATTRIBUTES = {
    "protocol": Attr(
        str, "", help="jsonrpc|xmlrpc|msgpackrpc|binrpc|rest|grpc; default: the proxy's"
    ),
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
GRPC_ERROR_ATTRIBUTES = {
    "status": Attr(
        str,
        "",
        help="gRPC: the status, a name or number (UNAVAILABLE, 14); default: the kind's",
        numbers_as_text=True,
    ),
    "pushback_ms": Attr(
        str,
        "",
        help="gRPC: grpc-retry-pushback-ms sent as given ('250'; negative: do not retry)",
        numbers_as_text=True,
    ),
}


def check_error_attributes(toxic: str, attributes: dict[str, Any]) -> None:
    """The protocol, if named, must be one faultlab speaks (``kind`` is checked by its Attr);
    a gRPC ``status`` must name one, and ``pushback_ms`` must be a header value."""
    if attributes["protocol"]:
        check_choice(toxic, "protocol", attributes["protocol"], (*wire.protocols(), "grpc"))
    grpcwire.check_status(toxic, attributes)
    grpcwire.check_pushback(toxic, attributes["pushback_ms"])


async def grpc_error(
    ctx: ToxicContext,
    attributes: dict[str, Any],
    matcher: RequestMatcher,
    chunk: Chunk,
    emit: Emit,
    *,
    numbered: tuple[str, ...] = (),
) -> bool:
    """gRPC over ``h2``, upstream: answer a selected call with a trailers-only status, its
    stream never reaching the server. ``False``: ``chunk`` is not a call starting (the
    caller forwards it)."""
    found = grpcwire.request_head(chunk)
    if found is None:
        return False
    unit, head = found
    path = head.target or ""
    fields: dict[str, Any] = {"method": path, "stream": unit.stream, "protocol": "grpc"}
    n = matcher.select(ctx, chunk, head, [path], fields, numbered=numbered)
    if n is None:
        await emit(chunk)
        return True
    code = grpcwire.grpc_status(attributes)
    message = attributes["message"] or f"{wk.GRPC_CODES[code].lower()} (injected)"
    pushback = attributes["pushback_ms"]
    ctx.record(
        "rpc_error",
        chunk,
        replied=True,
        error_kind=wk.grpc_kind(code),
        grpc_status=code,
        pushback_ms=pushback or None,
        match=n,
        **dict.fromkeys(numbered, n),
        **fields,
    )
    reply = grpcwire.trailers(unit.stream, code, message, pushback, headers_sent=False)
    ctx.h2.refuse(unit.stream, reply)
    return True


def decode(ctx: ToxicContext, attributes: dict[str, Any], chunk: Chunk) -> WireMessage | None:
    protocol = wire.resolve_protocol(attributes["protocol"], ctx.protocol)
    if protocol is None:
        return None
    return wire.decode(
        protocol, chunk.data, http=ctx.framing == "http", request=ctx.direction == "upstream"
    )


def request_head(ctx: ToxicContext, chunk: Chunk) -> HttpHeadInfo | None:
    """The HTTP request head of ``chunk`` on an HTTP proxy's upstream stream, else ``None``."""
    if ctx.framing != "http" or ctx.direction != "upstream":
        return None
    return parse_head(chunk.data)


def http_fields(head: HttpHeadInfo | None) -> dict[str, Any]:
    """What a journal entry says of an HTTP request (nothing when it is not one)."""
    if head is None or head.method is None:
        return {}
    return {"http_method": head.method, "path": head.path}


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
    description = (
        "answer requests matching `method` (and, over HTTP, a method, path or header) "
        "with the protocol's native error"
    )
    needs_frames = True
    h2_aware = True
    attributes_spec = {
        **ERROR_ATTRIBUTES,
        "method": Attr(str, "*", help="glob over method names (upstream only)"),
        "nth": MATCH_ATTRIBUTES["nth"],
        "every": MATCH_ATTRIBUTES["every"],
        "scope": MATCH_ATTRIBUTES["scope"],
        "match_method": MATCH_ATTRIBUTES["match_method"],
        "match_path": MATCH_ATTRIBUTES["match_path"],
        "match_header": MATCH_ATTRIBUTES["match_header"],
        "times": MATCH_ATTRIBUTES["times"],
        "sequence": MATCH_ATTRIBUTES["sequence"],
        **GRPC_ERROR_ATTRIBUTES,
        "after_messages": Attr(
            int,
            0,
            0,
            INT32,
            "gRPC, downstream: the error comes after this many response messages",
            options=(0,),
        ),
    }

    @classmethod
    def _matcher(cls, attributes: dict[str, Any]) -> RequestMatcher:
        return RequestMatcher.from_attributes(cls.type_name, attributes, rpc_attribute="method")

    def validate(self, attributes: dict[str, Any]) -> None:
        check_error_attributes(self.type_name, attributes)
        self._matcher(attributes)

    def update(self, attributes: dict[str, Any]) -> None:
        super().update(attributes)
        self.matcher = self._matcher(self.attributes)

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        reason = self.matcher.unsupported_reason(stream=stream, framing=framing)
        if reason is not None:
            return reason
        return error_reason(
            self.attributes,
            stream=stream,
            framing=framing,
            protocol=protocol,
            message_based=message_based,
        )

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        attrs = self.attributes
        if ctx.h2 is not None:
            if ctx.direction == "downstream":
                await self._grpc_reply(ctx, chunk, emit)
            elif not await grpc_error(ctx, attrs, self.matcher, chunk, emit):
                await emit(chunk)
            return
        message = decode(ctx, attrs, chunk)
        if message is None:
            ctx.record("pass", chunk, reason="not a message of the protocol")
            await emit(chunk)
            return
        head = request_head(ctx, chunk)
        fields = http_fields(head)
        methods = [item.method or "" for item in message.items]
        fields["method"] = methods[0] or None
        if message.request and message.batch:
            await self._batch(ctx, message, chunk, emit, head, fields)
            return
        n = self.matcher.select(ctx, chunk, head, methods if message.request else None, fields)
        if n is None:
            await emit(chunk)
            return
        await inject_error(ctx, attrs, message, chunk, emit, match=n, **fields)

    async def _batch(
        self,
        ctx: ToxicContext,
        message: WireMessage,
        chunk: Chunk,
        emit: Emit,
        head: HttpHeadInfo | None,
        fields: dict[str, Any],
    ) -> None:
        """A batch request: each call that matches counts as one match (``nth``, ``times``
        ... select among calls); only the selected calls are answered with the error, the
        others go to the server, and its reply is merged with the errors into one batch."""
        items = message.items
        reason = self.matcher.mismatch(head, [item.method or "" for item in items])
        if reason is not None:
            ctx.record("pass", chunk, reason=reason, **fields)
            await emit(chunk)
            return
        picked: list[tuple[int, int]] = []
        for i, item in enumerate(items):
            if not self.matcher.matches(head, item.method or ""):
                continue
            fire, n = self.matcher.fire(ctx)
            if fire:
                picked.append((i, n))
            else:
                entry = {**fields, **_entry_fields(item, i, len(items))}
                ctx.record("pass", chunk, reason=self.matcher.selection, match=n, **entry)
        if not picked:
            await emit(chunk)
            return
        attrs = self.attributes
        if len(picked) == len(items):  # nothing left for the server: answer it all, as ever
            await inject_error(ctx, attrs, message, chunk, emit, match=picked[0][1], **fields)
            return
        waiting = ctx.reply_edits()
        if not 0 <= waiting < MAX_PARTIAL_BATCHES:
            if waiting < 0:
                why = "this link cannot merge replies"
            else:
                why = f"{waiting} partial batches already wait for their replies"
            first = picked[0][1]
            await inject_error(
                ctx, attrs, message, chunk, emit, match=first, whole_batch=why, **fields
            )
            return
        await _answer_part(ctx, attrs, message, dict(picked), chunk, emit, fields)

    async def _grpc_reply(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        """gRPC, downstream: a selected response fails after ``after_messages`` messages
        (0: instead of the server's answer; the server did the work) with the status; the
        server's stream is cancelled and the rest of its answer dropped."""
        await h2_call_fault(self, ctx, chunk, emit, self._failed_after)

    def _failed_after(
        self, ctx: ToxicContext, chunk: Chunk, sid: int, match: int, messages: int
    ) -> None:
        # at 0 messages the server's response headers were held back: trailers-only
        self._fail(ctx, chunk, sid, match=match, messages=messages, headers_sent=messages > 0)

    def _fail(
        self,
        ctx: ToxicContext,
        chunk: Chunk,
        sid: int,
        *,
        match: int,
        messages: int,
        headers_sent: bool,
    ) -> None:
        attrs = self.attributes
        code = grpcwire.grpc_status(attrs)
        message = attrs["message"] or f"{wk.GRPC_CODES[code].lower()} (injected)"
        ctx.record(
            "rpc_error",
            chunk,
            replied=True,
            error_kind=wk.grpc_kind(code),
            grpc_status=code,
            pushback_ms=attrs["pushback_ms"] or None,
            protocol="grpc",
            stream=sid,
            after_messages=messages,
            match=match,
        )
        frames = grpcwire.trailers(
            sid, code, message, attrs["pushback_ms"], headers_sent=headers_sent
        )
        ctx.h2.end_stream_with(sid, frames)


MAX_PARTIAL_BATCHES = 256
"""Batches one connection may have partly answered and waiting for the server's reply (the
merge state a connection holds is bounded); past it a matching batch is answered whole."""


def _entry_fields(item: Item, index: int, size: int) -> dict[str, Any]:
    rpc_id = item.id if isinstance(item.id, int | str) and not isinstance(item.id, bool) else None
    return {
        "method": item.method or None,
        "rpc_id": rpc_id,
        "batch_entry": index,
        "batch_size": size,
    }


async def _answer_part(
    ctx: ToxicContext,
    attributes: dict[str, Any],
    message: WireMessage,
    picked: dict[int, int],
    chunk: Chunk,
    emit: Emit,
    fields: dict[str, Any],
) -> None:
    """Answer the calls at ``picked`` (index -> match number) with the error, send the rest
    of the batch to the server, and merge the two answers into one batch reply."""
    info = wire.error_info(attributes["kind"], attributes["code"], attributes["message"])
    items = message.items
    hit = [items[i] for i in sorted(picked)]
    errors = iter(wire.error_items(message.protocol, hit, info))
    entries = []
    for i, item in enumerate(items):
        error = next(errors) if i in picked and not item.notification else None
        if not item.notification:
            entries.append((item.id, error))
    served = [item for i, item in enumerate(items) if i not in picked]
    for i in sorted(picked):
        ctx.record(
            "rpc_error",
            chunk,
            replied=not items[i].notification,
            error_kind=info.kind,
            code=info.code,
            protocol=message.protocol,
            match=picked[i],
            batch_served=len(served),
            **{**fields, **_entry_fields(items[i], i, len(items))},
        )
    merge = wire.BatchMerge(message.protocol, tuple(entries), http=message.http is not None)
    message.items = served
    chunk.data = wire.encode(message)
    chunk.parsed = None
    if merge.errors:
        if message.http is None and all(item.notification for item in served):
            ctx.reply(merge.errors_only())  # the server will answer nothing: answer now
        else:
            chunk.reply_edit = merge
    await emit(chunk)
