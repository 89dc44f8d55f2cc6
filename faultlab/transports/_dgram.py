"""Messages over a connected datagram socket (UDP, AF_UNIX SEQPACKET).

Every datagram carries a 7-byte header ``!BHHH``: type, message id, fragment
index, fragment count. Messages larger than one datagram are fragmented and
reassembled; on an unreliable socket a lost fragment loses the whole message
(never a truncated one). ``BYE`` is a clean close, so the peer's ``receive``
raises :class:`EndOfStream` instead of waiting for a timeout.
"""

from __future__ import annotations

import select
import socket
import struct
from functools import partial
from socket import SO_RCVTIMEO, SO_SNDTIMEO

from faultlab.errors import EndOfStream, MessageTooLarge, RemoteProtocolError, TransportTimeout
from faultlab.streams import Deadline, MessageStream
from faultlab.transports._fdio import hangup_events
from faultlab.transports._sockets import _SockIO

__all__ = ["ACK", "BYE", "DATA", "HEADER", "HELLO", "DatagramMessageStream", "control"]

HEADER = struct.Struct("!BHHH")
DATA, HELLO, ACK, BYE = 0, 1, 2, 3


def control(kind: int) -> bytes:
    return HEADER.pack(kind, 0, 0, 0)


class DatagramMessageStream(MessageStream):
    """A message stream over one connected datagram socket."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        fragment_size: int,
        max_message_size: int,
        reliable: bool,
        on_close: object = None,
    ) -> None:
        self.sock = sock
        self.max_message_size = max_message_size
        self._fragment = fragment_size
        self._reliable = reliable
        self._io = _SockIO(sock, None, kernel_timeouts=True)
        self._next_id = 0
        self._buf = bytearray(fragment_size + HEADER.size + 64)
        self._view = memoryview(self._buf)
        self._on_close = on_close
        self._eof = False

    def send(self, message: bytes, *, timeout: float | None = None) -> None:
        size = len(message)
        if size > self.max_message_size:
            raise MessageTooLarge(
                f"message of {size} bytes exceeds this transport's maximum of "
                f"{self.max_message_size} bytes"
            )
        msg_id = self._next_id
        self._next_id = (msg_id + 1) & 0xFFFF
        frag = self._fragment
        io = self._io
        if size <= frag and timeout is None and io.armed_default(SO_SNDTIMEO, self.default_timeout):
            try:  # fast path: one datagram, the kernel bounds the wait
                self.sock.send(HEADER.pack(DATA, msg_id, 0, 1) + message)
                return
            except BlockingIOError:
                raise TransportTimeout(f"send timed out after {self.default_timeout:g} s") from None
            except OSError as exc:
                raise io.translate(exc, "send") from exc
        deadline = self._deadline(timeout)
        count = max(1, -(-size // frag))
        view = memoryview(message)
        for index in range(count):
            dgram = (
                HEADER.pack(DATA, msg_id, index, count) + view[index * frag : (index + 1) * frag]
            )
            io.run(partial(self.sock.send, dgram), select.POLLOUT, deadline, "send")

    def _recv_into(self, deadline: Deadline | None) -> int:
        """One datagram into the buffer; ``deadline=None`` uses the armed default."""
        if deadline is not None:
            return self._io.run(
                lambda: self.sock.recv_into(self._buf), select.POLLIN, deadline, "receive"
            )
        try:
            return self.sock.recv_into(self._buf)
        except BlockingIOError:
            raise TransportTimeout(f"receive timed out after {self.default_timeout:g} s") from None
        except OSError as exc:
            raise self._io.translate(exc, "receive") from exc

    def receive(self, *, timeout: float | None = None) -> bytes:
        if self._eof:
            raise EndOfStream("peer closed the stream")
        deadline: Deadline | None = None
        if timeout is not None or not self._io.armed_default(SO_RCVTIMEO, self.default_timeout):
            deadline = self._deadline(timeout)
        parts: list[bytes] = []
        current = -1
        view = self._view
        while True:
            n = self._recv_into(deadline)
            if n == 0 and self._reliable:  # SEQPACKET EOF; our datagrams are never empty
                self._eof = True
                raise EndOfStream("peer closed the stream")
            if n < HEADER.size:
                raise RemoteProtocolError(f"datagram of {n} bytes is shorter than the header")
            kind, msg_id, index, count = HEADER.unpack_from(self._buf)
            if kind == BYE:
                self._eof = True
                raise EndOfStream("peer closed the stream")
            if kind != DATA:
                continue
            if index == 0:
                parts, current = [], msg_id
            elif msg_id != current or index != len(parts):
                if self._reliable:
                    raise RemoteProtocolError("fragment out of sequence on a reliable socket")
                parts, current = [], -1  # lost fragment: drop the partial message
                continue
            parts.append(bytes(view[HEADER.size : n]))
            if len(parts) == count:
                return parts[0] if count == 1 else b"".join(parts)
            if len(parts) * self._fragment > self.max_message_size:
                raise RemoteProtocolError("peer sent a message over the maximum size")

    def peer_gone(self) -> bool:
        """True once a connected, reliable peer closed or died, seen without reading.

        Why: a proxy that stopped reading (backpressure) must still notice a peer
        that went away. A UDP peer has no connection to lose: always False there.
        """
        if not self._reliable:
            return False
        try:
            return bool(hangup_events(self.sock.fileno()))
        except (OSError, ValueError):
            return True

    def send_eof(self) -> None:
        self.close()

    def close(self) -> None:
        if self._io.closed:
            return
        try:
            if not self._reliable:
                self.sock.send(control(BYE))
        except OSError:
            pass
        self._io.close()
        if callable(self._on_close):
            self._on_close()
