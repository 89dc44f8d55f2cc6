"""One frame on the wire as an editable message: what a proxy reads, rewrites and answers.

Why not a protocol's ``handle``/``decode_response``: those turn a message into a
call and back, losing what a proxy must keep (a JSON-RPC batch, extra members,
binrpc's header). A proxy sees one frame and must leave it byte-identical unless
it rewrites it on purpose, so each protocol decodes a frame into a
:class:`WireMessage` and re-encodes it (:class:`~faultlab.rpc.base.WireProtocol`).
The HTTP carriage around a body is shared here. Sans-IO: bytes in, values out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import h11

from faultlab.codecs.framing.http import HttpFramer, HttpMessage
from faultlab.errors import FaultlabError
from faultlab.rpc.messages import ErrorInfo

__all__ = [
    "MISSING",
    "Item",
    "WireMessage",
    "error_map",
    "http_reply",
    "parse_http",
    "serialize_http",
    "with_body",
]

MISSING: Any = object()
"""An absent member (JSON-RPC request without ``params``), distinct from ``None``."""


@dataclass
class Item:
    """One call or one reply inside a frame (a JSON-RPC batch has several)."""

    method: str | None = None
    id: Any = None
    notification: bool = False
    params: Any = None
    result: Any = None
    error: Any = None
    """The native error object of an error reply (left as is)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Members we do not interpret (JSON-RPC ``faultlab``...), kept on re-encoding."""


@dataclass
class WireMessage:
    """One decoded frame: requests or replies of ``protocol``, possibly inside HTTP."""

    protocol: str
    request: bool
    items: list[Item]
    batch: bool = False
    version: int | None = None
    """The protocol's version field (binrpc's header byte), ``None`` if it has none."""
    native: dict[str, Any] = field(default_factory=dict)
    """Protocol-own header fields (binrpc flags, ...), kept on re-encoding."""
    http: HttpMessage | None = None

    @property
    def kind(self) -> Literal["request", "notification", "response"]:
        """A request expects a reply; a notification (every item one) expects none."""
        if not self.request:
            return "response"
        return "notification" if all(i.notification for i in self.items) else "request"

    @property
    def method(self) -> str | None:
        """The first call's method (replies carry none)."""
        return self.items[0].method if self.items else None

    @property
    def id(self) -> Any:
        """The first item's id."""
        return self.items[0].id if self.items else None


def error_map(info: ErrorInfo) -> dict[str, Any]:
    """faultlab's error map ``{code, message, kind, data}`` (msgpack-RPC, binrpc)."""
    return {"code": info.code, "message": info.message, "kind": info.kind, "data": info.data}


def parse_http(data: bytes, request: bool) -> HttpMessage | None:
    """The HTTP request (or response) in ``data``, or ``None`` if it is not one."""
    framer = HttpFramer("server" if request else "client", one_way=True)
    try:
        framer.receive_data(data)
        message = framer.next_frame()
    except FaultlabError:
        return None
    return message if isinstance(message, HttpMessage) else None


def serialize_http(message: HttpMessage) -> bytes:
    return HttpFramer("client", one_way=True).frame(message)


def with_body(message: HttpMessage, body: bytes) -> HttpMessage:
    """``message`` with another body (its length headers recomputed)."""
    head = message.head
    headers = [
        (k, v)
        for k, v in head.headers.raw_items()
        if k.lower() not in (b"content-length", b"transfer-encoding")
    ]
    new_head: h11.Request | h11.Response | h11.InformationalResponse
    if isinstance(head, h11.Request):
        new_head = h11.Request(
            method=head.method, target=head.target, headers=headers, http_version=head.http_version
        )
    elif isinstance(head, h11.Response):
        new_head = h11.Response(
            status_code=head.status_code,
            headers=headers,
            reason=head.reason,
            http_version=head.http_version,
        )
    else:
        return message
    return HttpMessage(head=new_head, body=body)


def http_reply(status: int, body: bytes, content_type: str) -> bytes:
    head = h11.Response(status_code=status, headers=[("Content-Type", content_type)])
    return serialize_http(HttpMessage(head=head, body=body))
