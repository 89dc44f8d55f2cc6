"""``udp://host:port``: UDP datagrams, one message stream per client.

Connectionless UDP gets just enough session to be testable: a client sends
``HELLO`` until the server answers ``ACK`` (so connecting to nothing fails
fast), and ``BYE`` on close. For each client the listener opens a socket
bound to its own address with SO_REUSEPORT and ``connect``-ed to the client;
Linux delivers that client's datagrams to it, so there is no demultiplexing
thread, and a dead peer shows as ECONNREFUSED (ICMP port unreachable) on the
next exchange. UDP stays unreliable: a message lost in the kernel is lost
(fragments of one message are all-or-nothing), and a silent peer is only
noticed by a timeout.
"""

from __future__ import annotations

import contextlib
import select
import socket
from typing import Any

from faultlab.errors import AddressError, ClosedResourceError, TransportTimeout
from faultlab.streams import Deadline, Listener, MessageStream
from faultlab.transports import register
from faultlab.transports._dgram import ACK, HEADER, HELLO, DatagramMessageStream, control
from faultlab.transports._sockets import translate_oserror, wait_fd
from faultlab.transports.base import Capabilities, ParsedAddress, Transport
from faultlab.transports.tcp import format_host_port

__all__ = ["UDPTransport"]

FRAGMENT = 65000
MAX_MESSAGE = 2 << 20
BUFFER = 8 << 20
HELLO_RETRY = 0.1


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def big_buffers(sock: socket.socket) -> None:
    """Room for a whole fragmented message; FORCE works as root beyond rmem_max."""
    for force, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):  # *BUFFORCE
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, BUFFER)


def _host_port(parsed: ParsedAddress) -> tuple[str, int]:
    if parsed.port is None or not parsed.host:
        raise AddressError(f"{parsed.uri!r} needs a host and a port, e.g. udp://127.0.0.1:0")
    return parsed.host, parsed.port


def datagram_stream(sock: socket.socket, on_close: object = None) -> DatagramMessageStream:
    """faultlab's message stream over a connected UDP socket (its own pairs and the proxy's
    sessions use the same fragment and message sizes)."""
    return DatagramMessageStream(
        sock,
        fragment_size=FRAGMENT,
        max_message_size=MAX_MESSAGE,
        reliable=False,
        on_close=on_close,
    )


class UDPListener(Listener[MessageStream]):
    """Accepts a client on its first ``HELLO`` and gives it a connected socket."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.address = address
        self._local = sock.getsockname()
        self._peers: set[Any] = set()
        self._closed = False

    def accept(self, *, timeout: float | None = None) -> MessageStream:
        deadline = self._deadline(timeout)
        while True:
            if self._closed:
                raise ClosedResourceError("accept: listener is closed")
            try:
                data, peer = self.sock.recvfrom(HEADER.size + FRAGMENT)
            except BlockingIOError:
                wait_fd(self.sock.fileno(), select.POLLIN, deadline, "accept")
                continue
            except OSError as exc:
                if self._closed:
                    raise ClosedResourceError("accept: listener is closed") from exc
                continue  # ICMP errors of earlier peers surface here; not ours to report
            if len(data) < HEADER.size or data[0] != HELLO or peer in self._peers:
                continue
            return self._open(peer)

    def _open(self, peer: Any) -> MessageStream:
        conn = socket.socket(self.sock.family, socket.SOCK_DGRAM)
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            big_buffers(conn)
            conn.bind(self._local)
            conn.connect(peer)
            conn.send(control(ACK))
        except OSError as exc:
            conn.close()
            raise translate_oserror(exc, "accept") from exc
        self._peers.add(peer)
        return datagram_stream(conn, on_close=lambda: self._peers.discard(peer))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            # wakes a thread polling in accept (closing the descriptor would not); Linux
            # does so for an unconnected UDP socket too, though it answers ENOTCONN
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            self.sock.close()


class UDPTransport(Transport):
    scheme = "udp"
    description = "UDP datagrams (fragmented to 65000 B, unreliable)"
    capabilities = Capabilities.messages(
        "AF_INET/AF_INET6 SOCK_DGRAM",
        max_message_size=MAX_MESSAGE,
        native_max=FRAGMENT,
        reliable=False,
        half_close=False,
    )
    platforms = ("linux",)

    def listen(self, address: str, **options: Any) -> Listener[MessageStream]:
        parsed = self._parse(address)
        host, port = _host_port(parsed)
        sock = socket.socket(_family(host), socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise AddressError(f"cannot listen on {address}: {exc}") from exc
        real_host, real_port = sock.getsockname()[:2]
        return UDPListener(sock, format_host_port("udp", real_host, real_port))

    def connect(
        self, address: str, *, timeout: float | None = None, **options: Any
    ) -> MessageStream:
        parsed = self._parse(address)
        host, port = _host_port(parsed)
        deadline = Deadline.after(MessageStream.default_timeout if timeout is None else timeout)
        sock = socket.socket(_family(host), socket.SOCK_DGRAM)
        try:
            big_buffers(sock)
            sock.connect((host, port))
            sock.setblocking(False)
            self._handshake(sock, deadline, address)
        except OSError as exc:
            sock.close()
            raise translate_oserror(exc, f"connect to {address}") from exc
        except BaseException:
            sock.close()
            raise
        return datagram_stream(sock)

    @staticmethod
    def _handshake(sock: socket.socket, deadline: Deadline, address: str) -> None:
        """Send HELLO until ACK; a refused port fails at once, silence times out."""
        while True:
            sock.send(control(HELLO))
            retry = Deadline.after(min(HELLO_RETRY, deadline.remaining()))
            try:
                wait_fd(sock.fileno(), select.POLLIN, retry, "connect")
            except TransportTimeout:
                if deadline.remaining_or_zero() <= 0:
                    raise TransportTimeout(f"no UDP server answered at {address}") from None
                continue
            data = sock.recv(HEADER.size + FRAGMENT)
            if len(data) >= HEADER.size and data[0] == ACK:
                return

    def example_address(self, tag: str) -> str:
        return "udp://127.0.0.1:0"


register(UDPTransport())
