"""The two ends of a proxied connection, behind one small interface.

Socket transports (tcp, unix, and tls passed through as bytes) use asyncio
Protocols: ``data_received`` hands bytes straight to the link, with no task
switch (asyncio Streams cost twice the throughput here). Every other faultlab
transport (fifo, udp, unixgram, shm, mq) is bridged: a reader thread feeds
the loop and a writer thread drains a queue, using the transport's own sync
stream with its timeouts.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import struct
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from faultlab.errors import EndOfStream, RemoteProtocolError, TransportError
from faultlab.streams import ByteStream, MessageStream, Stream

__all__ = ["BridgeEndpoint", "Endpoint", "Sink", "SocketEndpoint"]


class Sink(ABC):
    """What a link needs from the receiving side."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def write_eof(self) -> None:
        """Half-close if the transport can, else close."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def reset(self) -> None:
        """Close abortively (RST where the transport has one)."""

    @abstractmethod
    def pause_reading(self) -> None: ...

    @abstractmethod
    def resume_reading(self) -> None: ...


Feed = Callable[[bytes], None]
FeedEof = Callable[[], None]
Lost = Callable[[BaseException | None], None]


class Endpoint(Sink):
    """One side of a connection: a sink for one link and the source of the other."""

    on_data: Feed
    on_eof: FeedEof
    on_lost: Lost
    on_pause_writing: Callable[[], None]
    on_resume_writing: Callable[[], None]
    description: str = ""

    def bind(
        self,
        on_data: Feed,
        on_eof: FeedEof,
        on_lost: Lost,
        on_pause_writing: Callable[[], None],
        on_resume_writing: Callable[[], None],
    ) -> None:
        self.on_data = on_data
        self.on_eof = on_eof
        self.on_lost = on_lost
        self.on_pause_writing = on_pause_writing
        self.on_resume_writing = on_resume_writing

    def start(self) -> None:
        """Begin delivering data (after both ends are bound)."""


class SocketEndpoint(asyncio.Protocol, Endpoint):
    """An asyncio socket; data is buffered until :meth:`start` (both ends bound)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._pending_eof = False
        self._started = False
        self._lost = False
        self.connected = asyncio.get_running_loop().create_future()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: duck-type them.
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.description = str(peer) if peer else "unix"
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._started:
            self.on_data(data)
        else:
            self._pending.append(data)

    def eof_received(self) -> bool:
        if self._started:
            self.on_eof()
        else:
            self._pending_eof = True
        return True  # keep the other direction open (half-close preserved)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("connection lost"))
        if self._started:
            self.on_lost(exc)

    def pause_writing(self) -> None:
        if self._started:
            self.on_pause_writing()

    def resume_writing(self) -> None:
        if self._started:
            self.on_resume_writing()

    # Endpoint
    def start(self) -> None:
        self._started = True
        pending, self._pending = self._pending, []
        for data in pending:
            self.on_data(data)
        if self._pending_eof:
            self.on_eof()
        if self._lost:
            self.on_lost(None)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def write_eof(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        else:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def reset(self) -> None:
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.transport.abort()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()


_STOP = object()


class BridgeEndpoint(Endpoint):
    """A faultlab sync stream driven by a reader and a writer thread."""

    POLL = 0.25

    def __init__(self, stream: Stream, loop: asyncio.AbstractEventLoop) -> None:
        self.stream = stream
        self.loop = loop
        self.description = stream.kind
        self._out: queue.Queue[Any] = queue.Queue()
        self._running = threading.Event()
        self._running.set()
        self._closed = threading.Event()
        self._lost_sent = False

    def start(self) -> None:
        threading.Thread(target=self._read_loop, daemon=True, name="faultlab-bridge-r").start()
        threading.Thread(target=self._write_loop, daemon=True, name="faultlab-bridge-w").start()

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # loop closed: the engine is shutting down

    def _read_loop(self) -> None:
        stream = self.stream
        while not self._closed.is_set():
            if not self._running.wait(self.POLL):
                continue
            try:
                if isinstance(stream, ByteStream):
                    data = stream.receive(65536, timeout=self.POLL)
                else:
                    assert isinstance(stream, MessageStream)
                    data = stream.receive(timeout=self.POLL)
            except EndOfStream:
                self._call(self.on_eof)
                return
            except TransportError as exc:
                if type(exc).__name__ == "TransportTimeout":
                    continue
                self._lose(exc)
                return
            except RemoteProtocolError as exc:  # e.g. a datagram socket closed under a read
                if not self._closed.is_set():
                    self._lose(exc)
                return
            self._call(self.on_data, data)

    def _lose(self, exc: BaseException | None) -> None:
        if not self._lost_sent:
            self._lost_sent = True
            self._call(self.on_lost, exc)

    def _write_loop(self) -> None:
        while True:
            item = self._out.get()
            if item is _STOP:
                return
            kind, data = item
            try:
                if kind == "data":
                    self.stream.send(data, timeout=30)
                elif kind == "eof":
                    self.stream.send_eof()
                else:
                    self.stream.close()
                    return
            except TransportError as exc:
                self._lose(exc)
                return

    def write(self, data: bytes) -> None:
        self._out.put(("data", data))

    def write_eof(self) -> None:
        self._out.put(("eof", b""))

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._out.put(("close", b""))

    def reset(self) -> None:
        self._closed.set()
        self._out.put(_STOP)
        self.stream.close()

    def pause_reading(self) -> None:
        self._running.clear()

    def resume_reading(self) -> None:
        self._running.set()
