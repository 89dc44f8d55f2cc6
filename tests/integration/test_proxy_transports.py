"""The fault proxy relays between every pair of transports it supports, faithfully.

Each same-scheme pair (and one mixed pair) is checked with the transport
conformance helpers through the proxy: round trips from 0 B to 1 MiB,
ordering, EOF and close in both directions, half-close where the transport
has it, and the death of the upstream peer process. TLS is passed through
as bytes: a TLS client talks to a TLS server through the proxy, and faults
act below TLS. Only one-sided time bounds are asserted.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from faultlab import transports
from faultlab.errors import BrokenResourceError, EndOfStream, FaultlabError, TransportError
from faultlab.proxy import ProxyEngine, ProxyHandle
from faultlab.streams import ByteStream, Listener, MessageStream, Stream, receive_exactly
from faultlab.transports import conformance as cf
from tests.conftest import Peer, start_peer

# (id, scheme): unix is tried with a path and with a Linux abstract name.
PAIRS = [
    ("tcp", "tcp"),
    ("unix", "unix"),
    ("unix-abstract", "unix"),
    ("tls", "tls"),
    ("fifo", "fifo"),
    ("udp", "udp"),
    ("unixgram", "unixgram"),
    ("shm", "shm"),
    ("mq", "mq"),
]
IDS = [pair_id for pair_id, _ in PAIRS]
SCHEME = dict(PAIRS)


def address(pair_id: str, tag: str) -> str:
    if pair_id == "unix-abstract":
        return f"unix://@faultlab-{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return transports.get(SCHEME[pair_id]).example_address(tag)


def sizes(scheme: str) -> tuple[int, ...]:
    limit = transports.get(scheme).capabilities.max_message_size
    return tuple(s for s in cf.SIZES if limit is None or s <= limit)


@pytest.fixture
def engine() -> Iterator[ProxyEngine]:
    with ProxyEngine(seed=7) as eng:
        yield eng


def make_proxy(engine: ProxyEngine, listen: str, upstream: str) -> ProxyHandle:
    return engine.create(f"p{uuid.uuid4().hex[:6]}", listen=listen, upstream=upstream)


class Echo:
    """An in-process echo server on any transport (a thread per connection)."""

    def __init__(self, addr: str) -> None:
        self.listener: Listener[ByteStream] | Listener[MessageStream] = transports.listen(addr)
        self.address = self.listener.address
        self._stop = threading.Event()
        self._streams: list[Stream] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                stream = self.listener.accept(timeout=0.2)
            except TransportError:
                continue
            self._streams.append(stream)
            threading.Thread(target=self._echo, args=(stream,), daemon=True).start()

    @staticmethod
    def _echo(stream: Stream) -> None:
        try:
            while True:
                if isinstance(stream, ByteStream):
                    stream.send(stream.receive(65536, timeout=30))
                else:
                    assert isinstance(stream, MessageStream)
                    stream.send(stream.receive(timeout=30))
        except FaultlabError:  # closed under a read (the test is over) or the peer left
            pass
        finally:
            stream.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        for stream in self._streams:
            stream.close()


@pytest.fixture
def echo_factory() -> Iterator[Callable[[str], Echo]]:
    echoes: list[Echo] = []

    def make(addr: str) -> Echo:
        echo = Echo(addr)
        echoes.append(echo)
        return echo

    yield make
    for echo in echoes:
        echo.close()


def through_proxy_pair(
    engine: ProxyEngine, listen: str, upstream_listener: Listener[Any]
) -> tuple[Stream, Stream, ProxyHandle]:
    """(client via the proxy, the server-side stream the proxy opened upstream, proxy)."""
    proxy = make_proxy(engine, listen, upstream_listener.address)
    with ThreadPoolExecutor(1) as pool:
        accepting = pool.submit(upstream_listener.accept, timeout=10)
        client = transports.connect(proxy.address, timeout=10)
        server = accepting.result(timeout=15)
    return client, server, proxy


@pytest.mark.parametrize("pair_id", IDS)
def test_round_trip_and_order_through_proxy(
    pair_id: str, engine: ProxyEngine, echo_factory: Callable[[str], Echo]
) -> None:
    scheme = SCHEME[pair_id]
    echo = echo_factory(address(pair_id, "echo"))
    proxy = make_proxy(engine, address(pair_id, "proxy"), echo.address)
    assert transports.parse_address(proxy.address).scheme == scheme
    with transports.connect(proxy.address, timeout=10) as stream:
        cf.check_round_trip(stream, sizes(scheme))
        cf.check_ordering(stream, 100, strict=transports.get(scheme).capabilities.ordered)
    assert any(e["kind"] == "connection" for e in proxy.events())


@pytest.mark.parametrize("pair_id", IDS)
def test_close_propagates_both_ways(pair_id: str, engine: ProxyEngine) -> None:
    with transports.listen(address(pair_id, "up")) as upstream:
        listen = address(pair_id, "proxy")
        client, server, proxy = through_proxy_pair(engine, listen, upstream)
        with client, server:
            client.send(b"ping")
            assert _read(server, 4) == b"ping"
            server.send(b"pong")
            assert _read(client, 4) == b"pong"
            client.close()  # the client leaves: the server sees a clean end
            with pytest.raises(EndOfStream):
                _read_until_end(server)
        client, server = _second_pair(proxy, upstream)
        with client, server:
            server.close()  # the server leaves: the client sees a clean end
            with pytest.raises((EndOfStream, BrokenResourceError)):
                _read_until_end(client)


def _second_pair(proxy: ProxyHandle, upstream: Listener[Any]) -> tuple[Stream, Stream]:
    with ThreadPoolExecutor(1) as pool:
        accepting = pool.submit(upstream.accept, timeout=10)
        client = transports.connect(proxy.address, timeout=10)
        server = accepting.result(timeout=15)
    return client, server


@pytest.mark.parametrize(
    "pair_id", [i for i in IDS if transports.get(SCHEME[i]).capabilities.half_close]
)
def test_half_close_through_proxy(pair_id: str, engine: ProxyEngine) -> None:
    with transports.listen(address(pair_id, "up")) as upstream:
        client, server, _ = through_proxy_pair(engine, address(pair_id, "proxy"), upstream)
        with client, server:
            client.send(b"last words")
            client.send_eof()
            assert _read(server, 10) == b"last words"
            with pytest.raises(EndOfStream):
                server.receive(timeout=5)
            server.send(b"still open")
            assert _read(client, 10) == b"still open"


@pytest.mark.parametrize("pair_id", IDS)
def test_upstream_peer_death_reaches_the_client(
    pair_id: str, engine: ProxyEngine, peers: list[Peer]
) -> None:
    peer = start_peer("echo", address(pair_id, "mortal"))
    peers.append(peer)
    proxy = make_proxy(engine, address(pair_id, "proxy"), peer.address)
    stream = transports.connect(proxy.address, timeout=10)
    try:
        assert cf.round_trip(stream, b"before") == b"before"
        peer.kill()
        started = time.monotonic()
        with pytest.raises((EndOfStream, BrokenResourceError)):
            _request_until_end(stream)
        assert time.monotonic() - started < 3.5
    finally:
        stream.close()


def test_tls_passes_through_and_faults_act_below_it(
    engine: ProxyEngine, echo_factory: Callable[[str], Echo]
) -> None:
    echo = echo_factory("tls://127.0.0.1:0")
    proxy = make_proxy(engine, "tls://127.0.0.1:0", echo.address)
    proxy.add_toxic("latency", stream="downstream", latency=100)
    started = time.monotonic()
    with transports.connect(proxy.address, timeout=10) as stream:  # verifies the server cert
        cf.check_round_trip(stream, (1, 64 * 1024))
    assert time.monotonic() - started >= 0.1  # the handshake crossed the latency
    delays = [e for e in proxy.events() if e["kind"] == "fault" and e["decision"] == "delay"]
    assert delays, "latency acted on the TLS records"


def test_mixed_pair_tcp_to_unix(engine: ProxyEngine, echo_factory: Callable[[str], Echo]) -> None:
    echo = echo_factory(transports.get("unix").example_address("mixed"))
    proxy = make_proxy(engine, "tcp://127.0.0.1:0", echo.address)
    with transports.connect(proxy.address, timeout=10) as stream:
        cf.check_round_trip(stream)
        cf.check_ordering(stream, 100)


def _read(stream: Stream, n: int) -> bytes:
    if isinstance(stream, MessageStream):
        return stream.receive(timeout=5)
    assert isinstance(stream, ByteStream)
    return receive_exactly(stream, n, timeout=5)


def _request_until_end(stream: Stream) -> None:
    stream.send(b"after", timeout=3)
    _read_until_end(stream, timeout=3)


def _read_until_end(stream: Stream, timeout: float = 5) -> None:
    """Read (discarding echoes) until the stream ends; raises EndOfStream/BrokenResource."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if isinstance(stream, ByteStream):
                stream.receive(65536, timeout=max(deadline - time.monotonic(), 0.01))
            else:
                assert isinstance(stream, MessageStream)
                stream.receive(timeout=max(deadline - time.monotonic(), 0.01))
        except EndOfStream:
            raise
        except BrokenResourceError:
            raise
        except TransportError as exc:
            if type(exc).__name__ == "TransportTimeout":
                break
            raise BrokenResourceError(str(exc)) from exc
    raise AssertionError(f"the stream did not end within {timeout} s")
