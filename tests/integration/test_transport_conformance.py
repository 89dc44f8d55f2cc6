"""The shared conformance suite, run against every transport available here.

Cross-process cases use a real peer process (``faultlab.transports._peer``);
SIGKILL cases kill it for real.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultlab import transports
from faultlab._cleanup import runtime_dir
from faultlab.errors import (
    BrokenResourceError,
    EndOfStream,
    MessageTooLarge,
    TransportError,
    TransportTimeout,
    UnsupportedOperation,
    UnsupportedTransport,
)
from faultlab.streams import ByteStream, MessageStream, Stream, receive_exactly
from faultlab.transports import conformance as cf
from faultlab.transports.base import Transport
from tests.conftest import Peer, start_peer

AVAILABLE = [t for t in transports.all_transports() if t.unavailable_reason() is None]
SCHEMES = [t.scheme for t in AVAILABLE]


@pytest.fixture(params=SCHEMES)
def transport(request: pytest.FixtureRequest) -> Transport:
    return transports.get(request.param)


@pytest.fixture
def echo_peer(transport: Transport, peers: list[Peer]) -> Peer:
    peer = start_peer("echo", transport.example_address("echo"))
    peers.append(peer)
    return peer


@pytest.fixture
def pair(transport: Transport) -> Iterator[tuple[Stream, Stream]]:
    with transport.listen(transport.example_address("pair")) as listener:
        client, server = cf.connected_pair(listener, lambda: transport.connect(listener.address))
        try:
            yield client, server
        finally:
            client.close()
            server.close()


def test_schemes_cover_every_mechanism() -> None:
    expected = {"tcp", "tls", "udp", "unix", "unixgram", "fifo", "shm", "mq"}
    assert expected <= set(SCHEMES), f"missing here: {expected - set(SCHEMES)}"


def test_round_trip_across_processes(transport: Transport, echo_peer: Peer) -> None:
    with transport.connect(echo_peer.address, timeout=10) as stream:
        cf.check_round_trip(stream)


def test_ordering_across_processes(transport: Transport, echo_peer: Peer) -> None:
    with transport.connect(echo_peer.address, timeout=10) as stream:
        cf.check_ordering(stream, strict=transport.capabilities.ordered)


def test_concurrent_clients(transport: Transport, echo_peer: Peer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def client(n: int) -> None:
        with transport.connect(echo_peer.address, timeout=10) as stream:
            for i in range(30):
                payload = f"client {n} call {i}".encode() * (n + 1)
                assert cf.round_trip(stream, payload) == payload

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(client, n) for n in range(4)]:
            future.result(timeout=60)


def test_server_sigkill_is_a_typed_error_within_2s(transport: Transport, echo_peer: Peer) -> None:
    stream = transport.connect(echo_peer.address, timeout=10)
    try:
        assert cf.round_trip(stream, b"before") == b"before"
        echo_peer.kill()
        started = time.monotonic()
        with pytest.raises((EndOfStream, BrokenResourceError)):
            _request(stream, b"after")
        assert time.monotonic() - started < 2.0
    finally:
        stream.close()


def _request(stream: Stream, payload: bytes) -> bytes:
    stream.send(payload, timeout=2)
    return stream.receive(timeout=2)


def test_client_sigkill_is_seen_by_server_within_2s(
    transport: Transport, peers: list[Peer]
) -> None:
    if not transport.capabilities.detects_peer_death:
        pytest.skip(f"{transport.scheme} declares it cannot detect a silent peer's death")
    with transport.listen(transport.example_address("kill")) as listener:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:  # accept while the peer connects (TLS handshake)
            accepting = pool.submit(listener.accept, timeout=15)
            peer = start_peer("hold", listener.address)
            peers.append(peer)
            server = accepting.result(timeout=15)
        try:
            peer.kill()
            started = time.monotonic()
            with pytest.raises((EndOfStream, BrokenResourceError)):
                server.receive(timeout=2)
            assert time.monotonic() - started < 2.0
        finally:
            server.close()


def test_close_semantics(pair: tuple[Stream, Stream]) -> None:
    cf.check_close_semantics(*pair)


def test_receive_times_out(pair: tuple[Stream, Stream]) -> None:
    elapsed = cf.check_timeouts(pair[0], 0.2)
    assert elapsed < 2.0


def test_accept_times_out(transport: Transport) -> None:
    with transport.listen(transport.example_address("idle")) as listener:
        started = time.monotonic()
        with pytest.raises(TransportTimeout):
            listener.accept(timeout=0.2)
        assert 0.19 <= time.monotonic() - started < 2.0


def test_connect_to_nothing_fails_typed_and_bounded(transport: Transport) -> None:
    with transport.listen(transport.example_address("gone")) as listener:
        address = listener.address
    started = time.monotonic()
    with pytest.raises(TransportError):
        transport.connect(address, timeout=1).close()
    assert time.monotonic() - started < 3.0


def test_half_close(pair: tuple[Stream, Stream], transport: Transport) -> None:
    client, server = pair
    if not transport.capabilities.half_close:
        if isinstance(client, ByteStream):
            with pytest.raises(UnsupportedOperation):
                client.send_eof()
        return
    client.send(b"last words")
    client.send_eof()
    assert _read(server, 10) == b"last words"
    with pytest.raises(EndOfStream):
        server.receive(timeout=5)
    server.send(b"still open")
    assert _read(client, 10) == b"still open"


def _read(stream: Stream, n: int) -> bytes:
    if isinstance(stream, MessageStream):
        return stream.receive(timeout=5)
    return receive_exactly(stream, n, timeout=5)


def test_message_size_is_enforced(pair: tuple[Stream, Stream], transport: Transport) -> None:
    client, _ = pair
    limit = transport.capabilities.max_message_size
    if not isinstance(client, MessageStream) or limit is None:
        pytest.skip("byte streams have no message size")
    assert limit >= 1 << 20
    with pytest.raises(MessageTooLarge):
        client.send(b"\0" * (limit + 1))


def test_async_round_trip(transport: Transport) -> None:
    async def main() -> None:
        async with await transport.listen_async(transport.example_address("async")) as listener:
            accepting = asyncio.create_task(listener.accept(timeout=10))
            client = await transport.connect_async(listener.address, timeout=10)
            async with client, await accepting as server:
                await client.send(b"ping")
                assert await server.receive(timeout=5) == b"ping"
                await server.send(b"pong")
                assert await client.receive(timeout=5) == b"pong"

    asyncio.run(asyncio.wait_for(main(), 30))


def _resources() -> dict[str, set[str]]:
    def listing(path: str) -> set[str]:
        return set(os.listdir(path)) if os.path.isdir(path) else set()

    return {
        "fds": listing("/proc/self/fd"),
        "shm": {n for n in listing("/dev/shm") if "faultlab" in n},
        "mqueue": {n for n in listing("/dev/mqueue") if "faultlab" in n},
        "runtime": {str(p) for p in Path(runtime_dir()).rglob("*") if p.parent.name != "tls"},
    }


def test_no_leaks(transport: Transport) -> None:
    def cycle() -> None:
        with transport.listen(transport.example_address("leak")) as listener:
            client, server = cf.connected_pair(
                listener, lambda: transport.connect(listener.address)
            )
            with client, server:
                client.send(b"x")
                assert server.receive(timeout=5) == b"x"

    cycle()  # warm caches (TLS CA files, imports) before counting
    before = _resources()
    for _ in range(3):
        cycle()
    after = _resources()
    for kind in before:
        assert after[kind] - before[kind] == set(), f"leaked {kind}: {after[kind] - before[kind]}"


def test_stale_leftovers_of_a_killed_server_are_swept(
    transport: Transport, peers: list[Peer]
) -> None:
    address = transport.example_address("stale")
    peer = start_peer("echo", address)
    peers.append(peer)
    if peer.address != address:
        pytest.skip("ephemeral addresses cannot go stale")
    peer.kill()
    with transport.listen(address) as listener:  # must not fail with "in use"
        client, server = cf.connected_pair(listener, lambda: transport.connect(address))
        with client, server:
            client.send(b"fresh")
            assert server.receive(timeout=5) == b"fresh"


def test_live_server_address_is_not_stolen(transport: Transport, echo_peer: Peer) -> None:
    if echo_peer.address.endswith(":0") or transport.scheme in {"tcp", "tls", "udp"}:
        pytest.skip("port-based: the OS refuses or shares the port (SO_REUSEPORT for udp)")
    with pytest.raises(TransportError):
        transport.listen(echo_peer.address).close()
    with transport.connect(echo_peer.address, timeout=10) as stream:
        assert cf.round_trip(stream, b"still mine") == b"still mine"


def test_windows_named_pipes_refuse_clearly() -> None:
    npipe = transports.get("npipe")
    assert npipe.unavailable_reason()
    with pytest.raises(UnsupportedTransport, match="not supported on platform"):
        transports.connect("npipe://demo")


def test_unknown_scheme_is_typed() -> None:
    with pytest.raises(UnsupportedTransport, match="unknown transport scheme"):
        transports.connect("carrier-pigeon://home")


@pytest.mark.parametrize("sig", [signal.SIGKILL])
def test_peer_process_really_dies(sig: int, peers: list[Peer]) -> None:
    """Guard for the suite itself: our kill helper kills."""
    peer = start_peer("echo", "tcp://127.0.0.1:0")
    peers.append(peer)
    peer.kill()
    assert peer.proc.returncode == -sig
