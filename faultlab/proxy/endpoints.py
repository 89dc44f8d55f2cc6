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
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from faultlab.errors import EndOfStream, RemoteProtocolError, TransportError, TransportTimeout
from faultlab.proxy.tcpcount import tcp_bytes_read
from faultlab.streams import ByteStream, MessageStream, Stream
from faultlab.transports._fdio import hangup_events

__all__ = ["BridgeEndpoint", "Endpoint", "Sink", "SocketEndpoint", "settle_bridges"]


PENDING_LIMIT = 1 << 20
"""Most a client may send before its upstream connection is wired (then reading pauses)."""
BRIDGE_HIGH = 1 << 20
"""Bytes a bridge holds on either side of its threads before it pushes back."""
BRIDGE_LOW = 256 << 10
WATCH_INTERVAL = 0.5
"""How often a paused source is checked for a peer that went away."""
CLOSE_LINGER = 5.0
"""How long a closing bridge keeps trying to flush data to a peer that does not read."""
WRITE_TIMEOUT = 30.0


class Sink(ABC):
    """What a link needs from the receiving side."""

    bytes_written: int = 0
    """Bytes handed to :meth:`write` (what the proxy sent this side: the metrics' count)."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Queue ``data``; past the endpoint's high-water mark it calls ``on_pause_writing``."""

    @abstractmethod
    def write_eof(self) -> None:
        """Half-close if the transport can, else close."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def reset(self) -> None:
        """Close abortively (RST where the transport has one)."""

    @abstractmethod
    def buffered(self) -> int:
        """Bytes written here that the transport has not handed to the kernel yet."""

    def direct_writer(self) -> Callable[[bytes], None] | None:
        """A C-level write the fast path may call instead of :meth:`write` (it then counts
        ``bytes_written`` itself and catches ``RuntimeError``, raised when the transport
        closed under it), or None: use :meth:`write`."""
        return None


Feed = Callable[[bytes], None]
FeedEof = Callable[[], None]
Lost = Callable[[BaseException | None], None]


class Endpoint(Sink):
    """One side of a connection: a sink for one link and the source of the other.

    Reading pauses while any reason holds it (``hold``/``release``): the link's
    queue is full, the opposite sink's buffer is full, or the connection is not
    wired yet. One flag per transport would let one reason's resume undo
    another's pause, and memory would grow without bound.
    """

    on_data: Feed
    on_eof: FeedEof
    on_lost: Lost
    on_pause_writing: Callable[[], None]
    on_resume_writing: Callable[[], None]
    description: str = ""
    pending_since: float | None = None
    """When (``time.monotonic()``) the first read held back until :meth:`start` arrived: a
    request that waited for the upstream connection is journaled as of then."""
    _holds: frozenset[str] = frozenset()

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

    def unbind(self) -> None:
        """Forget the links: after the connection ended, late callbacks go nowhere, and the
        endpoint no longer holds its links (nor they it) in a cycle, so memory is freed at
        once instead of at the next full garbage collection."""
        self.on_data = _ignore_data
        self.on_eof = _ignore
        self.on_lost = _ignore_lost
        self.on_pause_writing = _ignore
        self.on_resume_writing = _ignore

    def hold(self, reason: str) -> None:
        """Stop reading for ``reason`` (reading resumes once every reason is released)."""
        if reason not in self._holds:
            was_held = bool(self._holds)
            self._holds = self._holds | {reason}
            if not was_held:
                self._pause_reading()

    def release(self, reason: str) -> None:
        if reason in self._holds:
            self._holds = self._holds - {reason}
            if not self._holds:
                self._resume_reading()

    @property
    def held(self) -> bool:
        return bool(self._holds)

    @property
    def spliced(self) -> bool:
        """Whether reads go straight to a sink's write (:meth:`splice`)."""
        return False

    def splice(self, write: Feed) -> bool:
        """Hand every read straight to ``write`` (a sink's C-level write), with no Python
        per read, while the kernel counts what is read; False where it cannot count."""
        return False

    def spliced_bytes(self) -> int:
        """Bytes read (and written on) since :meth:`splice`; 0 when not spliced."""
        return 0

    def unsplice(self) -> int:
        """Reads go to the link again; returns :meth:`spliced_bytes` of the splice ended."""
        return 0

    @abstractmethod
    def _pause_reading(self) -> None: ...

    @abstractmethod
    def _resume_reading(self) -> None: ...


