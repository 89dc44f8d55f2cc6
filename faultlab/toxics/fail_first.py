"""``fail_first``: the first ``count`` requests of each connection (or of the proxy) fail.

Why: cold starts, failovers and rolling deploys fail the first calls and
then recover, which is exactly what a retry with backoff must ride out and
a circuit breaker must not trip on. ``mode`` says how a request fails:
``close`` (the connection is closed: the client sees EOF), ``reset`` (RST),
or ``error`` (answered natively, as ``rpc_error`` does: ``kind``, ``code``).
Frames are counted per connection, or across every connection with
``scope="proxy"`` (a proxy-wide count restarts when the toxic is updated).

Only matching requests count (:mod:`faultlab.toxics._match`): on a proxy with
``framing="http"`` their HTTP method, path and a header (``match_method``,
``match_path``, ``match_header``), and their RPC method (``match_rpc_method``, read
with the protocol). A ``sequence`` ("fail,fail,pass", "FFP") replaces ``count``:
the matching requests fail or pass in that order, then pass.
"""

from __future__ import annotations

from typing import Any

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
from faultlab.toxics.rpc_error import (
    ERROR_ATTRIBUTES,
    GRPC_ERROR_ATTRIBUTES,
    check_error_attributes,
    decode,
    error_reason,
    grpc_error,
    http_fields,
    inject_error,
    request_head,
)

MODES = ("close", "reset", "error")
MILDEST_FIRST = ("error", "close", "reset")
"""A native error is the mildest failure (a typed answer), a reset the harshest.

Without a protocol ``error`` cannot act, and the strategies draw only the others."""


@register_toxic
class FailFirst(Toxic):
    type_name = "fail_first"
    description = "fail the first `count` requests: close, reset, or a native error"
    needs_frames = True
    h2_aware = True
    attributes_spec = {
        "count": Attr(int, 1, 1, 1_000_000, "how many requests fail", generate=(1, 5)),
        "scope": MATCH_ATTRIBUTES["scope"],
        "mode": Attr(
            str, "close", help="close | reset | error", choices=MODES, options=MILDEST_FIRST
        ),
        **ERROR_ATTRIBUTES,
        "match_method": MATCH_ATTRIBUTES["match_method"],
        "match_path": MATCH_ATTRIBUTES["match_path"],
        "match_header": MATCH_ATTRIBUTES["match_header"],
        "match_rpc_method": MATCH_ATTRIBUTES["match_rpc_method"],
        "sequence": Attr(
            str, "", help="instead of count: 'fail,fail,pass' or 'FFP' over matching requests"
        ),
        **GRPC_ERROR_ATTRIBUTES,
    }

    @classmethod
    def _matcher(cls, attributes: dict[str, Any]) -> RequestMatcher:
        return RequestMatcher.from_attributes(
            cls.type_name, attributes, times=attributes["count"], key="seen"
        )

    def validate(self, attributes: dict[str, Any]) -> None:
        check_error_attributes(self.type_name, attributes)
        if attributes["sequence"].strip(" \t,") and attributes["count"] != 1:
            raise InvalidToxic(
                f"{self.type_name}: count={attributes['count']} and sequence exclude each "
                "other: the sequence says which requests fail"
            )
        self._matcher(attributes)

    def update(self, attributes: dict[str, Any]) -> None:
        super().update(attributes)
        self.matcher = self._matcher(self.attributes)

    @classmethod
    def fix(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        """``kind`` only means something with ``mode="error"``: leave it out otherwise."""
        if attributes.get("mode") != "error":
            attributes.pop("kind", None)
        return attributes

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        reason = self.matcher.unsupported_reason(stream=stream, framing=framing)
        if reason is not None:
            return reason
        if self.attributes["mode"] != "error" and not self.matcher.needs_rpc:
            return None
        return error_reason(
            self.attributes,
            stream=stream,
            framing=framing,
            protocol=protocol,
            message_based=message_based,
        )

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        attrs = self.attributes
        mode = attrs["mode"]
        matcher = self.matcher
        if ctx.h2 is not None:
            await self._h2(ctx, chunk, emit)
            return
        message = None
        if mode == "error" or matcher.needs_rpc:
            message = decode(ctx, attrs, chunk)
            if message is None:
                ctx.record("pass", chunk, reason="not a message of the protocol")
                await emit(chunk)
                return
        head = request_head(ctx, chunk) if matcher.needs_http else None
        fields = http_fields(head)
        methods = None
        if message is not None and message.request:
            methods = [item.method or "" for item in message.items]
        n = matcher.select(ctx, chunk, head, methods, fields, numbered=("request",))
        if n is None:
            await emit(chunk)
            return
        if mode == "error":
            assert message is not None
            await inject_error(ctx, attrs, message, chunk, emit, request=n, match=n, **fields)
            return
        self._fail(ctx, chunk, n, mode, fields)

    @staticmethod
    def _fail(ctx: ToxicContext, chunk: Chunk, n: int, mode: str, fields: dict[str, Any]) -> None:
        ctx.record("fail", chunk, request=n, match=n, mode=mode, **fields)
        if mode == "reset":
            ctx.reset_connection()
        else:
            ctx.close_connection()

    async def _h2(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        """HTTP/2: only a request's header block is a request; ``error`` answers the call
        with a gRPC status, ``close``/``reset`` end the whole connection (every call on it)."""
        if self.attributes["mode"] == "error":
            if not await grpc_error(
                ctx, self.attributes, self.matcher, chunk, emit, numbered=("request",)
            ):
                await emit(chunk)
            return
        found = grpcwire.request_head(chunk)
        if found is None:
            await emit(chunk)
            return
        unit, head = found
        fields = {"method": head.target, "stream": unit.stream}
        n = self.matcher.select(
            ctx, chunk, head, [head.target or ""], fields, numbered=("request",)
        )
        if n is None:
            await emit(chunk)
            return
        self._fail(ctx, chunk, n, self.attributes["mode"], fields)
