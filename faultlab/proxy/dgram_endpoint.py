"""The two ends of a plain UDP flow: datagrams in and out, one frame each.

A flow is one client address of a ``udp://`` proxy (see :mod:`faultlab.proxy.udprelay`).
Its client end answers through the proxy's listening socket (``sendto(client)``); its
server end is a socket of its own, connected to the upstream (NAT-style), so the server
sees one source port per client. Both are :class:`~faultlab.proxy.endpoints.Endpoint`\\ s,
so the link and its toxics run unchanged, every datagram being one frame.

UDP has no backpressure: when the link asks an end to stop reading (its queue or the
other end's buffer is full), the end keeps what arrives in a bounded queue, and drops
(and counts) what does not fit, as a full kernel buffer would.
"""

from __future__ import annotations

import asyncio
import socket
from abc import abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faultlab.proxy.endpoints import Endpoint

__all__ = [
    "ClientDatagramEndpoint",
    "DatagramEndpoint",
    "QueueBound",
    "UpstreamDatagramEndpoint",
    "max_payload",
]

MAX_PAYLOAD_V4 = 65507
"""The largest UDP payload over IPv4 (65535 less the IP and UDP headers)."""
MAX_PAYLOAD_V6 = 65527


def max_payload(family: int) -> int:
    """The largest datagram a socket of ``family`` can send."""
    return MAX_PAYLOAD_V6 if family == socket.AF_INET6 else MAX_PAYLOAD_V4


@dataclass(frozen=True)
class QueueBound:
    """Most an end holds while it may not deliver (not wired yet, or held by the link)."""

    datagrams: int
    bytes: int


class DatagramEndpoint(Endpoint):
    """Shared by both ends: the bounded queue, the counters, no half-close.

    ``on_activity`` is called for every datagram that arrives (the flow's idle clock);
    ``on_overflow`` once when the queue starts dropping, again only after it drained.
    """

    side = ""

    def __init__(
        self,
        bound: QueueBound,
        family: int,
        *,
        on_activity: Callable[[], None],
        on_overflow: Callable[[DatagramEndpoint], None],
    ) -> None:
        self.bound = bound
        self.family = family
        self.on_activity = on_activity
        self.on_overflow = on_overflow
        self.closed = False
        self.received = 0
        """Datagrams that arrived here."""
        self.dropped = 0
        """Datagrams dropped because the queue was full."""
        self.oversize = 0
        """Datagrams the link handed here that no datagram can carry (dropped)."""
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._started = False
        self._overflowing = False

    # from the socket
    def arrived(self, data: bytes) -> None:
        """One datagram arrived: to the link now, or to the bounded queue."""
        if self.closed:
            return
        self.received += 1
        self.on_activity()
        if self._started and not self.held and not self._pending:
            self.on_data(data)
            return
        if (
            len(self._pending) >= self.bound.datagrams
            or self._pending_bytes + len(data) > self.bound.bytes
        ):
            self.dropped += 1
            if not self._overflowing:
                self._overflowing = True
                self.on_overflow(self)
            return
        self._pending.append(data)
        self._pending_bytes += len(data)

    def _flush(self) -> None:
        while self._pending and self._started and not self.held and not self.closed:
            data = self._pending.popleft()
            self._pending_bytes -= len(data)
            self.on_data(data)
        if not self._pending:
            self._overflowing = False

    # Endpoint
    def start(self) -> None:
        self._started = True
        self._flush()

    def _pause_reading(self) -> None:
        """Nothing to pause in the kernel (the client end shares the listening socket):
        :meth:`arrived` queues while held."""

    def _resume_reading(self) -> None:
        self._flush()

    def write(self, data: bytes) -> None:
        self.bytes_written += len(data)
        if self.closed:
            return
        if len(data) > max_payload(self.family):
            self.oversize += 1  # e.g. a stream upstream's read: no datagram carries it
            return
        self._send(data)

    def write_eof(self) -> None:
        """A datagram socket has no half-close: the flow ends by its idle timeout."""

    def reset(self) -> None:
        self.close()

    def buffered(self) -> int:
        return self._pending_bytes + self._write_buffer()

    def _drop_pending(self) -> None:
        self._pending.clear()
        self._pending_bytes = 0

    @abstractmethod
    def _send(self, data: bytes) -> None:
        """Send one datagram to this end's peer (each end has its own socket)."""

    def _send_empty(self, sock: socket.socket | None, addr: Any = None) -> None:
        """An empty datagram is legal UDP, but asyncio's ``sendto(b"")`` sends nothing
        (uvloop's too): send it on the socket itself."""
        if sock is None or sock.fileno() < 0:
            return
        try:
            sock.send(b"") if addr is None else sock.sendto(b"", addr)
        except OSError:
            pass  # a full buffer or an ICMP error: lost, as UDP may lose it

    def _write_buffer(self) -> int:
        return 0


