"""``unixgram:///path`` or ``unixgram://@name``: AF_UNIX SOCK_SEQPACKET messages.

Why SEQPACKET rather than SOCK_DGRAM: it keeps message boundaries like a
datagram socket, but is connection-oriented, reliable and ordered, so a
listener accepts one stream per client, a closed or killed peer shows as EOF
at once, and nothing is lost silently. A message bigger than one packet
(``native_max`` = 64 KiB here, below the default socket buffer) is fragmented.
The socket file is 0600 unless ``?mode=`` asks otherwise, as for ``unix://``.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from faultlab._cleanup import runtime_dir
from faultlab.streams import Deadline, Listener, MessageStream
from faultlab.transports import register
from faultlab.transports._dgram import HEADER, DatagramMessageStream
from faultlab.transports._sockets import SocketListener
from faultlab.transports.base import Capabilities, Transport
from faultlab.transports.unix import bind_unix, connect_unix

__all__ = ["UnixSeqpacketTransport"]

FRAGMENT = 65536 - HEADER.size
MAX_MESSAGE = 16 << 20


def _stream(sock: socket.socket) -> DatagramMessageStream:
    try:  # room for a few whole fragments in flight; FORCE works as root
        sock.setsockopt(socket.SOL_SOCKET, 32, 1 << 20)  # SO_SNDBUFFORCE
    except OSError:
        pass
    return DatagramMessageStream(
        sock, fragment_size=FRAGMENT, max_message_size=MAX_MESSAGE, reliable=True
    )


class UnixSeqpacketTransport(Transport):
    scheme = "unixgram"
    description = "Unix domain socket, SOCK_SEQPACKET messages"
    capabilities = Capabilities.messages(
        "AF_UNIX SOCK_SEQPACKET",
        max_message_size=MAX_MESSAGE,
        native_max=FRAGMENT,
        half_close=False,
    )

    def listen(self, address: str, **options: Any) -> Listener[MessageStream]:
        parsed = self._parse(address)
        sock, owner = bind_unix(parsed, socket.SOCK_SEQPACKET, mode=options.get("mode"))
        return SocketListener(sock, address, lambda conn, _d: _stream(conn), owner=owner)

    def connect(
        self, address: str, *, timeout: float | None = None, **options: Any
    ) -> MessageStream:
        parsed = self._parse(address)
        t = MessageStream.default_timeout if timeout is None else timeout
        return _stream(connect_unix(parsed, socket.SOCK_SEQPACKET, Deadline.after(t)))

    def example_address(self, tag: str) -> str:
        return f"unixgram://{runtime_dir()}/{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"


register(UnixSeqpacketTransport())
