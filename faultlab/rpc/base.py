"""What an RPC protocol is: its wire knowledge, how to serve and call it, and (for the ones
faultlab serves itself) the sans-IO encoding of calls and replies.

:class:`WireProtocol` is the one interface the lab, the proxy's toxics and the bench call,
so none of them names a protocol: which transports it runs over, how to start a server
and a client for it, how its frames are cut on a byte stream, how to tell a request from
a reply, its method and id, whether an error is transient, how to answer with its own
error and how to rewrite its version field. :class:`RpcProtocol` adds the sans-IO codec
that :class:`~faultlab.rpc.server.RpcServer` and :class:`~faultlab.rpc.client.Client`
drive: the client side encodes a :class:`Request` and decodes a :class:`Response`; the
server side turns one received message into zero or one reply through ``handle``, which
also owns protocol rules such as JSON-RPC batches and notifications. A protocol whose
library owns its sockets (gRPC) is a :class:`WireProtocol` only.

A protocol never touches a socket in its sans-IO part. Over byte streams a *framing*
(length-prefix, lines, msgpack-stream, http) cuts the stream into messages; message
transports carry one message per datagram.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from typing import Any, ClassVar, Protocol

import h11

from faultlab._registry import Registry
from faultlab.codecs.framing.http import HttpMessage
from faultlab.errors import FaultlabError, LocalProtocolError
from faultlab.rpc.errors import KINDS
from faultlab.rpc.frames import WireMessage, http_reply, parse_http, serialize_http, with_body
from faultlab.rpc.messages import ErrorInfo, Request, Response

__all__ = [
    "HTTP_METHODS",
    "Dispatch",
    "HttpReply",
    "RpcProtocol",
    "Server",
    "WireProtocol",
    "get_protocol",
    "get_rpc_protocol",
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


Hook = Callable[[Request, Response], None]
"""Called by a server after each request it dispatched (the lab journals them)."""

_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, RecursionError, FaultlabError)


class Server(Protocol):
    """What :meth:`WireProtocol.serve` gives: the real address, and a way to stop."""

    @property
    def address(self) -> str: ...

    def close(self) -> None: ...


class WireProtocol(ABC):
    """One protocol, registered by ``name``: everything faultlab knows of it outside it."""

    name: ClassVar[str]
    framings: ClassVar[tuple[str, ...]]
    """Framings the proxy can cut its byte streams with; the first is the default. Empty:
    its library owns the connection and faultlab sees bytes only (gRPC's HTTP/2)."""
    message_transports: ClassVar[bool] = True
    """Whether one message per datagram/queue message works (False: streams only)."""
    schemes: ClassVar[tuple[str, ...] | None] = None
    """The only transports it runs over (``None``: any, as ``message_transports`` allows)."""
    schemes_reason: ClassVar[str] = ""
    content_type: ClassVar[str] = "application/octet-stream"
    frames_readable: ClassVar[bool] = False
    """Whether :meth:`decode_frame` reads its frames (protocol-aware toxics need it)."""
    version_field: ClassVar[str | None] = None
    """The version field :meth:`rewrite_version` rewrites (``None``: it has none)."""

    # ---- provisioning -------------------------------------------------------------

    def unavailable_reason(self) -> str | None:
        """Why it cannot run here (a missing optional library), or ``None``."""
        return None

    def incompatibility(self, scheme: str) -> str | None:
        """Why this protocol cannot run over transport ``scheme`` (``None`` when it can)."""
        if self.schemes is not None:
            if scheme in self.schemes:
                return None
            why = f" ({self.schemes_reason})" if self.schemes_reason else ""
            return f"{self.name} runs only over {', '.join(self.schemes)}{why}"
        from faultlab import transports

        if transports.get(scheme).capabilities.kind == "message" and not self.message_transports:
            if self.needs_http:
                return f"{self.name} is carried over HTTP, which needs a byte stream, not {scheme}"
            return f"{self.name} needs a byte stream, not {scheme}"
        return None

    @abstractmethod
    def serve(
        self,
        service: object,
        *,
        address: str,
        framing: str | None = None,
        on_request: Hook | None = None,
        **options: Any,
    ) -> Server:
        """Start serving ``service`` on ``address`` (its real address is ``server.address``)."""

    @abstractmethod
    def connect(
        self, address: str, *, framing: str | None = None, timeout: float = 10.0, **options: Any
    ) -> Any:
        """A synchronous client: ``call(method, *args)``, ``client.method(...)``, ``close()``."""

    def version_options(self, version: int) -> dict[str, Any]:
        """Options for :meth:`serve`/:meth:`connect` that speak schema ``version``."""
        return {}

    # ---- wire knowledge (sans-IO) -------------------------------------------------

    @property
    def needs_http(self) -> bool:
        """Carried over HTTP only (REST)."""
        return self.framings == ("http",)

    def frame_reason(self, framing: str | None, message_based: bool) -> str | None:
        """Why a proxy with ``framing`` (or a message transport) cannot read its frames."""
        name = self.name
        if not self.frames_readable:
            return f"the proxy cannot read {name} frames (it sees bytes only)"
        if message_based:
            if not self.message_transports:
                if self.needs_http:
                    return f"{name} is carried over HTTP, which needs a byte-stream transport"
                return f"{name} needs a byte-stream transport"
            return None
        if framing == "http" and "http" not in self.framings:
            return f"{name} is not carried over HTTP; use its own framing"
        if self.needs_http and framing != "http":
            return f"{name} needs framing='http' on the proxy"
        if framing is not None and framing not in self.framings:
            return f"{name} is not framed with {framing!r} (it uses {', '.join(self.framings)})"
        return None

    def read_frame(self, data: bytes, *, request: bool, http: bool = False) -> WireMessage | None:
        """The frame as an editable message, or ``None`` if it is not a request (``request``)
        or a reply of this protocol. ``http``: the body is carried in an HTTP message."""
        if not self.frames_readable:
            return None
        carriage = None
        body = data
        if http or self.needs_http:
            carriage = parse_http(data, request)
            if carriage is None or isinstance(carriage.head, h11.InformationalResponse):
                return None
            body = carriage.body
        try:
            message = self.decode_frame(body, request=request, http=carriage)
        except _DECODE_ERRORS:
            return None
        if message is not None:
            message.http = carriage
        return message

    def write_frame(self, message: WireMessage) -> bytes:
        """The frame for ``message`` (after edits), in its HTTP carriage if it came in one."""
        body = self.encode_frame(message)
        if message.http is not None:
            return serialize_http(with_body(message.http, body))
        return body

    def error_reply(self, message: WireMessage, info: ErrorInfo) -> bytes | None:
        """What the server would answer to the request(s) in ``message`` with error ``info``,
        or, for a reply, that reply turned into ``info`` (ids and version kept).

        ``None``: nothing (a notification outside HTTP). Over HTTP every request is
        answered: ``unavailable`` is a 503 for every protocol, as a load balancer says it.
        """
        body = self.error_body(message, info)
        if message.http is None:
            return body
        status = self.http_status(info)
        if body is None:
            return http_reply(503 if status == 503 else 204, b"", self.content_type)
        return http_reply(status, body, self.content_type)

    def decode_frame(
        self, body: bytes, *, request: bool, http: HttpMessage | None = None
    ) -> WireMessage | None:
        """``body`` (its HTTP message in ``http``, if carried so) as a message; may raise
        ValueError/TypeError/KeyError/IndexError/FaultlabError for "not one of mine"."""
        return None

    def encode_frame(self, message: WireMessage) -> bytes:
        """The body for ``message``."""
        raise LocalProtocolError(f"{self.name} frames cannot be encoded by faultlab")

    def error_body(self, message: WireMessage, info: ErrorInfo) -> bytes | None:
        """The native error body answering every call (or replacing every reply) of
        ``message``; ``None`` when nothing is answered (only notifications)."""
        raise LocalProtocolError(f"{self.name} cannot build error replies in faultlab")

    def http_status(self, info: ErrorInfo) -> int:
        """The HTTP status of an error reply carried over HTTP."""
        return 503 if info.kind == "unavailable" else 200

    def reply_error(self, message: WireMessage, index: int = 0) -> ErrorInfo | None:
        """The error the ``index``-th reply of ``message`` carries (``None``: a result)."""
        return None

    def is_transient(self, info: ErrorInfo) -> bool:
        """Whether a retry may succeed (``unavailable``, ``deadline_exceeded``)."""
        cls = KINDS.get(info.kind)
        return cls is not None and cls.transient

    def rewrite_version(self, data: bytes, message: WireMessage, version: int) -> bytes:
        """``data`` (the frame ``message`` was read from) with its version field set to
        ``version``, every other byte kept."""
        raise LocalProtocolError(f"{self.name} has no version field to rewrite")


class RpcProtocol(WireProtocol):
    """A protocol faultlab serves and calls itself: a sans-IO codec of calls and replies."""

    http_path: ClassVar[str] = "/"

    def serve(
        self,
        service: object,
        *,
        address: str,
        framing: str | None = None,
        on_request: Hook | None = None,
        **options: Any,
    ) -> Server:
        from faultlab.rpc.server import RpcServer

        return RpcServer(
            service,
            protocol=self,
            address=address,
            framing=framing,
            on_request=on_request,
            **options,
        )

    def connect(
        self, address: str, *, framing: str | None = None, timeout: float = 10.0, **options: Any
    ) -> Any:
        from faultlab.rpc.client import Client

        return Client(address, self, framing=framing, timeout=timeout, **options)

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


_BUILTIN = ("jsonrpc", "xmlrpc", "msgpackrpc", "binrpc", "rest", "grpc")


def _adopt(ep: EntryPoint) -> None:
    obj = ep.load()
    register_protocol(obj() if isinstance(obj, type) else obj)


_registry: Registry[WireProtocol] = Registry(
    "RPC protocol",
    "faultlab.protocols",
    [f"faultlab.rpc.{name}" for name in _BUILTIN],
    missing=lambda name: LocalProtocolError(
        f"unknown RPC protocol {name!r}; known: {_registry.known()}"
    ),
    adopt=_adopt,
)


def register_protocol(protocol: WireProtocol) -> WireProtocol:
    return _registry.register(protocol.name, protocol)


def get_protocol(name: str) -> WireProtocol:
    return _registry.get(name)


def get_rpc_protocol(name: str) -> RpcProtocol:
    """The protocol ``name`` as a codec :class:`RpcServer`/:class:`Client` can drive."""
    protocol = get_protocol(name)
    if not isinstance(protocol, RpcProtocol):
        raise LocalProtocolError(
            f"{name} is not served by faultlab's RpcServer/Client; "
            f"use get_protocol({name!r}).serve(...) / .connect(...)"
        )
    return protocol


def protocol_names() -> list[str]:
    return _registry.names()
