"""``fail_first``: the first ``count`` requests of each connection (or of the proxy) fail.

Why: cold starts, failovers and rolling deploys fail the first calls and
then recover, which is exactly what a retry with backoff must ride out and
a circuit breaker must not trip on. ``mode`` says how a request fails:
``close`` (the connection is closed: the client sees EOF), ``reset`` (RST),
or ``error`` (answered natively, as ``rpc_error`` does: ``kind``, ``code``).
Frames are counted per connection, or across every connection with
``scope="proxy"`` (a proxy-wide count restarts when the toxic is updated).
"""

from __future__ import annotations

from typing import Any

from faultlab.toxics._common import SCOPES, count
from faultlab.toxics.base import Attr, Chunk, Emit, Toxic, ToxicContext, register_toxic
from faultlab.toxics.rpc_error import (
    ERROR_ATTRIBUTES,
    check_error_attributes,
    decode,
    error_reason,
    inject_error,
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
    attributes_spec = {
        "count": Attr(int, 1, 1, 1_000_000, "how many requests fail", generate=(1, 5)),
        "scope": Attr(str, "connection", help="count per connection or per proxy", choices=SCOPES),
        "mode": Attr(
            str, "close", help="close | reset | error", choices=MODES, options=MILDEST_FIRST
        ),
        **ERROR_ATTRIBUTES,
    }

    def validate(self, attributes: dict[str, Any]) -> None:
        check_error_attributes(self.type_name, attributes)

    @classmethod
    def fix(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        """``kind`` only means something with ``mode="error"``: leave it out otherwise."""
        if attributes.get("mode") != "error":
            attributes.pop("kind", None)
        return attributes

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        if self.attributes["mode"] != "error":
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
        message = None
        if mode == "error":
            message = decode(ctx, attrs, chunk)
            if message is None:
                ctx.record("pass", chunk, reason="not a message of the protocol")
                await emit(chunk)
                return
        n = count(ctx, attrs["scope"], "seen")
        if n > attrs["count"]:
            ctx.record("pass", chunk, request=n)
            await emit(chunk)
            return
        if message is not None:
            await inject_error(ctx, attrs, message, chunk, emit, request=n)
            return
        ctx.record("fail", chunk, request=n, mode=mode)
        if mode == "reset":
            ctx.reset_connection()
        else:
            ctx.close_connection()
