"""The spliced fast path: with nothing in the way, uvloop hands a TCP read straight to the
other side's C write (no Python per read), and the kernel's counters keep every byte count
exact. Real sockets, a real proxy; each test checks the bytes and the journal's counts
against what the peers sent, through the splice and across its ends (a toxic added, EOF
either way, a reset, a half-close)."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from typing import Any

import pytest

from faultlab.proxy.engine import ProxyEngine, ProxyHandle
from faultlab.proxy.tcpcount import tcp_bytes_read
from tests.integration.toxic_helpers import (
    EchoServer,
    TcpServer,
    connect,
    numbered,
    recv_all,
    recv_exactly,
    wait_for,
)

pytest.importorskip("uvloop", reason="the splice needs uvloop's transports (C-level write)")


def link_state(engine: ProxyEngine, proxy: str) -> list[dict[str, Any]]:
    """Per open connection: each link's splice state and live byte counts."""

    def read() -> list[dict[str, Any]]:
        rows = []
        for conn in engine.get(proxy).connections:
            rows.append(
                {
                    direction: (link.source.spliced, link.bytes_in, link.bytes_out)
                    for direction, link in conn.links.items()
                }
            )
        return rows

    return engine.run(read)


def closed_counts(proxy: ProxyHandle) -> list[tuple[int, int, int, int]]:
    return [
        (e["bytes_from_client"], e["bytes_to_server"], e["bytes_from_server"], e["bytes_to_client"])
        for e in proxy.events(kinds=["connection_closed"])
    ]


