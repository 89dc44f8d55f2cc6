"""How many bytes an application has read from a TCP socket, from the kernel's counters.

Why: the spliced fast path (:meth:`SocketEndpoint.splice`) lets uvloop hand each read
straight to the sink transport's C ``write``, so no Python runs per read and the proxy
costs less than a bare Python forwarder. Nothing then counts the reads; the kernel does.
Linux's ``TCP_INFO`` has ``tcpi_bytes_received`` (since 4.1): the in-order bytes that
arrived, plus one for a FIN. Less what still waits unread (``FIONREAD``, which leaves the
FIN out), that is exactly what the application read.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
from typing import Any

__all__ = ["tcp_bytes_read"]

_BYTES_RECEIVED_OFFSET = 128
"""Offset of ``tcpi_bytes_received`` (u64) in ``struct tcp_info``."""
_FIN_PENDING = frozenset({8, 9, 11})
"""TCP states the socket is in once the peer's FIN arrived (CLOSE_WAIT, LAST_ACK, CLOSING).

Not enough alone: once both sides sent their FIN the socket shows CLOSE, as after a
reset. So a spliced source is unspliced before the proxy sends its own FIN (then CLOSE
means a reset), and at EOF the caller says the FIN came."""
_INT = struct.Struct("i")


def tcp_bytes_read(sock: Any, *, eof: bool = False) -> int | None:
    """Bytes read so far from the TCP socket ``sock`` (a socket or uvloop's pseudo-socket),
    or None where the kernel does not say (an old kernel, a closed socket). ``eof``: the
    application read the peer's FIN."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        unread = _INT.unpack(fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    except (OSError, ValueError):
        return None
    if len(info) < _BYTES_RECEIVED_OFFSET + 8:
        return None
    (received,) = struct.unpack_from("Q", info, _BYTES_RECEIVED_OFFSET)
    fin = 1 if eof or info[0] in _FIN_PENDING else 0
    return int(received - unread - fin)
