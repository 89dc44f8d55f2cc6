"""Sockets for the attacks: loopback-only targets, timeouts on every call, nothing leaked.

Every attack opens its sockets through a :class:`Sockets` set, which closes them all on
exit (also on an exception or Ctrl-C), and reads the server's answer with
:func:`read_answer`, which names what happened in one word the journal and the oracle share.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import select
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

from faultlab.errors import FaultlabError

__all__ = [
    "CLOSE",
    "HELD",
    "RESET",
    "TIMEOUT",
    "Endpoint",
    "HostileError",
    "NotLoopback",
    "Sockets",
    "parse_target",
    "read_answer",
]

CLOSE = "close"
"""The server closed the connection (EOF) without answering."""
RESET = "reset"
"""The connection was reset (RST), or refused."""
TIMEOUT = "timeout"
"""Nothing came back within the time allowed: neither an answer nor a close."""
HELD = "held"
"""The server still held the connection open when the attack ended (slowloris, half-open)."""


class HostileError(FaultlabError):
    """The hostile suite was asked for something it will not do (a bad target or setting)."""


class NotLoopback(HostileError):
    """The target is not on a loopback address and ``allow_remote`` was not given."""


@dataclass(frozen=True)
class Endpoint:
    """Where the attacks go: a TCP host and port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_target(target: str, *, allow_remote: bool = False) -> Endpoint:
    """``tcp://h:p``, ``http://h:p`` or ``h:p`` as an :class:`Endpoint`; refuses a host that
    is not a loopback address unless ``allow_remote`` (these attacks are not for other
    people's servers)."""
    text = target.strip()
    if "://" not in text:
        text = "tcp://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("tcp", "http"):
        raise HostileError(f"hostile target {target!r}: only tcp:// or http:// (TCP) targets")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or not port:
        raise HostileError(f"hostile target {target!r} needs a host and a port")
    host = parts.hostname
    if not allow_remote and not _loopback(host):
        raise NotLoopback(
            f"hostile target {target!r} is not a loopback address; the attacks run against "
            "your own server on this machine (pass allow_remote=True if you mean it)"
        )
    return Endpoint(host, port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Sockets:
    """The sockets an attack opened; all closed when the ``with`` block ends."""

    def __init__(self, endpoint: Endpoint, *, connect_timeout: float = 1.0) -> None:
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.open: list[socket.socket] = []

    def connect(self, *, rcvbuf: int | None = None) -> socket.socket:
        """A connected socket (``OSError`` if the server refused or timed out)."""
        family = socket.AF_INET6 if ":" in self.endpoint.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        self.open.append(sock)
        if rcvbuf is not None:  # before connect, so the window advertised is small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(self.connect_timeout)
        sock.connect((self.endpoint.host, self.endpoint.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def discard(self, sock: socket.socket) -> None:
        with contextlib.suppress(ValueError):
            self.open.remove(sock)
        sock.close()

    def close_all(self) -> None:
        for sock in self.open:
            sock.close()
        self.open.clear()

    def __enter__(self) -> Sockets:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close_all()


def send_all(sock: socket.socket, data: bytes, timeout: float) -> str | None:
    """Send ``data``; ``None`` when sent, else what stopped it (reset, close, timeout)."""
    sock.settimeout(timeout)
    try:
        sock.sendall(data)
    except TimeoutError:
        return TIMEOUT
    except (BrokenPipeError, ConnectionResetError):
        return RESET
    except OSError as exc:
        return RESET if exc.errno in (errno.EPIPE, errno.ECONNRESET) else CLOSE
    return None


def peer_gone(sock: socket.socket) -> str | None:
    """Without blocking: ``close``/``reset``/``"answered"`` if the server closed, reset or
    wrote something, ``None`` if the connection is quiet."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return RESET
    if not readable:
        return None
    try:
        data = sock.recv(1, socket.MSG_PEEK)
    except ConnectionResetError:
        return RESET
    except OSError:
        return RESET
    return "answered" if data else CLOSE


def read_answer(sock: socket.socket, timeout: float, *, http: bool, limit: int = 65536) -> str:
    """What the server answered, in one word: ``http_<status>`` (HTTP), ``answered`` (any
    bytes on a non-HTTP stream), ``close``, ``reset`` or ``timeout``."""
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            break
        except ConnectionResetError:
            return _classify(data, http) or RESET
        except OSError:
            return _classify(data, http) or RESET
        if not chunk:
            return _classify(data, http) or CLOSE
        data += chunk
        found = _classify(data, http)
        if found is not None and (not http or b"\r\n" in data):
            return found
    return _classify(data, http) or TIMEOUT


def _classify(data: bytes, http: bool) -> str | None:
    if not data:
        return None
    if not http:
        return "answered"
    line = data.split(b"\r\n", 1)[0]
    parts = line.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return f"http_{int(parts[1])}"
    if b"\r\n" in data or len(data) > 64:
        return "answered"  # something that is not an HTTP status line (an h2 GOAWAY, say)
    return None