def _ignore() -> None:
    pass


def _ignore_data(data: bytes) -> None:
    pass


def _ignore_lost(exc: BaseException | None) -> None:
    pass


class SocketEndpoint(asyncio.Protocol, Endpoint):
    """An asyncio socket; data is buffered (up to PENDING_LIMIT) until :meth:`start`.

    While reading is paused the kernel still knows when the peer resets or
    closes both ways: a timer polls the socket for that (POLLHUP/POLLERR), so a
    client that goes away is noticed although nothing reads its socket.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_eof = False
        self._started = False
        self._lost = False
        self._lost_exc: BaseException | None = None
        self._watch: asyncio.TimerHandle | None = None
        self._splice_socket: Any = None
        """The socket whose kernel counters count the reads while spliced (else None)."""
        self._splice_base = 0
        self._splice_final: int | None = None
        """The spliced count taken at EOF or loss, while the socket still exists."""
        self._eof_sent = False
        self.loop = asyncio.get_running_loop()
        self.connected = self.loop.create_future()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: duck-type them.
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) == 4 and str(peer[0]).startswith("::ffff:"):
            peer = (peer[0][7:], peer[1])  # IPv4 through a dual-stack wildcard listener
        self.description = str(peer) if peer else "unix"
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._started:
            self.on_data(data)
        else:
            if not self._pending:
                self.pending_since = time.monotonic()
            self._pending.append(data)
            self._pending_bytes += len(data)
            if self._pending_bytes > PENDING_LIMIT:
                self.hold("pending")

    def eof_received(self) -> bool:
        self._freeze_splice(eof=True)
        if self._started:
            self.on_eof()
        else:
            self._pending_eof = True
        return True  # keep the other direction open (half-close preserved)

    def connection_lost(self, exc: Exception | None) -> None:
        self._freeze_splice()
        self._lost = True
        self._lost_exc = self._lost_exc or exc
        self._stop_watch()
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
        self._pending_bytes = 0
        self._point_reads_at(self.on_data)  # first: a pending read may splice (link.feed)
        for data in pending:
            self.on_data(data)
        if self._pending_eof:
            self.on_eof()
        if self._lost:
            self.on_lost(self._lost_exc)
        self.release("pending")

    def _point_reads_at(self, feed: Callable[[bytes], None]) -> None:
        """Deliver reads straight to ``feed`` (the link), one Python call less per read.

        uvloop caches a protocol's ``data_received`` when the protocol is set, so the
        transport is given this protocol again to pick up the instance attribute.
        """
        transport = self.transport
        if transport is None or transport.is_closing() or self._lost:
            return
        self.data_received = feed  # type: ignore[method-assign,assignment]
        transport.set_protocol(self)

    def splice(self, write: Feed) -> bool:
        # TCP only: a unix socket has no count of bytes read (its reads stay in Python).
        transport = self.transport
        if self._splice_socket is not None:
            return True
        if transport is None or transport.is_closing() or self._lost or self._pending_eof:
            return False
        if self._eof_sent:  # then the kernel's counts are ambiguous (tcpcount's _FIN_PENDING)
            return False
        sock = transport.get_extra_info("socket")
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        base = tcp_bytes_read(sock)
        if base is None:
            return False
        self._splice_socket, self._splice_base, self._splice_final = sock, base, None
        self.data_received = write  # type: ignore[method-assign,assignment]
        transport.set_protocol(self)
        return True

    @property
    def spliced(self) -> bool:
        return self._splice_socket is not None

    def spliced_bytes(self) -> int:
        if self._splice_final is not None:
            return self._splice_final
        return self._count_spliced() if self._splice_socket is not None else 0

    def _count_spliced(self, *, eof: bool = False) -> int:
        now = tcp_bytes_read(self._splice_socket, eof=eof)
        return 0 if now is None else now - self._splice_base

    def _freeze_splice(self, *, eof: bool = False) -> None:
        """At EOF or loss: count now, while the socket (and its counters) still exist."""
        if self._splice_socket is not None and self._splice_final is None:
            self._splice_final = self._count_spliced(eof=eof)

    def unsplice(self) -> int:
        if self._splice_socket is None:
            return 0
        count = self.spliced_bytes()
        self._splice_socket, self._splice_final = None, None
        self.data_received = self.on_data  # type: ignore[method-assign,assignment]
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.set_protocol(self)
        return count

    def unbind(self) -> None:
        self.unsplice()
        super().unbind()
        if "data_received" in self.__dict__:  # the link's feed: drop it (and uvloop's copy)
            self.data_received = _ignore_data  # type: ignore[method-assign]
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.set_protocol(self)

    def write(self, data: bytes) -> None:
        self.bytes_written += len(data)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def direct_writer(self) -> Callable[[bytes], None] | None:
        # uvloop's write raises RuntimeError once the transport is closed; asyncio's would
        # only log, so the fast path keeps asyncio on write() and its is_closing() check.
        transport = self.transport
        if transport is None or transport.is_closing():
            return None
        if type(transport).__module__.split(".", 1)[0] == "asyncio":  # asyncio.selector_events
            return None
        return transport.write

    def write_eof(self) -> None:
        self._eof_sent = True
        if self.transport is None or self.transport.is_closing():
            return
        if self.transport.can_write_eof():
            self.transport.write_eof()
        else:
            self.transport.close()

    def close(self) -> None:
        self._stop_watch()
        if self.transport is not None:
            self.transport.close()

    def reset(self) -> None:
        self._stop_watch()
        if self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.transport.abort()

    def buffered(self) -> int:
        size = self._pending_bytes
        if self.transport is not None and not self.transport.is_closing():
            size += self.transport.get_write_buffer_size()
        return size

    def _pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
            if self._watch is None:
                self._watch = self.loop.call_later(WATCH_INTERVAL, self._check_peer)

    def _resume_reading(self) -> None:
        self._stop_watch()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _stop_watch(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None

    def _check_peer(self) -> None:
        """Reading is paused: did the peer reset, or close both ways, meanwhile?"""
        self._watch = None
        transport = self.transport
        if transport is None or transport.is_closing() or self._lost:
            return
        sock = transport.get_extra_info("socket")
        # A reset or a close both ways; a half-close (POLLRDHUP only) is kept.
        if sock is not None and hangup_events(sock.fileno()):
            error = ConnectionResetError("the peer went away while reading was paused")
            self._lost_exc = error
            if self._started:
                self.on_lost(error)
            self.reset()
        elif self.held:
            self._watch = self.loop.call_later(WATCH_INTERVAL, self._check_peer)


_STOP = object()
_flushing: dict[asyncio.AbstractEventLoop, set[BridgeEndpoint]] = {}
_flushing_lock = threading.Lock()


async def settle_bridges(timeout: float = 1.0) -> None:
    """Give closing bridges on this loop ``timeout`` s to flush, then close their streams.

    Why: a closing bridge flushes for up to CLOSE_LINGER on a loop timer; an engine
    that shuts down stops its loop, so it settles them first and leaves nothing open.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        with _flushing_lock:
            if not _flushing.get(loop):
                break
        await asyncio.sleep(0.02)
    with _flushing_lock:
        left = _flushing.pop(loop, set())
    for bridge in left:
        bridge._close_stream()


