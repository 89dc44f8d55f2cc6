"""What an RPC protocol is: sans-IO encoding of calls and replies, plus its framings.

A protocol never touches a socket. The client side encodes a
:class:`Request` and decodes a :class:`Response`; the server side turns one
received message into zero or one reply message through ``handle``, which
also owns protocol rules such as JSON-RPC batches and notifications. Over
byte streams a *framing* (length-prefix, lines, msgpack-stream, http) cuts the
stream into messages; message transports carry one message per datagram.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from typing import ClassVar

from faultlab._registry import Registry
from faultlab.errors import LocalProtocolError
from faultlab.rpc.messages import ErrorInfo, Request, Response

__all__ = [
    "HTTP_METHODS",
    "Dispatch",
    "HttpReply",
    "RpcProtocol",
    "get_protocol",
    "protocol_names",
    "register_protocol",
]

Dispatch = Callable[[Request], Response]

HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
"""Methods HTTP defines: one a server does not allow gets 405, any other method 501."""


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


class RpcProtocol(ABC):
    """One wire protocol. Subclasses register by ``name``."""

    name: ClassVar[str]
    framings: ClassVar[tuple[str, ...]]
    """Framings usable on byte streams; the first is the default."""
    message_transports: ClassVar[bool] = True
    """Whether one message per datagram/queue message works (False: streams only)."""
    content_type: ClassVar[str] = "application/octet-stream"
    http_path: ClassVar[str] = "/"

    @abstractmethod
    def encode_request(self, request: Request) -> bytes: ...

    @abstractmethod
    def decode_response(self, data: bytes) -> Response:
        """Raise a RemoteProtocolError subclass on anything malformed."""

    @abstractmethod
    def handle(self, data: bytes, dispatch: Dispatch) -> bytes | None:
        """Serve one received message; ``None`` means "send nothing back"."""

    @abstractmethod
    def error_message(self, info: ErrorInfo) -> bytes:
        """A reply not tied to any request (e.g. to a frame too large to read)."""

    # HTTP carriage; REST overrides these to use paths and status codes.
    def http_request(self, request: Request) -> tuple[str, str, bytes]:
        """(HTTP method, target, body) for a call."""
        return "POST", self.http_path, self.encode_request(request)

    def http_response(self, status: int, body: bytes, request: Request) -> Response:
        from faultlab.rpc.errors import ServiceUnavailable
        from faultlab.rpc.messages import ErrorInfo

        if status == 503:
            err = ServiceUnavailable("HTTP 503 Service Unavailable")
            return Response(request.id, error=ErrorInfo.from_exception(err))
        if status == 204 and not body:
            return Response(request.id)
        return self.decode_response(body)

    def handle_http(self, method: str, target: str, body: bytes, dispatch: Dispatch) -> HttpReply:
        """Only POST carries calls: 405 for other HTTP methods (HEAD included), 501 for
        methods HTTP does not define. The channel drops the body of a reply to HEAD."""
        if method != "POST":
            if method in HTTP_METHODS:
                return HttpReply(405, b"use POST\n", [("Allow", "POST")])
            return HttpReply(501, b"method not implemented; use POST\n")
        reply = self.handle(body, dispatch)
        if reply is None:
            return HttpReply(204, b"")
        return HttpReply(200, reply, [("Content-Type", self.content_type)])


_BUILTIN = ("jsonrpc", "xmlrpc", "msgpackrpc", "binrpc", "rest")


def _adopt(ep: EntryPoint) -> None:
    obj = ep.load()
    register_protocol(obj() if isinstance(obj, type) else obj)


_registry: Registry[RpcProtocol] = Registry(
    "RPC protocol",
    "faultlab.protocols",
    [f"faultlab.rpc.{name}" for name in _BUILTIN],
    missing=lambda name: LocalProtocolError(
        f"unknown RPC protocol {name!r}; known: {_registry.known()}"
    ),
    adopt=_adopt,
)


def register_protocol(protocol: RpcProtocol) -> RpcProtocol:
    return _registry.register(protocol.name, protocol)


def get_protocol(name: str) -> RpcProtocol:
    return _registry.get(name)


def protocol_names() -> list[str]:
    return _registry.names()
