"""What the target speaks on the wire, and the well-formed requests the attacks start from.

``http``: HTTP/1.1 (a plain HTTP service, or JSON-RPC / XML-RPC / REST over HTTP);
``h2``: HTTP/2 with prior knowledge (gRPC); anything else is a byte-stream framing
(``length-prefix``, ``lines``, ``msgpack-stream``) carrying the protocol's own messages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from faultlab.errors import LocalProtocolError
from faultlab.suites.hostile._net import HostileError

__all__ = ["Wire", "wire_for"]

HTTP_PROTOCOLS = ("http", "https")


@dataclass(frozen=True)
class Wire:
    """One target's wire: ``kind`` (``http``, ``h2`` or a framing name), the protocol, and
    the HTTP path and ``Host`` the attacks use."""

    kind: str
    protocol: str
    path: str = "/"
    host: str = "localhost"

    @property
    def http(self) -> bool:
        return self.kind == "http"

    def body(self, params: Any = None) -> bytes:
        """A well-formed request body (HTTP) or payload (stream) for ``params``."""
        if self.protocol in HTTP_PROTOCOLS or self.kind == "h2":
            import json

            return json.dumps({"value": params}, default=repr).encode()
        from faultlab.rpc.base import get_rpc_protocol
        from faultlab.rpc.messages import Request

        proto = get_rpc_protocol(self.protocol)
        try:
            return proto.encode_request(Request("echo", [params], id=1))
        except (LocalProtocolError, ValueError, TypeError, OverflowError):
            # a value this codec cannot carry (XML-RPC's int range, say): its repr instead
            return proto.encode_request(Request("echo", [repr(params)], id=1))

    def frame(self, payload: bytes) -> bytes:
        """``payload`` framed for a byte stream (HTTP: a POST to ``path``)."""
        if self.http:
            return self.http_request(payload)
        if self.kind == "length-prefix":
            return struct.pack(">I", len(payload)) + payload
        if self.kind == "lines":
            return payload.replace(b"\n", b" ") + b"\n"
        return payload  # msgpack-stream: self-delimiting

    def http_request(self, body: bytes, *, method: str = "POST", extra: bytes = b"") -> bytes:
        head = (
            f"{method} {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: {self.content_type}\r\nContent-Length: {len(body)}\r\n"
        ).encode()
        return head + extra + b"\r\n" + body

    @property
    def content_type(self) -> str:
        return "text/xml" if self.protocol == "xmlrpc" else "application/json"

    def codec(self) -> str:
        """The codec whose strategy the malformed attack draws values from."""
        from faultlab.strategies.values import PROTOCOL_CODECS

        return PROTOCOL_CODECS.get(self.protocol, "json")


def wire_for(protocol: str, *, framing: str | None = None, path: str | None = None) -> Wire:
    """The wire of ``protocol`` (``http`` for a plain HTTP service); ``framing`` picks one of
    a stream protocol's framings (default: its first), ``path`` the HTTP path."""
    if protocol in HTTP_PROTOCOLS:
        return Wire("http", protocol, path or "/")
    if protocol == "grpc":
        return Wire("h2", protocol, path or "/")
    from faultlab.rpc.base import get_rpc_protocol

    try:
        proto = get_rpc_protocol(protocol)
    except LocalProtocolError as exc:  # the registry's own message names the known ones
        raise HostileError(f"hostile: unknown protocol {protocol!r}: {exc}") from exc
    kind = framing or proto.framings[0]
    if kind not in proto.framings:
        raise HostileError(f"hostile: {protocol} has no framing {kind!r}; it has {proto.framings}")
    default_path = getattr(proto, "http_path", "/")
    if protocol == "rest":
        default_path = "/echo"
    return Wire(kind, protocol, path or default_path)
