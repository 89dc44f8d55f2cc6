"""Real peers for toxic tests: threaded TCP echo, source and sink servers, and small clients.

Every server binds 127.0.0.1:0, serves each connection in a daemon thread and
closes its listener and every accepted socket on ``close()``, so a failing
test leaves nothing behind.
"""

from __future__ import annotations

import array
import contextlib
import functools
import socket
import struct
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Self

__all__ = [
    "EchoServer",
    "SinkServer",
    "SourceServer",
    "TcpServer",
    "connect",
    "numbered",
    "recv_all",
    "recv_exactly",
    "settle",
    "wait_for",
]

Handler = Callable[[socket.socket], None]


class TcpServer(ABC):
    """Accepts on 127.0.0.1:0 and runs ``handle(conn)`` per connection in a thread."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.upstream = f"127.0.0.1:{self.port}"
        self.accepted = 0
        self.errors: list[BaseException] = []
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @abstractmethod
    def handle(self, conn: socket.socket) -> None:
        """Serve one accepted connection (each server kind says how)."""

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(30)
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError as exc:
            self.errors.append(exc)
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(5)
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EchoServer(TcpServer):
    """Echoes every byte; on EOF it echoes nothing more and closes."""

    def handle(self, conn: socket.socket) -> None:
        while data := conn.recv(65536):
            conn.sendall(data)


class SourceServer(TcpServer):
    """Reads an 8-byte big-endian count, sends that many :func:`numbered` bytes, then closes."""

    def handle(self, conn: socket.socket) -> None:
        (count,) = struct.unpack(">Q", recv_exactly(conn, 8))
        conn.sendall(numbered(count))


class SinkServer(TcpServer):
    """Keeps every byte received per connection; ``eof_at`` holds when each saw EOF."""

    def __init__(self) -> None:
        self.received: list[bytearray] = []
        self.eof_at: list[float] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        buf = bytearray()
        self.received.append(buf)
        try:
            while data := conn.recv(65536):
                buf += data
        finally:
            self.eof_at.append(time.monotonic())


@functools.lru_cache(maxsize=8)
def numbered(n: int) -> bytes:
    """``n`` bytes of consecutive 4-byte big-endian counters: loss or reordering shows."""
    words = array.array("I", range((n + 3) // 4))
    if sys.byteorder == "little":
        words.byteswap()
    return words.tobytes()[:n]


def connect(address: str, timeout: float = 10.0) -> socket.socket:
    """A TCP client to a ``host:port`` or ``tcp://host:port`` address."""
    host, port = address.split("://", 1)[-1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        size = sock.recv_into(view[got:], min(n - got, 1 << 20))
        if not size:
            raise EOFError(f"EOF after {got} of {n} bytes")
        got += size
    return bytes(buf)


def recv_all(sock: socket.socket) -> bytes:
    """Everything until EOF."""
    buf = bytearray()
    while data := sock.recv(65536):
        buf += data
    return bytes(buf)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.005)


def settle(engine: Any, timeout: float = 5.0) -> None:
    """Wait (bounded) until no proxy of ``engine`` is connecting or holding a connection:
    every handshake, refusal and close has been journaled."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        busy = engine.run(
            lambda: any(p.connections or p._accepting for p in engine.proxies.values())
        )
        if not busy:
            return
        time.sleep(0.02)
