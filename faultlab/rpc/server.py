"""Serve a :class:`Service` with any protocol over any transport.

One thread accepts; each connection gets a thread that reads messages (or
HTTP requests), lets the protocol answer them, and writes the replies in
order. A bad message gets the protocol's native error reply; a frame the
server cannot read past (oversize, malformed framing) gets an error reply and
that connection is closed. Other clients are never affected.

Over HTTP: a request that cannot be read gets ``400`` (``413`` if too large) with
``Connection: close``; a method other than the protocol's gets ``405`` (``501`` for one
HTTP does not define) and the connection stays open; ``HEAD`` replies have no body.
Pipelined requests are answered in order; the socket is read only when the current
request is incomplete, so a pipelining client is held back by TCP, not buffered here.
A byte-stream peer whose last MAX_BAD_IN_A_ROW messages were all unreadable gets
their error replies and is then disconnected: it does not speak the protocol.

Connections are bounded: past ``max_connections`` (default MAX_CONNECTIONS) a new
connection evicts the one that has been quiet longest and is not being answered, so a
flood of idle or dribbling connections (slowloris) costs a bounded number of threads and
new clients are still served; ``connections_evicted`` counts them.

A protocol handler that raises anything but a typed error is a faultlab bug: the
peer gets an internal-error reply, the connection closes, and the error is kept in
``internal_errors`` (tests assert it stays empty).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from faultlab import transports
from faultlab.codecs.errors import FrameTooLarge
from faultlab.errors import (
    ClosedResourceError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportError,
)
from faultlab.rpc.base import RpcProtocol, get_rpc_protocol
from faultlab.rpc.channel import MAX_MESSAGE, HttpServerChannel, open_channel
from faultlab.rpc.errors import InternalError, InvalidRequest, ParseError
from faultlab.rpc.messages import ErrorInfo, Request, Response
from faultlab.rpc.service import Service
from faultlab.streams import ByteStream, Listener, MessageStream, Stream

__all__ = ["RpcServer", "serve"]

IDLE_TIMEOUT = 3600.0
MAX_CONNECTIONS = 512
"""Connections served at once; one more evicts the quietest (each costs a thread)."""
MAX_BAD_IN_A_ROW = 64
"""Unreadable messages in a row after which a byte-stream peer is disconnected."""
Hook = Callable[[Request, Response], None]


def resolve_framing(protocol: RpcProtocol, stream_kind: str, framing: str | None) -> str:
    """The framing to use, checked against what the protocol and transport allow."""
    if stream_kind == "message":
        if not protocol.message_transports:
            raise LocalProtocolError(
                f"{protocol.name} needs a byte-stream transport (it is carried over HTTP)"
            )
        return "datagram"
    framing = framing or protocol.framings[0]
    if framing not in protocol.framings:
        raise LocalProtocolError(
            f"{protocol.name} does not use framing {framing!r}; choose from {protocol.framings}"
        )
    return framing


class RpcServer:
    """A running server; ``address`` is the real one (port 0 resolved)."""

    def __init__(
        self,
        service: Service | object,
        *,
        protocol: str | RpcProtocol = "jsonrpc",
        address: str = "tcp://127.0.0.1:0",
        framing: str | None = None,
        max_message: int = MAX_MESSAGE,
        on_request: Hook | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        if max_connections < 1:
            raise LocalProtocolError(f"max_connections must be at least 1, got {max_connections}")
        self.max_connections = max_connections
        self.connections_evicted = 0
        self.service = service if isinstance(service, Service) else Service(service)
        self.protocol = (
            protocol if isinstance(protocol, RpcProtocol) else get_rpc_protocol(protocol)
        )
        transport = transports.get(transports.parse_address(address).scheme)
        self.framing = resolve_framing(self.protocol, transport.capabilities.kind, framing)
        self.max_message = max_message
        self.on_request = on_request
        self.requests_handled = 0
        self.internal_errors: deque[BaseException] = deque(maxlen=100)
        """Untyped exceptions a protocol raised while serving (each one a bug), newest last."""
        self._lock = threading.Lock()
        self._listener: Listener[Any] = transports.listen(address)
        self.address: str = self._listener.address
        self._streams: dict[Stream, float] = {}
        """Each open connection and when it was last active (accepted, or answered)."""
        self._busy: set[Stream] = set()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        accept = threading.Thread(target=self._accept_loop, name="faultlab-rpc-accept", daemon=True)
        self._threads.append(accept)
        accept.start()

    def _dispatch(self, request: Request) -> Response:
        response = self.service.dispatch(request)
        with self._lock:
            self.requests_handled += 1
        if self.on_request is not None:
            self.on_request(request, response)
        return response

    def _keyed_dispatch(self, key: str | None) -> Callable[[Request], Response]:
        """Dispatch with the ``Idempotency-Key`` header carried into each request's metadata
        (HTTP puts the key beside the body, where the protocol's decoder cannot see it)."""
        if not key:
            return self._dispatch

        def dispatch(request: Request) -> Response:
            request.meta.setdefault("idempotency_key", key)
            return self._dispatch(request)

        return dispatch

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                stream = self._listener.accept(timeout=0.5)
            except ClosedResourceError:
                return
            except (TransportError, OSError):
                continue  # one failed accept must never stop the server
            stream.default_timeout = IDLE_TIMEOUT
            with self._lock:
                if self._closed.is_set():
                    stream.close()
                    return
                if len(self._streams) >= self.max_connections:
                    self._evict_quietest()
                self._streams[stream] = time.monotonic()
                self._threads = [t for t in self._threads if t.is_alive()]
                thread = threading.Thread(
                    target=self._serve_connection,
                    args=(stream,),
                    daemon=True,
                    name="faultlab-rpc-conn",
                )
                self._threads.append(thread)
            thread.start()

    def _evict_quietest(self) -> None:
        """Close the connection quiet the longest that is not being answered (lock held)."""
        idle = [(t, id(s), s) for s, t in self._streams.items() if s not in self._busy]
        if idle:
            _, _, victim = min(idle, key=lambda item: item[:2])
            del self._streams[victim]
            victim.close()  # its thread's read fails and the thread ends
            self.connections_evicted += 1

    def _active(self, stream: Stream, busy: bool) -> None:
        with self._lock:
            if stream in self._streams:
                self._streams[stream] = time.monotonic()
            if busy:
                self._busy.add(stream)
            else:
                self._busy.discard(stream)

    def _serve_connection(self, stream: Stream) -> None:
        try:
            if self.framing == "http":
                assert isinstance(stream, ByteStream)
                self._serve_http(HttpServerChannel(stream, max_body=self.max_message))
            else:
                self._serve_messages(stream)
        except (TransportError, RemoteProtocolError, LocalProtocolError):
            pass  # the connection is gone or unusable; other clients carry on
        finally:
            stream.close()
            with self._lock:
                self._streams.pop(stream, None)
                self._busy.discard(stream)

    def _serve_messages(self, stream: Stream) -> None:
        channel = open_channel(stream, self.framing, max_size=self.max_message)
        dispatched = False
        bad_in_a_row = 0

        def dispatch(request: Request) -> Response:
            nonlocal dispatched
            dispatched = True
            return self._dispatch(request)

        while True:
            try:
                data = channel.receive()
            except FrameTooLarge as exc:
                channel.send(self.protocol.error_message(_info(InvalidRequest(str(exc)))))
                return  # cannot resynchronise past an unread frame
            except RemoteProtocolError as exc:
                if isinstance(stream, MessageStream):
                    continue
                channel.send(self.protocol.error_message(_info(ParseError(str(exc)))))
                return
            dispatched = False
            self._active(stream, busy=True)
            try:
                reply = self.protocol.handle(data, dispatch)
            except Exception as exc:  # a bug in the protocol: answer, then give up
                self.internal_errors.append(exc)
                channel.send(self.protocol.error_message(_info(InternalError(type(exc).__name__))))
                return
            finally:
                self._active(stream, busy=False)
            bad_in_a_row = 0 if dispatched or reply is None else bad_in_a_row + 1
            if reply is not None:
                channel.send_later(reply)  # sent before the channel next waits to read
            if bad_in_a_row >= MAX_BAD_IN_A_ROW and isinstance(stream, ByteStream):
                channel.flush()
                return  # not speaking the protocol: stop spending a reply on each byte

    def _serve_http(self, channel: HttpServerChannel) -> None:
        while True:
            try:
                request = channel.next_request()
            except FrameTooLarge as exc:
                error = self.protocol.error_message(_info(InvalidRequest(str(exc))))
                channel.send_error(413, error)
                return
            except RemoteProtocolError as exc:
                channel.send_error(400, self.protocol.error_message(_info(ParseError(str(exc)))))
                return
            if request is None:
                return
            key = request.headers.get("idempotency-key")
            self._active(channel.stream, busy=True)
            try:
                reply = self.protocol.handle_http(
                    request.method, request.target, request.body, self._keyed_dispatch(key)
                )
            except Exception as exc:  # a bug in the protocol: answer, then give up
                self.internal_errors.append(exc)
                error = self.protocol.error_message(_info(InternalError(type(exc).__name__)))
                channel.send_error(500, error)
                return
            finally:
                self._active(channel.stream, busy=False)
            channel.send_reply(reply.status, reply.body, reply.headers)
            if channel.must_close:
                return

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection, and join the threads."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._listener.close()
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.close()
        for thread in self._threads:
            thread.join(timeout)

    def __enter__(self) -> RpcServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _info(exc: InvalidRequest | ParseError | InternalError) -> ErrorInfo:
    return ErrorInfo.from_exception(exc)


def serve(
    service: Service | object,
    *,
    protocol: str = "jsonrpc",
    address: str = "tcp://127.0.0.1:0",
    framing: str | None = None,
    on_request: Hook | None = None,
) -> RpcServer:
    """Start serving in background threads; returns once the listener is bound."""
    return RpcServer(
        service, protocol=protocol, address=address, framing=framing, on_request=on_request
    )
