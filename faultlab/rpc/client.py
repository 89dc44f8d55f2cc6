"""RPC clients: ``client.call("add", 2, 3)`` or ``client.add(2, 3)``, sync and async.

A client connects lazily and reconnects on the next call after the
connection broke: it never retries on its own (that is the job of the retry
policy under test). Every call has a timeout; after a timeout or a broken
reply the connection is dropped, so a late reply is never taken for the
answer to another call.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Self

from faultlab import transports
from faultlab.errors import FaultlabError, LocalProtocolError, RemoteProtocolError, TransportError
from faultlab.rpc.base import RpcProtocol, get_rpc_protocol
from faultlab.rpc.channel import MAX_MESSAGE, Channel, HttpClientChannel, open_channel
from faultlab.rpc.messages import Request, Response
from faultlab.rpc.server import resolve_framing
from faultlab.streams import ByteStream, Deadline

__all__ = ["AsyncClient", "CallingClient", "Client", "MethodProxy", "connect"]


class MethodProxy:
    """``client.counter.incr(1)``: attribute access builds the dotted method name.

    Shared by every client that has a ``call(method, *args, **kwargs)``.
    """

    def __init__(self, client: Any, name: str) -> None:
        self._client = client
        self._name = name

    def __getattr__(self, attr: str) -> MethodProxy:
        if attr.startswith("_"):
            raise AttributeError(attr)
        return MethodProxy(self._client, f"{self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._client.call(self._name, *args, **kwargs)


class CallingClient(ABC):
    """What every synchronous client shares: ``call``, ``client.method(...)`` sugar, ``with``."""

    @abstractmethod
    def call(self, method: str, *args: Any, **kwargs: Any) -> Any: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> MethodProxy:
        if name.startswith("_"):
            raise AttributeError(name)
        return MethodProxy(self, name)


class Client(CallingClient):
    """A synchronous RPC client for one server address."""

    def __init__(
        self,
        address: str,
        protocol: str | RpcProtocol = "jsonrpc",
        *,
        framing: str | None = None,
        timeout: float = 10.0,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        self.address = address
        self.protocol = (
            protocol if isinstance(protocol, RpcProtocol) else get_rpc_protocol(protocol)
        )
        self.transport = transports.get(transports.parse_address(address).scheme)
        self.framing = resolve_framing(self.protocol, self.transport.capabilities.kind, framing)
        self.timeout = timeout
        self.max_message = max_message
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._channel: Channel | HttpClientChannel | None = None

    # connection management
    def _connect(self, deadline: Deadline) -> Channel | HttpClientChannel:
        if self._channel is not None:
            return self._channel
        stream = self.transport.connect(self.address, timeout=deadline.remaining())
        if self.framing == "http":
            assert isinstance(stream, ByteStream)
            host = transports.parse_address(self.address).host
            self._channel = HttpClientChannel(stream, host, max_body=self.max_message)
        else:
            self._channel = open_channel(stream, self.framing, max_size=self.max_message)
        return self._channel

    def _drop(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def close(self) -> None:
        with self._lock:
            self._drop()

    # calls
    def call(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` and return its result, or raise a typed error.

        Raises :class:`~faultlab.rpc.errors.RpcError` subclasses for error
        replies, :class:`~faultlab.errors.TransportError` subclasses when the
        connection failed or timed out, and ``RemoteProtocolError`` for replies
        that break the protocol (a truncated frame is never a value).
        """
        if args and kwargs:
            raise LocalProtocolError("pass params positionally or by name, not both")
        params: list[Any] | dict[str, Any] = dict(kwargs) if kwargs else list(args)
        meta = {"idempotency_key": idempotency_key} if idempotency_key else {}
        request = Request(method, params, next(self._ids), meta=meta)
        return self._exchange([request], timeout)[0].unwrap()

    def notify(self, method: str, *args: Any, timeout: float | None = None) -> None:
        """Send a call that expects no reply."""
        request = Request(method, list(args), None, notification=True)
        deadline = Deadline.after(self.timeout if timeout is None else timeout)
        with self._lock:
            channel = self._connect(deadline)
            try:
                if isinstance(channel, HttpClientChannel):
                    verb, target, body = self.protocol.http_request(request)
                    channel.request(
                        verb, target, body, self._headers(request), timeout=deadline.remaining()
                    )
                else:
                    channel.send(
                        self.protocol.encode_request(request), timeout=deadline.remaining()
                    )
            except FaultlabError:
                self._drop()
                raise

    def pipeline(
        self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout: float | None = None
    ) -> list[Response]:
        """Send every call before reading any reply (protocols with ids); replies in call order."""
        requests = [Request(m, list(a), next(self._ids)) for m, a in calls]
        return self._exchange(requests, timeout)

    def _headers(self, request: Request) -> list[tuple[str, str]]:
        headers = [("Content-Type", self.protocol.content_type)]
        key = request.meta.get("idempotency_key")
        if key:
            headers.append(("Idempotency-Key", str(key)))
        return headers

    def _exchange(self, requests: list[Request], timeout: float | None) -> list[Response]:
        deadline = Deadline.after(self.timeout if timeout is None else timeout)
        with self._lock:
            channel = self._connect(deadline)
            try:
                if isinstance(channel, HttpClientChannel):
                    return [self._http_call(channel, r, deadline) for r in requests]
                for request in requests:
                    channel.send(
                        self.protocol.encode_request(request), timeout=deadline.remaining()
                    )
                return self._collect(channel, requests, deadline)
            except (TransportError, RemoteProtocolError):
                self._drop()  # a late or partial reply must never answer another call
                raise

    def _http_call(
        self, channel: HttpClientChannel, request: Request, deadline: Deadline
    ) -> Response:
        verb, target, body = self.protocol.http_request(request)
        status, headers, reply = channel.request(
            verb, target, body, self._headers(request), timeout=deadline.remaining()
        )
        if not channel.reusable or headers.get("connection", "").lower() == "close":
            self._drop()
        return self.protocol.http_response(status, reply, request)

    def _collect(
        self, channel: Channel, requests: list[Request], deadline: Deadline
    ) -> list[Response]:
        by_id: dict[Any, Response] = {}
        wanted = {r.id for r in requests}
        ordered = len(requests) == 1
        while len(by_id) < len(requests):
            response = self.protocol.decode_response(channel.receive(timeout=deadline.remaining()))
            if response.id is None or (ordered and response.id in (0, None)):
                # protocols without ids (XML-RPC) or replies to unreadable input: in order
                response = Response(requests[len(by_id)].id, response.result, response.error)
            if response.id in wanted:
                by_id[response.id] = response
            # else: a stale reply to an earlier, abandoned call; skip it
        return [by_id[r.id] for r in requests]


def connect(
    address: str, protocol: str = "jsonrpc", *, framing: str | None = None, timeout: float = 10.0
) -> Client:
    """A client for ``address`` (connects on first call)."""
    return Client(address, protocol, framing=framing, timeout=timeout)


class AsyncClient:
    """asyncio twin of :class:`Client`: each call runs in a worker thread, with its timeout."""

    def __init__(self, address: str, protocol: str = "jsonrpc", **options: Any) -> None:
        self.sync = Client(address, protocol, **options)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(lambda: self.sync.call(method, *args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        async def method(*args: Any, **kwargs: Any) -> Any:
            return await self.call(name, *args, **kwargs)

        return method

    async def aclose(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