class BridgeEndpoint(Endpoint):
    """A faultlab sync stream driven by a reader and a writer thread.

    Both directions are bounded: the reader waits while more than BRIDGE_HIGH
    bytes it read are not yet taken by the loop, and ``write`` calls
    ``on_pause_writing`` once more than BRIDGE_HIGH bytes wait for the writer.
    The stream is closed when both threads are done, on every path (close,
    reset, peer loss, a write that times out), so no fd or thread outlives
    the connection.
    """

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
        self._lock = threading.Lock()
        self._out_bytes = 0
        self._writing_paused = False
        self._in_flight = 0
        self._in_flight_ok = threading.Condition(self._lock)
        self._threads = 0
        self._stream_closed = False

    def start(self) -> None:
        self._threads = 2
        threading.Thread(target=self._read_loop, daemon=True, name="faultlab-bridge-r").start()
        threading.Thread(target=self._write_loop, daemon=True, name="faultlab-bridge-w").start()

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # loop closed: the engine is shutting down

    # -- reader thread ---------------------------------------------------------
    def _read_loop(self) -> None:
        try:
            self._read_until_done()
        finally:
            self._thread_done()

    def _read_until_done(self) -> None:
        stream = self.stream
        while not self._closed.is_set():
            if not self._running.wait(self.POLL):
                if self._peer_gone():
                    self._lose(ConnectionResetError("the peer went away while reading was paused"))
                    return
                continue
            with self._lock:
                while self._in_flight > BRIDGE_HIGH and not self._closed.is_set():
                    self._in_flight_ok.wait(self.POLL)
            if self._closed.is_set():
                return
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
                if isinstance(exc, TransportTimeout):
                    continue
                if not self._closed.is_set():
                    self._lose(exc)
                return
            except RemoteProtocolError as exc:  # e.g. a datagram socket closed under a read
                if not self._closed.is_set():
                    self._lose(exc)
                return
            with self._lock:
                self._in_flight += len(data)
            self._call(self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        with self._lock:
            self._in_flight -= len(data)
            self._in_flight_ok.notify()
        if not self._closed.is_set():
            self.on_data(data)

    def _peer_gone(self) -> bool:
        try:
            return self.stream.peer_gone()
        except (OSError, TransportError):
            return True

    def _lose(self, exc: BaseException | None) -> None:
        if not self._lost_sent:
            self._lost_sent = True
            self._call(self.on_lost, exc)

    # -- writer thread ---------------------------------------------------------
    def _write_loop(self) -> None:
        try:
            self._write_until_done()
        finally:
            self._thread_done()

    def _write_until_done(self) -> None:
        while True:
            item = self._out.get()
            if item is _STOP:
                return
            kind, data = item
            try:
                if kind == "data":
                    if self._closed.is_set() and self._stream_closed:
                        return
                    self.stream.send(data, timeout=WRITE_TIMEOUT)
                    self._sent(len(data))
                elif kind == "eof":
                    self.stream.send_eof()
                else:
                    return
            except TransportError as exc:
                if not self._closed.is_set():
                    self._lose(exc)
                return

    def _sent(self, size: int) -> None:
        with self._lock:
            self._out_bytes -= size
            resume = self._writing_paused and self._out_bytes <= BRIDGE_LOW
            if resume:
                self._writing_paused = False
        if resume:
            self._call(self._resumed)

    def _resumed(self) -> None:
        if not self._closed.is_set():
            self.on_resume_writing()

    def _thread_done(self) -> None:
        with self._lock:
            self._threads -= 1
            last = self._threads == 0
        if last:
            self._close_stream()

    def _close_stream(self) -> None:
        with self._lock:
            if self._stream_closed:
                return
            self._stream_closed = True
        with _flushing_lock:
            flushing = _flushing.get(self.loop)
            if flushing is not None:
                flushing.discard(self)
        self.stream.close()

    # -- loop side -------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self.bytes_written += len(data)
        if self._closed.is_set():
            return
        with self._lock:
            self._out_bytes += len(data)
            pause = not self._writing_paused and self._out_bytes > BRIDGE_HIGH
            if pause:
                self._writing_paused = True
        self._out.put(("data", data))
        if pause:
            self.on_pause_writing()

    def write_eof(self) -> None:
        self._out.put(("eof", b""))

    def close(self) -> None:
        """Flush what is queued (for CLOSE_LINGER at most), then close the stream."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._running.set()
        self._out.put(("close", b""))
        if self._threads == 0:
            self._close_stream()  # never started
        else:
            with _flushing_lock:
                _flushing.setdefault(self.loop, set()).add(self)
            self.loop.call_later(CLOSE_LINGER, self._close_stream)

    def reset(self) -> None:
        self._closed.set()
        self._running.set()
        self._out.put(_STOP)
        self._close_stream()  # a send blocked on a peer that does not read ends now

    def buffered(self) -> int:
        with self._lock:
            return self._out_bytes + self._in_flight

    def _pause_reading(self) -> None:
        self._running.clear()

    def _resume_reading(self) -> None:
        self._running.set()
