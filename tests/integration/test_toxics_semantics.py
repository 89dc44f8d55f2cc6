"""Toxiproxy's toxics through a real proxy, real sockets and real peers (reference §2).

Timing assertions are one-sided on purpose: the lower bound is tight (a toxic
must never be faster than promised) and the upper bound loose, so a loaded
2-core machine slows a test down without failing it.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from faultlab.errors import BrokenResourceError
from faultlab.proxy.engine import ProxyEngine, ProxyHandle
from faultlab.proxy.proxy import ProxyError
from faultlab.streams import ByteStream
from faultlab.transports import connect as faultlab_connect
from tests.integration.toxic_helpers import (
    EchoServer,
    SinkServer,
    SourceServer,
    connect,
    numbered,
    recv_all,
    recv_exactly,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)

SEED = 20240611
TIMER_SLACK = 0.0
"""A toxic's waits never end before their deadline (faultlab._timers): lower bounds are
exact."""


@pytest.fixture
def engine() -> Iterator[ProxyEngine]:
    with ProxyEngine(seed=SEED) as eng:
        yield eng


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server


@pytest.fixture
def source() -> Iterator[SourceServer]:
    with SourceServer() as server:
        yield server


@pytest.fixture
def sink() -> Iterator[SinkServer]:
    with SinkServer() as server:
        yield server


@pytest.fixture
def echo_proxy(engine: ProxyEngine, echo: EchoServer) -> ProxyHandle:
    return engine.create("echo", upstream=echo.upstream)


@pytest.fixture
def source_proxy(engine: ProxyEngine, source: SourceServer) -> ProxyHandle:
    return engine.create("source", upstream=source.upstream)


@pytest.fixture
def sink_proxy(engine: ProxyEngine, sink: SinkServer) -> ProxyHandle:
    return engine.create("sink", upstream=sink.upstream)


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    start = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.monotonic() - start


def decisions(proxy: ProxyHandle, decision: str, **match: Any) -> list[dict[str, Any]]:
    return [
        e
        for e in proxy.events(kinds=["fault"])
        if e["decision"] == decision and all(e.get(k) == v for k, v in match.items())
    ]


def request(sock: socket.socket, count: int) -> None:
    """Ask a :class:`SourceServer` for ``count`` numbered bytes."""
    sock.sendall(struct.pack(">Q", count))


# ---- latency ---------------------------------------------------------------------------------


def test_latency_downstream_adds_once_to_a_round_trip(echo_proxy: ProxyHandle) -> None:
    with connect(echo_proxy.listen) as sock:
        round_trip(sock)  # connected and warm
        echo_proxy.add_toxic("latency", stream="downstream", latency=300)  # live, open connection
        rtt = round_trip(sock)
    assert rtt >= 0.3 - TIMER_SLACK
    assert rtt < 0.6, "a downstream latency must add L to a round trip, not 2L"
    delays = decisions(echo_proxy, "delay")
    assert delays
    assert {e["direction"] for e in delays} == {"downstream"}
    assert {e["delay_ms"] for e in delays} == {300}


def test_latency_is_never_shorter_than_asked(echo_proxy: ProxyHandle) -> None:
    """Toxiproxy's Go timers never end early; uvloop's millisecond clock did (a 100 ms wait
    ended up to 0.6 ms early here, a sub-millisecond one at once), so small latencies
    repeated many times would catch it."""
    echo_proxy.add_toxic("latency", stream="downstream", latency=2)
    echo_proxy.add_toxic("latency", name="up", stream="upstream", latency=1)
    with connect(echo_proxy.listen) as sock:
        rtts = [round_trip(sock, b"%02d" % i) for i in range(60)]
    assert min(rtts) >= 0.003, f"a round trip took {min(rtts) * 1000:.3f} ms of at least 3"


def test_latency_jitter_stays_within_bounds(echo_proxy: ProxyHandle) -> None:
    echo_proxy.add_toxic("latency", stream="downstream", latency=60, jitter=30)
    with connect(echo_proxy.listen) as sock:
        rtts = [round_trip(sock, b"%02d" % i) for i in range(10)]
    delays = sorted(decisions(echo_proxy, "delay"), key=lambda e: e["frame_index"])
    assert len(delays) == 10, "each ping should be one chunk"
    drawn = [e["delay_ms"] for e in delays]
    assert all(30 <= d < 90 for d in drawn), drawn
    assert len(set(drawn)) > 1, "jitter drew a constant delay"
    for rtt, delay_ms in zip(rtts, drawn, strict=True):
        assert rtt >= delay_ms / 1000 - TIMER_SLACK
        assert rtt < 0.09 + 0.5


def test_stacked_latencies_add_up(echo_proxy: ProxyHandle) -> None:
    echo_proxy.add_toxic("latency", name="down_a", stream="downstream", latency=100)
    echo_proxy.add_toxic("latency", name="down_b", stream="downstream", latency=100)
    echo_proxy.add_toxic("latency", name="up", stream="upstream", latency=100)
    with connect(echo_proxy.listen) as sock:
        rtt = round_trip(sock)
        # a burst is pipelined through both stages, not delayed once per chunk
        start = time.monotonic()
        for i in range(5):
            sock.sendall(b"%d" % i)
            time.sleep(0.01)
        assert recv_exactly(sock, 5) == b"01234"
        burst = time.monotonic() - start
    assert rtt >= 0.3 - TIMER_SLACK
    assert rtt < 0.3 + 1.0
    assert burst >= 0.3 + 0.04 - TIMER_SLACK
    assert burst < 0.3 * 5, "stacked latencies delayed a burst cumulatively"


# ---- bandwidth -------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [10, 100, 1_000, 10_000], ids=lambda r: f"{r}KBps")
def test_bandwidth_rate_is_accurate(source_proxy: ProxyHandle, rate: int) -> None:
    count = rate * 1000 * 6 // 10  # 0.6 s at the nominal rate
    expected = count / (rate * 1000)
    payload = numbered(count)  # made before the clock starts (the server shares the cache)
    source_proxy.add_toxic("bandwidth", stream="downstream", rate=rate)
    with connect(source_proxy.listen) as sock:
        start = time.monotonic()
        request(sock, count)
        data = recv_exactly(sock, count)
        elapsed = time.monotonic() - start
    assert data == payload
    assert elapsed >= 0.9 * expected, f"{count / elapsed / 1000:.1f} KB/s > {rate} KB/s"
    assert elapsed <= 1.5 * expected + 0.3, f"{count / elapsed / 1000:.1f} KB/s << {rate} KB/s"


def test_bandwidth_upstream_is_per_direction(sink_proxy: ProxyHandle, sink: SinkServer) -> None:
    sink_proxy.add_toxic("bandwidth", stream="upstream", rate=100)
    count = 60_000
    with connect(sink_proxy.listen) as sock:
        start = time.monotonic()
        sock.sendall(numbered(count))
        sock.shutdown(socket.SHUT_WR)
        wait_for(lambda: len(sink.eof_at) == 1, what="the sink to see EOF")
        elapsed = sink.eof_at[0] - start
    assert bytes(sink.received[0]) == numbered(count)
    assert 0.9 * 0.6 <= elapsed <= 1.5 * 0.6 + 0.3


def test_bandwidth_zero_stalls_without_closing_until_removed(source_proxy: ProxyHandle) -> None:
    source_proxy.add_toxic("bandwidth", name="cut", stream="downstream", rate=0)
    with connect(source_proxy.listen) as sock:
        request(sock, 1000)
        sock.settimeout(0.4)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing comes through, and the connection is not closed either
        assert source_proxy.connections() == 1
        assert decisions(source_proxy, "stall")
        source_proxy.remove_toxic("cut")
        sock.settimeout(5)
        assert recv_all(sock) == numbered(1000)


# ---- timeout -----------------------------------------------------------------------------------


def test_timeout_drops_data_and_closes_after_idle(
    sink_proxy: ProxyHandle, sink: SinkServer
) -> None:
    sink_proxy.add_toxic("timeout", stream="upstream", timeout=500)
    with connect(sink_proxy.listen) as sock:
        for i in range(3):  # traffic restarts the countdown: no close while it flows
            sock.sendall(b"chunk %d" % i)
            time.sleep(0.1)
            assert sink_proxy.connections() == 1
        last = time.monotonic()
        sock.sendall(b"last")
        assert sock.recv(1) == b""  # closed by the proxy
        closed = time.monotonic()
    assert closed - last >= 0.5 - TIMER_SLACK
    assert closed - last < 0.5 + 2.0
    wait_for(lambda: len(sink.eof_at) == 1, what="the server side to close too")
    assert bytes(sink.received[0]) == b"", "timeout must drop the data, not delay it"
    assert len(decisions(sink_proxy, "drop")) == 4
    assert len(decisions(sink_proxy, "timeout")) == 1


def test_timeout_zero_holds_forever_and_removing_it_closes(
    sink_proxy: ProxyHandle, sink: SinkServer
) -> None:
    sink_proxy.add_toxic("timeout", name="hang", stream="upstream", timeout=0)
    with connect(sink_proxy.listen) as sock:
        sock.sendall(b"lost")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert sink_proxy.connections() == 1
        sink_proxy.remove_toxic("hang")  # data was dropped: the stream is torn down
        sock.settimeout(5)
        assert sock.recv(1) == b""
    wait_for(lambda: len(sink.eof_at) == 1, what="the server side to see EOF")
    assert bytes(sink.received[0]) == b""
    assert sink_proxy.connections() == 0


# ---- reset_peer --------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", ["upstream", "downstream"])
def test_reset_peer_gives_econnreset(echo_proxy: ProxyHandle, stream: str) -> None:
    echo_proxy.add_toxic("reset_peer", stream=stream, timeout=200)
    with connect(echo_proxy.listen) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")
        with pytest.raises(ConnectionResetError):
            sock.recv(16)
        elapsed = time.monotonic() - start
    assert elapsed >= 0.2 - TIMER_SLACK
    assert elapsed < 0.2 + 2.0
    (drop,) = decisions(echo_proxy, "drop")
    assert drop["direction"] == stream
    assert drop["size"] == 4
    assert decisions(echo_proxy, "reset")


def test_reset_peer_is_a_broken_resource_for_faultlab_streams(echo_proxy: ProxyHandle) -> None:
    echo_proxy.add_toxic("reset_peer", stream="downstream", timeout=0)
    with faultlab_connect(echo_proxy.address, timeout=5) as stream:
        assert isinstance(stream, ByteStream)
        stream.send(b"ping", timeout=5)
        with pytest.raises(BrokenResourceError):
            stream.receive(16, timeout=5)


# ---- limit_data --------------------------------------------------------------------------------


def test_limit_data_passes_exactly_n_bytes_then_closes(source_proxy: ProxyHandle) -> None:
    source_proxy.add_toxic("limit_data", stream="downstream", bytes=1000)
    with connect(source_proxy.listen) as sock:
        request(sock, 5000)
        assert recv_all(sock) == numbered(5000)[:1000]
    assert decisions(source_proxy, "limit_reached")
    wait_for(lambda: source_proxy.connections() == 0, what="the connection to close")


def test_limit_data_update_raises_the_limit(echo_proxy: ProxyHandle) -> None:
    echo_proxy.add_toxic("limit_data", name="cap", stream="downstream", bytes=100)
    with connect(echo_proxy.listen) as sock:
        sock.sendall(b"a" * 60)
        assert recv_exactly(sock, 60) == b"a" * 60
        echo_proxy.update_toxic("cap", bytes=150)  # the count (60) survives the update
        sock.sendall(b"b" * 60)
        assert recv_exactly(sock, 60) == b"b" * 60
        sock.sendall(b"c" * 60)
        assert recv_all(sock) == b"c" * 30  # 60 + 60 + 30 = 150, then closed
    (truncate,) = decisions(echo_proxy, "truncate")
    assert truncate["kept"] == 30
    assert truncate["sent"] == 150


# ---- slicer ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("average", "variation"), [(100, 30), (64, 0)])
def test_slicer_pieces_are_in_range(
    source_proxy: ProxyHandle, average: int, variation: int
) -> None:
    delay_us = 5000
    source_proxy.add_toxic(
        "slicer",
        stream="downstream",
        average_size=average,
        size_variation=variation,
        delay=delay_us,
    )
    count = 3000
    with connect(source_proxy.listen) as sock:
        start = time.monotonic()
        request(sock, count)
        reads = []
        while data := sock.recv(65536):
            reads.append(data)
        elapsed = time.monotonic() - start
    assert b"".join(reads) == numbered(count)
    slices = decisions(source_proxy, "slice")
    assert sum(e["size"] for e in slices) == count
    pieces = [size for e in slices for size in e["sizes"]]
    for event in slices:
        assert sum(event["sizes"]) == event["size"]
        smallest = (average + variation + 1) // 2 - variation
        if event["size"] > average + variation:
            assert min(event["sizes"]) >= smallest, event["sizes"]
    assert all(1 <= size <= average + variation for size in pieces), pieces
    if variation == 0:
        assert all(average // 2 <= size <= average for size in pieces)
    assert len(reads) > 1, "the client should see short reads"
    assert elapsed >= len(pieces) * delay_us / 1e6 - TIMER_SLACK


# ---- slow_close --------------------------------------------------------------------------------


def test_slow_close_delays_the_eof(echo_proxy: ProxyHandle) -> None:
    echo_proxy.add_toxic("slow_close", stream="downstream", delay=300)
    with connect(echo_proxy.listen) as sock:
        sock.sendall(b"bye")
        shut = time.monotonic()
        sock.shutdown(socket.SHUT_WR)  # the echo server closes when it sees this
        assert recv_exactly(sock, 3) == b"bye"  # data is not delayed
        assert sock.recv(1) == b""
        eof = time.monotonic()
    assert eof - shut >= 0.3 - TIMER_SLACK
    assert eof - shut < 0.3 + 2.0
    (event,) = decisions(echo_proxy, "delay_close")
    assert event["delay_ms"] == 300
    assert not event["interrupted"]


# ---- toxicity and seeds ------------------------------------------------------------------------


def _toxicity_draws(seed: int, upstream: str, connections: int) -> dict[int, tuple[bool, float]]:
    with ProxyEngine(seed=seed) as engine:
        proxy = engine.create("coin", upstream=upstream)
        proxy.add_toxic("latency", name="flip", stream="downstream", toxicity=0.5, latency=0)
        for _ in range(connections):
            connect(proxy.listen).close()

        def drawn() -> list[dict[str, Any]]:
            return decisions(proxy, "toxicity", toxic="flip")

        wait_for(lambda: len(drawn()) == connections, what=f"{connections} toxicity draws")
        return {e["connection"]: (e["active"], e["draw"]) for e in drawn()}


def test_toxicity_is_drawn_per_connection_and_replays_by_seed(echo: EchoServer) -> None:
    draws = _toxicity_draws(SEED, echo.upstream, 400)
    assert sorted(draws) == list(range(400))
    active = sum(on for on, _ in draws.values())
    assert abs(active - 200) <= 4 * 10, f"{active} of 400 active at toxicity 0.5"  # sigma = 10
    assert all(on == (draw < 0.5) for on, draw in draws.values())

    replay = _toxicity_draws(SEED, echo.upstream, 50)
    assert replay == {c: draws[c] for c in range(50)}, "same seed, different decisions"
    other = _toxicity_draws(SEED + 1, echo.upstream, 50)
    assert other != replay, "different seeds drew the same decisions"


# ---- live changes ------------------------------------------------------------------------------


def test_live_update_and_remove_apply_to_open_connections(echo_proxy: ProxyHandle) -> None:
    with connect(echo_proxy.listen) as sock:
        round_trip(sock)
        echo_proxy.add_toxic("latency", name="lag", stream="downstream", latency=100)
        assert round_trip(sock) >= 0.1 - TIMER_SLACK
        echo_proxy.update_toxic("lag", latency=300)
        assert round_trip(sock) >= 0.3 - TIMER_SLACK
        echo_proxy.remove_toxic("lag")
        assert round_trip(sock) < 0.25
    assert echo_proxy.connections() in (0, 1)


def test_live_toggling_loses_and_reorders_nothing(echo_proxy: ProxyHandle) -> None:
    payload = numbered(1 << 20)
    received = bytearray()

    with connect(echo_proxy.listen) as sock:

        def reader() -> None:
            while len(received) < len(payload):
                data = sock.recv(65536)
                if not data:
                    return
                received.extend(data)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        sent = 0
        toggles = 0
        step = 16 * 1024
        while sent < len(payload):
            sock.sendall(payload[sent : sent + step])
            sent += step
            phase = (sent // step) % 8
            if phase == 1:
                echo_proxy.add_toxic("latency", name="lag_d", stream="downstream", latency=5)
                echo_proxy.add_toxic("latency", name="lag_u", stream="upstream", latency=3)
            elif phase == 3:
                echo_proxy.update_toxic("lag_d", latency=10, jitter=5)
                echo_proxy.add_toxic(
                    "slicer", name="cut", stream="downstream", average_size=1500, delay=0
                )
            elif phase == 5:
                echo_proxy.add_toxic("bandwidth", name="bw", stream="upstream", rate=20_000)
                echo_proxy.remove_toxic("lag_u")
            elif phase == 7:
                echo_proxy.remove_toxic("lag_d")
                echo_proxy.remove_toxic("cut")
                echo_proxy.remove_toxic("bw")
                toggles += 1
            time.sleep(0.002)
        thread.join(20)
    assert toggles >= 4
    assert decisions(echo_proxy, "delay"), "no chunk met a latency toxic mid-stream"
    assert decisions(echo_proxy, "slice"), "no chunk met the slicer mid-stream"
    assert len(received) == len(payload)
    assert bytes(received) == payload, "bytes lost or reordered across live toxic changes"


def test_disable_refuses_connections_and_enable_keeps_toxics(echo_proxy: ProxyHandle) -> None:
    echo_proxy.add_toxic("latency", name="lag", stream="downstream", latency=100)
    listen = echo_proxy.listen
    with connect(listen) as sock:
        round_trip(sock)
        echo_proxy.disable()
        sock.settimeout(5)
        try:
            assert sock.recv(1) == b""  # the proxy closed it
        except ConnectionResetError:
            pass
    with pytest.raises(ConnectionRefusedError):
        connect(listen, timeout=2)
    assert echo_proxy.info()["enabled"] is False
    echo_proxy.enable()
    assert echo_proxy.listen == listen, "re-enable must rebind the same port"
    assert [t["name"] for t in echo_proxy.toxics()] == ["lag"]
    with connect(listen) as sock:
        assert round_trip(sock) >= 0.1 - TIMER_SLACK


# ---- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "attributes", "message"),
    [
        # Toxiproxy's eight take any Go int64 (tests/contract/test_toxiproxy_parity.py); only
        # what Go cannot store is refused
        ("bandwidth", {"rate": 2**63}, "'rate' must be <="),
        ("latency", {"latency": 2**63}, "'latency' must be <="),
        ("latency", {"jitter": "lots"}, "'jitter' must be an integer"),
        ("slow_close", {"delay": -(2**63) - 1}, "'delay' must be >="),
        ("timeout", {"timeout": 1.5}, "'timeout' must be an integer"),
        ("reset_peer", {"timeout": True}, "'timeout' must be an integer"),
        ("limit_data", {"bytes": "1"}, "'bytes' must be an integer"),
        ("slicer", {"average_size": 2**63}, "'average_size' must be <="),
        ("slicer", {"average_size": 10, "delay": 0.5}, "'delay' must be an integer"),
    ],
)
def test_invalid_attributes_are_a_400(
    echo_proxy: ProxyHandle, type_name: str, attributes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProxyError) as error:
        echo_proxy.add_toxic(type_name, **attributes)
    assert error.value.status == 400
    assert type_name in str(error.value)
    assert message in str(error.value)
    assert echo_proxy.toxics() == []


def test_unknown_toxic_type_is_a_400(echo_proxy: ProxyHandle) -> None:
    with pytest.raises(ProxyError) as error:
        echo_proxy.add_toxic("down")  # the README's "down" is enabled=false, not a toxic
    assert error.value.status == 400
    assert str(error.value) == "invalid toxic type"


def test_invalid_update_is_a_400_and_changes_nothing(echo_proxy: ProxyHandle) -> None:
    echo_proxy.add_toxic("slicer", name="cut", average_size=100, size_variation=10)
    with pytest.raises(ProxyError) as error:
        echo_proxy.update_toxic("cut", size_variation="more")
    assert error.value.status == 400
    assert "'size_variation' must be an integer" in str(error.value)
    (toxic,) = echo_proxy.toxics()
    assert toxic["attributes"] == {"average_size": 100, "size_variation": 10, "delay": 0}


def test_slicer_is_refused_on_a_framed_proxy(engine: ProxyEngine, echo: EchoServer) -> None:
    framed = engine.create("framed", upstream=echo.upstream, framing="lines")
    with pytest.raises(ProxyError) as error:
        framed.add_toxic("slicer", average_size=10)
    assert error.value.status == 400
    assert "framing 'lines'" in str(error.value)


def test_limit_data_never_truncates_a_frame(engine: ProxyEngine, echo: EchoServer) -> None:
    framed = engine.create("framed", upstream=echo.upstream, framing="lines")
    framed.add_toxic("limit_data", stream="downstream", bytes=10)
    with connect(framed.listen) as sock:
        sock.sendall(b"one\ntwo\nthree\n")
        assert recv_all(sock) == b"one\ntwo\n"  # "three" would cross the limit: dropped
    (truncate,) = decisions(framed, "truncate")
    assert truncate["kept"] == 0
