"""``tcp://host:port``: TCP over IPv4 or IPv6 (``tcp://[::1]:0``); port 0 is ephemeral.

Nagle is off (TCP_NODELAY) on both ends: with it on, a request written in two
pieces waits for the delayed ACK, about 40 ms per call on Linux.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from faultlab.errors import AddressError
from faultlab.streams import ByteStream, Deadline, Listener
from faultlab.transports import register
from faultlab.transports._sockets import (
    SocketByteStream,
    SocketListener,
    translate_oserror,
    wait_fd,
)
from faultlab.transports.base import Capabilities, ParsedAddress, Transport

__all__ = ["TCPTransport", "format_host_port", "listen_tcp", "open_tcp"]


def format_host_port(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _host_port(parsed: ParsedAddress) -> tuple[str, int]:
    if parsed.port is None or not parsed.host:
        raise AddressError(f"{parsed.uri!r} needs a host and a port, e.g. tcp://127.0.0.1:0")
    return parsed.host, parsed.port


def listen_tcp(parsed: ParsedAddress, backlog: int = 512) -> socket.socket:
    host, port = _host_port(parsed)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise AddressError(f"cannot listen on {parsed.uri}: {exc}") from exc
    return sock


def open_tcp(parsed: ParsedAddress, deadline: Deadline) -> socket.socket:
    """Connect a non-blocking TCP socket within the deadline, Nagle off."""
    host, port = _host_port(parsed)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise AddressError(f"cannot resolve {parsed.uri}: {exc}") from exc
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(sockaddr)
        if err not in (0, errno.EINPROGRESS):
            raise OSError(err, f"connect to {parsed.uri} failed: {errno.errorcode.get(err)}")
        if err:
            import select

            wait_fd(sock.fileno(), select.POLLOUT, deadline, f"connect to {parsed.uri}")
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, f"connect to {parsed.uri} failed: {errno.errorcode.get(err)}")
    except OSError as exc:
        sock.close()
        raise translate_oserror(exc, f"connect to {parsed.uri}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


class TCPTransport(Transport):
    scheme = "tcp"
    description = "TCP (IPv4/IPv6), TCP_NODELAY"
    capabilities = Capabilities.byte_stream("AF_INET/AF_INET6 SOCK_STREAM")
    platforms = ("linux", "darwin", "win32")

    def listen(self, address: str, **options: Any) -> Listener[ByteStream]:
        parsed = self._parse(address)
        sock = listen_tcp(parsed)
        host, port = sock.getsockname()[:2]

        def wrap(conn: socket.socket, deadline: Deadline) -> ByteStream:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return SocketByteStream(conn)

        return SocketListener(sock, format_host_port("tcp", host, port), wrap)

    def connect(self, address: str, *, timeout: float | None = None, **options: Any) -> ByteStream:
        parsed = self._parse(address)
        stream_timeout = SocketByteStream.default_timeout
        sock = open_tcp(parsed, Deadline.after(stream_timeout if timeout is None else timeout))
        return SocketByteStream(sock)

    def example_address(self, tag: str) -> str:
        return "tcp://127.0.0.1:0"


register(TCPTransport())
