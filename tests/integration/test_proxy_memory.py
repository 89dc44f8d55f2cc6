"""A closed connection's memory is freed at once by reference counting, not left in reference
cycles for the next full garbage collection (which, with thousands of connections, keeps
tens of MB alive and fragments the heap). Real sockets through a real proxy."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator

import pytest

from faultlab.proxy.engine import ProxyEngine
from faultlab.proxy.link import Link
from faultlab.proxy.proxy import Connection
from tests.integration.toxic_helpers import EchoServer, connect, recv_exactly, wait_for


@pytest.fixture
def no_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def live(kind: type) -> int:
    return sum(1 for obj in gc.get_objects() if isinstance(obj, kind))


@pytest.mark.parametrize("toxic", [None, "latency"])
def test_closed_connections_leave_no_cycles(no_gc: None, toxic: str | None) -> None:
    with EchoServer() as echo, ProxyEngine(seed=3) as engine:
        proxy = engine.create("p", upstream=echo.upstream)
        if toxic is not None:
            proxy.add_toxic(toxic, stream="downstream", latency=1)
        for _ in range(40):
            with connect(proxy.listen) as sock:
                sock.sendall(b"ping")
                assert recv_exactly(sock, 4) == b"ping"
        wait_for(lambda: proxy.connections() == 0, what="every connection closed")
        time.sleep(0.1)  # late transport callbacks of the last connections
        assert live(Connection) == 0, "closed connections are kept alive by reference cycles"
        assert live(Link) == 0


def test_the_fast_path_writes_through_uvloop_only() -> None:
    """asyncio's transport logs instead of raising on a write after close, so the fast
    path keeps the checked write() there; uvloop's own write is used directly."""
    import asyncio
    import socket

    from faultlab.proxy.endpoints import SocketEndpoint

    async def writer_of_connected_endpoint() -> object:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                _, endpoint = await loop.create_connection(SocketEndpoint, sock=sock.dup())
                try:
                    return endpoint.direct_writer()
                finally:
                    endpoint.close()
        finally:
            server.close()

    assert asyncio.run(writer_of_connected_endpoint()) is None
    import uvloop

    assert uvloop.run(writer_of_connected_endpoint()) is not None
