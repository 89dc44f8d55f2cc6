"""pytest-benchmark: faultlab's stream overhead beside the raw socket, same run.

Both sides live in this process on a socketpair, so the figure is faultlab's
per-call Python cost, not scheduling. Compare the two rows; never assert a time.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from faultlab.transports._sockets import SocketByteStream

PAYLOAD = b"x" * 64


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_raw_socketpair_send_recv(benchmark, sockets) -> None:  # type: ignore[no-untyped-def]
    a, b = sockets

    def step() -> bytes:
        a.sendall(PAYLOAD)
        return b.recv(65536)

    assert benchmark(step) == PAYLOAD


def test_faultlab_stream_send_receive(benchmark, sockets) -> None:  # type: ignore[no-untyped-def]
    a, b = (SocketByteStream(s) for s in sockets)

    def step() -> bytes:
        a.send(PAYLOAD)
        return b.receive(65536)

    assert benchmark(step) == PAYLOAD
