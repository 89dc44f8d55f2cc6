"""Shared machinery for socket-based transports (tcp, tls, unix, unixgram, udp).

Sockets stay non-blocking and every wait is a ``poll`` bounded by a
:class:`Deadline`, so one thread may send while another receives and no call
blocks past its timeout. The operation is tried first and only polled on
``EAGAIN``: a ready socket costs one syscall.
"""

from __future__ import annotations

import errno
import select
import socket
import ssl
import threading
from collections.abc import Callable
from typing import TypeVar

from faultlab._cleanup import Owner
from faultlab.errors import (
    BrokenResourceError,
    ClosedResourceError,
    EndOfStream,
    TransportError,
    TransportTimeout,
    UnsupportedOperation,
)
from faultlab.streams import ByteStream, Deadline, Listener, MessageStream

__all__ = ["SocketByteStream", "SocketListener", "translate_oserror", "wait_fd"]

T = TypeVar("T")

_BROKEN = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ENOTCONN, errno.ECONNREFUSED}


def wait_fd(fd: int, events: int, deadline: Deadline, what: str) -> int:
    """Poll one fd until ``events`` (or an error/hang-up) or the deadline."""
    poller = select.poll()
    poller.register(fd, events)
    while True:
        left = deadline.remaining_or_zero()
        ready = poller.poll(left * 1000.0)
        if ready:
            return ready[0][1]
        if left <= 0 or deadline.remaining_or_zero() <= 0:
            raise TransportTimeout(f"{what} timed out")


def translate_oserror(exc: OSError, what: str) -> TransportError:
    """Map an OS error to faultlab's typed errors."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return TransportTimeout(f"{what} timed out")
    if exc.errno in _BROKEN or isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return BrokenResourceError(f"{what}: peer is gone ({exc})")
    if exc.errno == errno.EBADF:
        return ClosedResourceError(f"{what}: stream is closed")
    return BrokenResourceError(f"{what} failed: {exc}")


class _SockIO:
    """Retry a non-blocking socket op on EAGAIN / SSL want-read/write until a deadline."""

    def __init__(self, sock: socket.socket, lock: threading.Lock | None) -> None:
        self.sock = sock
        self.lock = lock
        self.closed = False

    def run(self, op: Callable[[], T], want: int, deadline: Deadline, what: str) -> T:
        while True:
            if self.closed:
                raise ClosedResourceError(f"{what}: stream is closed")
            try:
                if self.lock is None:
                    return op()
                with self.lock:
                    return op()
            except ssl.SSLWantReadError:
                self._wait(select.POLLIN, deadline, what)
            except ssl.SSLWantWriteError:
                self._wait(select.POLLOUT, deadline, what)
            except BlockingIOError:
                self._wait(want, deadline, what)
            except OSError as exc:
                if self.closed:
                    raise ClosedResourceError(f"{what}: stream is closed") from exc
                raise translate_oserror(exc, what) from exc

    def _wait(self, events: int, deadline: Deadline, what: str) -> None:
        try:
            fd = self.sock.fileno()
        except OSError:
            fd = -1
        if fd < 0:
            raise ClosedResourceError(f"{what}: stream is closed")
        wait_fd(fd, events, deadline, what)


class SocketByteStream(ByteStream):
    """A connected stream socket (TCP, TLS over TCP, AF_UNIX SOCK_STREAM)."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        default_timeout: float | None = None,
        serialize: bool = False,
        half_close: bool = True,
    ) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._io = _SockIO(sock, threading.Lock() if serialize else None)
        self._half_close = half_close
        if default_timeout is not None:
            self.default_timeout = default_timeout

    def send(self, data: bytes, *, timeout: float | None = None) -> None:
        deadline = self._deadline(timeout)
        view = memoryview(data)
        while view:
            sent = self._io.run(lambda: self.sock.send(view), select.POLLOUT, deadline, "send")
            view = view[sent:]

    def receive(self, max_bytes: int = 65536, *, timeout: float | None = None) -> bytes:
        deadline = self._deadline(timeout)
        data = self._io.run(lambda: self.sock.recv(max_bytes), select.POLLIN, deadline, "receive")
        if not data:
            raise EndOfStream("peer closed the stream")
        return data

    def send_eof(self) -> None:
        if not self._half_close:
            raise UnsupportedOperation("this stream cannot half-close (TLS has no half-close)")
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise translate_oserror(exc, "send_eof") from exc

    def close(self) -> None:
        if not self._io.closed:
            self._io.closed = True
            self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()


S = TypeVar("S", ByteStream, MessageStream)


class SocketListener(Listener[S]):
    """A listening socket; ``wrap`` turns each accepted socket into a stream."""

    def __init__(
        self,
        sock: socket.socket,
        address: str,
        wrap: Callable[[socket.socket, Deadline], S],
        *,
        owner: Owner | None = None,
    ) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.address = address
        self._wrap = wrap
        self._owner = owner
        self._closed = False

    def accept(self, *, timeout: float | None = None) -> S:
        deadline = self._deadline(timeout)
        while True:
            if self._closed:
                raise ClosedResourceError("accept: listener is closed")
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                wait_fd(self.sock.fileno(), select.POLLIN, deadline, "accept")
                continue
            except OSError as exc:
                if self._closed:
                    raise ClosedResourceError("accept: listener is closed") from exc
                raise translate_oserror(exc, "accept") from exc
            try:
                return self._wrap(conn, deadline)
            except BaseException:
                conn.close()
                raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.sock.close()
        if self._owner is not None:
            self._owner.release()