def exchange(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload


def test_counts_stay_exact_through_the_splice_and_its_end_at_eof() -> None:
    rng = random.Random(7)
    with EchoServer() as echo, ProxyEngine(seed=1) as engine:
        proxy = engine.create("p", upstream=echo.upstream)
        expected = []
        for _ in range(6):
            choices = [1, 7, 64, 1500, 65_536, 300_001]
            sizes = [rng.choice(choices) for _ in range(rng.randint(1, 6))]
            with connect(proxy.listen) as sock:
                for size in sizes:
                    exchange(sock, rng.randbytes(size))
                rows = link_state(engine, "p")
                assert len(rows) == 1
                assert rows[0]["upstream"][0], "with no toxic the link is spliced"
                assert rows[0]["downstream"][0], "with no toxic the link is spliced"
                assert rows[0]["upstream"][1:] == (sum(sizes), sum(sizes)), "live counts exact"
                sock.shutdown(socket.SHUT_WR)
                assert recv_all(sock) == b""
            expected.append((sum(sizes),) * 4)
        wait_for(lambda: len(closed_counts(proxy)) == len(expected), what="every close journaled")
        assert closed_counts(proxy) == expected


class CloseFirstServer(TcpServer):
    """Reads a 4-byte count, sends that many numbered bytes and closes first."""

    def handle(self, conn: socket.socket) -> None:
        (count,) = struct.unpack(">I", recv_exactly(conn, 4))
        conn.sendall(numbered(count))


def test_the_server_closing_first_counts_exactly_and_the_client_sees_eof() -> None:
    with CloseFirstServer() as server, ProxyEngine(seed=2) as engine:
        proxy = engine.create("p", upstream=server.upstream)
        for count in (0, 1, 70_000, 1_000_003):
            with connect(proxy.listen) as sock:
                sock.sendall(struct.pack(">I", count))
                assert recv_all(sock) == numbered(count)
        wait_for(lambda: len(closed_counts(proxy)) == 4, what="every close journaled")
        assert sorted(closed_counts(proxy)) == sorted(
            (4, 4, count, count) for count in (0, 1, 70_000, 1_000_003)
        )


def test_a_half_closed_client_still_gets_everything_counted() -> None:
    """The client's FIN goes on to the server while the server still sends: the proxy sends
    that FIN only after the other direction's splice ended (its counts stay exact)."""

    class SlowReplyServer(TcpServer):
        def handle(self, conn: socket.socket) -> None:
            got = recv_all(conn)  # until the client's half-close
            for _ in range(5):
                conn.sendall(got)
                time.sleep(0.01)

    with SlowReplyServer() as server, ProxyEngine(seed=3) as engine:
        proxy = engine.create("p", upstream=server.upstream)
        with connect(proxy.listen) as sock:
            sock.sendall(b"abc" * 1000)
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"abc" * 5000
        wait_for(lambda: len(closed_counts(proxy)) == 1, what="the close journaled")
        assert closed_counts(proxy) == [(3000, 3000, 15_000, 15_000)]


def test_a_toxic_ends_the_splice_and_its_removal_brings_it_back() -> None:
    with EchoServer() as echo, ProxyEngine(seed=4) as engine:
        proxy = engine.create("p", upstream=echo.upstream)
        with connect(proxy.listen) as sock:
            exchange(sock, b"a" * 10_000)
            assert link_state(engine, "p")[0]["upstream"][0]
            proxy.add_toxic("latency", name="slow", stream="upstream", latency=30)
            assert not link_state(engine, "p")[0]["upstream"][0], "a working toxic unsplices"
            started = time.monotonic()
            exchange(sock, b"b" * 20_000)
            assert time.monotonic() - started >= 0.03, "the toxic acts once the splice ended"
            proxy.remove_toxic("slow")
            exchange(sock, b"c" * 30_000)  # the first read goes through feed, then splices
            exchange(sock, b"d" * 40_000)
            row = link_state(engine, "p")[0]
            assert row["upstream"] == (True, 100_000, 100_000)
            assert row["downstream"] == (True, 100_000, 100_000)
        wait_for(lambda: len(closed_counts(proxy)) == 1, what="the close journaled")
        assert closed_counts(proxy) == [(100_000,) * 4]


def test_a_zero_latency_toxic_keeps_the_splice() -> None:
    with EchoServer() as echo, ProxyEngine(seed=5) as engine:
        proxy = engine.create("p", upstream=echo.upstream)
        proxy.add_toxic("latency", latency=0)
        with connect(proxy.listen) as sock:
            exchange(sock, b"x" * 5_000)
            exchange(sock, b"y" * 5_000)
            row = link_state(engine, "p")[0]
            assert row["upstream"] == (True, 10_000, 10_000)


def test_a_client_reset_counts_what_was_read() -> None:
    with EchoServer() as echo, ProxyEngine(seed=6) as engine:
        proxy = engine.create("p", upstream=echo.upstream)
        sock = connect(proxy.listen)
        exchange(sock, b"r" * 12_345)
        exchange(sock, b"s" * 5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        wait_for(lambda: len(closed_counts(proxy)) == 1, what="the reset journaled")
        assert closed_counts(proxy) == [(12_350,) * 4]


def test_a_server_reset_reaches_the_client_and_counts_stay_exact() -> None:
    class ResetAfterReply(TcpServer):
        def handle(self, conn: socket.socket) -> None:
            data = recv_exactly(conn, 1000)
            conn.sendall(data * 3)
            time.sleep(0.05)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with ResetAfterReply() as server, ProxyEngine(seed=7) as engine:
        proxy = engine.create("p", upstream=server.upstream)
        with connect(proxy.listen) as sock:
            sock.sendall(b"q" * 1000)
            assert recv_exactly(sock, 3000) == b"q" * 3000
            with pytest.raises(ConnectionResetError):
                recv_all(sock)
        wait_for(lambda: len(closed_counts(proxy)) == 1, what="the reset journaled")
        assert closed_counts(proxy) == [(1000, 1000, 3000, 3000)]


def test_backpressure_holds_while_spliced() -> None:
    """A server that stops reading: the client is pushed back, the proxy holds a bounded
    amount, and once the server reads again every byte arrives in order."""
    release = threading.Event()
    received = bytearray()

    class StallingSink(TcpServer):
        def handle(self, conn: socket.socket) -> None:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            release.wait(30)
            while data := conn.recv(65536):
                received.extend(data)

    total = 64 << 20
    with StallingSink() as server, ProxyEngine(seed=8) as engine:
        proxy = engine.create("p", upstream=server.upstream)
        sock = connect(proxy.listen)
        sock.setblocking(False)
        payload = numbered(total)
        sent = 0
        deadline = time.monotonic() + 5
        while sent < total and time.monotonic() < deadline:
            try:
                sent += sock.send(payload[sent : sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)
        assert sent < total, "the client was never pushed back"
        held = engine.run(lambda: sum(engine.get("p").held_bytes().values()))
        assert held < 8 << 20, f"the proxy held {held} bytes for a stalled server"
        release.set()
        sock.setblocking(True)
        sock.sendall(payload[sent:])
        sock.shutdown(socket.SHUT_WR)
        wait_for(lambda: len(received) == total, timeout=30, what="every byte at the server")
        sock.close()
        assert received == payload
        wait_for(lambda: len(closed_counts(proxy)) == 1, what="the close journaled")
        assert closed_counts(proxy) == [(total, total, 0, 0)]


def test_unix_sockets_are_not_spliced_and_count_in_python(tmp_path: Any) -> None:
    path = str(tmp_path / "echo.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with ProxyEngine(seed=9) as engine:
            proxy = engine.create(
                "u", listen=f"unix://{tmp_path / 'proxy.sock'}", upstream=f"unix://{path}"
            )
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.settimeout(10)
            client.connect(str(tmp_path / "proxy.sock"))
            with client:
                exchange(client, b"u" * 70_000)
                exchange(client, b"v" * 3)
                row = link_state(engine, "u")[0]
                assert row["upstream"] == (False, 70_003, 70_003)
            wait_for(lambda: len(closed_counts(proxy)) == 1, what="the close journaled")
            assert closed_counts(proxy) == [(70_003,) * 4]
    finally:
        server.close()
        thread.join(5)


def test_tcp_bytes_read_follows_the_kernel() -> None:
    """The kernel arithmetic itself: unread bytes and a pending FIN are left out."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            assert tcp_bytes_read(server) == 0
            client.sendall(b"z" * 1000)
            wait_for(lambda: tcp_bytes_read(server) == 0 and _unread(server) == 1000)
            server.recv(600)
            assert tcp_bytes_read(server) == 600
            client.shutdown(socket.SHUT_WR)  # FIN pending behind 400 unread bytes
            wait_for(lambda: _state(server) == 8, what="CLOSE_WAIT")
            assert tcp_bytes_read(server) == 600
            assert recv_exactly(server, 400) == b"z" * 400
            assert server.recv(10) == b""
            assert tcp_bytes_read(server, eof=True) == 1000
    closed = socket.socket()
    closed.close()
    assert tcp_bytes_read(closed) is None


def _unread(sock: socket.socket) -> int:
    import fcntl
    import termios

    return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0])


def _state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