class ClientDatagramEndpoint(DatagramEndpoint):
    """The client's end: its datagrams come from the listening socket, replies go out of it.

    ``listening`` is the relay's transport, shared by every flow, so this end never
    pauses it; ``on_close`` lets the relay forget the flow.
    """

    side = "client"

    def __init__(
        self,
        listening: asyncio.DatagramTransport,
        sock: socket.socket,
        addr: Any,
        bound: QueueBound,
        family: int,
        *,
        on_activity: Callable[[], None],
        on_overflow: Callable[[DatagramEndpoint], None],
        on_close: Callable[[ClientDatagramEndpoint], None],
    ) -> None:
        super().__init__(bound, family, on_activity=on_activity, on_overflow=on_overflow)
        self.listening = listening
        self.sock = sock
        self.addr = addr
        self.description = str(addr)
        self._on_close = on_close

    @property
    def started(self) -> bool:
        return self._started

    def _send(self, data: bytes) -> None:
        if self.listening.is_closing():
            return
        if data:
            self.listening.sendto(data, self.addr)
        else:
            self._send_empty(self.sock, self.addr)

    def listening_paused(self) -> None:
        """The listening socket's send buffer is full (every flow's replies wait)."""
        if self._started and not self.closed:
            self.on_pause_writing()

    def listening_resumed(self) -> None:
        if self._started and not self.closed:
            self.on_resume_writing()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._drop_pending()
        self._on_close(self)


class UpstreamDatagramEndpoint(asyncio.DatagramProtocol, DatagramEndpoint):
    """The server's end: a socket of this flow's own, connected to the upstream.

    A refused datagram (ICMP port unreachable: nothing listens upstream) ends the
    flow as a lost peer; the client's next datagram opens a new one.
    """

    side = "server"

    def __init__(
        self,
        bound: QueueBound,
        family: int,
        *,
        on_activity: Callable[[], None],
        on_overflow: Callable[[DatagramEndpoint], None],
    ) -> None:
        DatagramEndpoint.__init__(
            self, bound, family, on_activity=on_activity, on_overflow=on_overflow
        )
        self.transport: asyncio.DatagramTransport | None = None
        self.sock: socket.socket | None = None
        """The connected socket (the transport owns it; kept for empty datagrams)."""
        self._lost_exc: BaseException | None = None
        self._lost = False

    @property
    def refused(self) -> bool:
        """The upstream refused a datagram (nothing listened there)."""
        return isinstance(self._lost_exc, ConnectionRefusedError)

    # asyncio.DatagramProtocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        local = transport.get_extra_info("sockname")
        self.description = str(local) if local else "udp"

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.arrived(data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefusedError):
            self._peer_lost(exc)
        # Other errors (ENOBUFS...) lose one datagram, as UDP may: the flow goes on.

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self._peer_lost(exc)

    def pause_writing(self) -> None:
        if self._started and not self.closed:
            self.on_pause_writing()

    def resume_writing(self) -> None:
        if self._started and not self.closed:
            self.on_resume_writing()

    def _peer_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._lost_exc = exc
        if self._started and not self.closed:
            self.on_lost(exc)

    # Endpoint
    def start(self) -> None:
        DatagramEndpoint.start(self)
        if self._lost and not self.closed:
            self.on_lost(self._lost_exc)

    def _send(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if data:
            self.transport.sendto(data)
        else:
            self._send_empty(self.sock)

    def _write_buffer(self) -> int:
        if self.transport is None or self.transport.is_closing():
            return 0
        size: int = self.transport.get_write_buffer_size()  # type: ignore[attr-defined]
        return size

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._drop_pending()
        if self.transport is not None:
            self.transport.close()
