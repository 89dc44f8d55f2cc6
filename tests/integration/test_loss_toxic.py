"""The ``loss`` toxic through a real proxy: frames lost at the model's rate and burstiness,
byte streams delayed by retransmission timeouts and never cut, seeded replay, clear refusals.

Rates and bursts are checked against the model's theory within 4 standard errors (the
two-state chain's correlation time included); delays only from below (a chunk never
arrives before its journaled retransmission delay), with a loose bound above.
"""

from __future__ import annotations

import itertools
import math
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from faultlab import transports
from faultlab.errors import TransportTimeout
from faultlab.proxy import ProxyEngine, ProxyError, ProxyHandle
from faultlab.rpc.channel import open_channel
from faultlab.streams import ByteStream
from tests.integration.toxic_helpers import numbered, wait_for

SEED = 1616
TIMER_SLACK = 0.0
"""A toxic's waits never end before their deadline (faultlab._timers, although uvloop keeps
time in whole milliseconds): lower bounds are exact."""
GILBERT = {"model": "gemodel", "p": 10.0, "r": 40.0}  # simple Gilbert: rate 20 %, bursts 2.5


def decisions(proxy: ProxyHandle) -> list[dict[str, Any]]:
    return [
        e
        for e in proxy.events()
        if e["kind"] == "fault" and e["type"] == "loss" and e["decision"] != "toxicity"
    ]


def send_frames(
    listen: str, framing: str | None, attrs: dict[str, Any], n: int, seed: int
) -> tuple[list[dict[str, Any]], list[int]]:
    """``n`` numbered frames client -> server through a ``loss`` proxy; the journaled
    decisions, and the frame numbers the server got (in arrival order)."""
    got: list[int] = []
    with ProxyEngine(seed=seed) as engine, transports.listen(listen) as up:
        proxy = engine.create("lossy", listen=listen, upstream=up.address, framing=framing)
        proxy.add_toxic("loss", stream="upstream", **attrs)
        with transports.connect(proxy.address, timeout=10) as client:
            with up.accept(timeout=10) as server:
                send = open_channel(client, framing or "datagram")
                receive = open_channel(server, framing or "datagram")
                stop = threading.Event()

                def reader() -> None:
                    while not stop.is_set():
                        try:
                            got.append(int(receive.receive(timeout=0.1)))
                        except TransportTimeout:
                            continue

                thread = threading.Thread(target=reader, daemon=True)
                thread.start()
                try:
                    for i in range(n):
                        send.send(b"%d" % i)
                        if i % 50 == 49:
                            time.sleep(0.005)  # datagrams: let the reader keep up
                    wait_for(lambda: len(decisions(proxy)) == n, 20, "a decision per frame")
                    passed = sum(e["decision"] == "pass" for e in decisions(proxy))
                    wait_for(lambda: len(got) >= passed, 10, "every passed frame")
                    time.sleep(0.1)  # a lost frame must not turn up late
                finally:
                    stop.set()
                    thread.join(5)
        return decisions(proxy), list(got)


def loss_runs(lost: list[bool]) -> list[int]:
    runs, length = [], 0
    for flag in lost:
        if flag:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    return runs


@pytest.mark.parametrize(
    ("listen", "framing"),
    [("tcp://127.0.0.1:0", "length-prefix"), ("udp://127.0.0.1:0", None)],
    ids=["tcp-length-prefix", "udp-datagrams"],
)
def test_frames_are_lost_at_the_models_rate_and_burstiness(
    listen: str, framing: str | None
) -> None:
    n = 3000
    events, got = send_frames(listen, framing, GILBERT, n, SEED)
    lost = [e["decision"] == "loss" for e in events]
    assert [e["frame_index"] for e in events] == list(range(n))
    # exactly the passed frames arrive, in order: a lost frame is dropped, never delayed
    assert got == [i for i, gone in enumerate(lost) if not gone]
    assert all(e["state"] == "bad" for e in events if e["decision"] == "loss")
    p, r = 0.10, 0.40
    rate, lam = p / (p + r), 1 - p - r
    tolerance = 4 * math.sqrt(rate * (1 - rate) * (1 + lam) / (1 - lam) / n)
    assert abs(sum(lost) / n - rate) < tolerance, sum(lost) / n
    runs = loss_runs(lost)
    se = math.sqrt((1 - r) / r**2 / len(runs))  # a burst is geometric, mean 1/r
    assert abs(statistics.fmean(runs) - 1 / r) < 4 * se, statistics.fmean(runs)


def test_a_seed_replays_the_decisions() -> None:
    def decided(seed: int) -> list[tuple[int, str, Any]]:
        events, _ = send_frames("tcp://127.0.0.1:0", "length-prefix", GILBERT, 300, seed)
        return [(e["frame_index"], e["decision"], e["state"]) for e in events]

    first, again, other = decided(SEED), decided(SEED), decided(SEED + 1)
    assert first == again
    assert first != other


# ---- byte streams: retransmission, never loss ---------------------------------------------------
@pytest.fixture
def raw_pair() -> Iterator[tuple[ProxyHandle, Any]]:
    with ProxyEngine(seed=SEED) as engine, transports.listen("tcp://127.0.0.1:0") as up:
        yield engine.create("raw", upstream=up.address), up


def test_a_byte_stream_loses_nothing_and_waits_the_rto(raw_pair: tuple[ProxyHandle, Any]) -> None:
    proxy, up = raw_pair
    rto, cap = 40, 160
    proxy.add_toxic("loss", stream="upstream", percent=30.0, rto=rto, rto_max=cap)
    pieces, size = 40, 100
    payload = numbered(pieces * size)
    sent_at: list[float] = []
    arrived: list[tuple[int, float]] = []  # (bytes received so far, when)
    with transports.connect(proxy.address, timeout=10) as client:
        assert isinstance(client, ByteStream)
        sent_at.append(time.monotonic())  # before the send: a lower bound of the proxy's read
        client.send(payload[:size])
        with up.accept(timeout=10) as server:
            assert isinstance(server, ByteStream)
            done = threading.Event()

            def reader() -> None:
                total = 0
                while total < len(payload):
                    data = server.receive(65536, timeout=30)
                    total += len(data)
                    arrived.append((total, time.monotonic()))
                    received.extend(data)
                done.set()

            received = bytearray()
            thread = threading.Thread(target=reader, daemon=True)
            thread.start()
            for k in range(1, pieces):
                time.sleep(0.03)  # one chunk per piece, most of the time
                sent_at.append(time.monotonic())
                client.send(payload[k * size : (k + 1) * size])
            assert done.wait(60), "the stream stalled"
            thread.join(5)
    assert bytes(received) == payload  # every byte, in order
    events = decisions(proxy)
    retransmits = [e for e in events if e["decision"] == "retransmit"]
    assert retransmits, "30 % loss over 40 chunks retransmitted nothing"
    assert {e["decision"] for e in events} <= {"pass", "retransmit"}
    offset = 0
    for e in sorted(events, key=lambda e: e["frame_index"]):
        start, offset = offset, offset + e["size"]
        if e["decision"] != "retransmit":
            continue
        # the RTO doubles per loss of the same chunk, capped at rto_max
        assert e["delay_ms"] == sum(min(rto * 2**k, cap) for k in range(e["losses"]))
        first_sent = sent_at[start // size]
        reached = next(t for total, t in arrived if total > start)
        assert reached - first_sent >= e["delay_ms"] / 1000 - TIMER_SLACK, (e, reached - first_sent)
    assert arrived[-1][1] - sent_at[0] < 30


def test_head_of_line_blocking_holds_what_follows(raw_pair: tuple[ProxyHandle, Any]) -> None:
    """100 % loss: the first chunk waits until the toxic is removed, and the second behind it."""
    proxy, up = raw_pair
    proxy.add_toxic("loss", name="all", stream="upstream", percent=100.0, rto=50)
    with transports.connect(proxy.address, timeout=10) as client:
        assert isinstance(client, ByteStream)
        client.send(b"first")
        with up.accept(timeout=10) as server:
            assert isinstance(server, ByteStream)
            time.sleep(0.05)
            client.send(b"second")
            started = time.monotonic()
            with pytest.raises(TransportTimeout):
                server.receive(65536, timeout=0.4)
            proxy.remove_toxic("all")
            got = b""
            while len(got) < len(b"firstsecond"):
                got += server.receive(65536, timeout=5)
            assert got == b"firstsecond"
            assert time.monotonic() - started >= 0.4
    record = [e for e in decisions(proxy) if e["decision"] == "retransmit"]
    assert record
    assert record[0]["interrupted"] is True
    assert record[0]["losses"] >= 3  # 50 + 100 + 200 ms fit in the 0.4 s before removal
    assert record[0]["delay_ms"] >= 400  # what it really waited, not the unfinished RTO


# ---- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"percent": 150}, "loss: attribute 'percent' must be <= 100.0, got 150"),
        ({"model": "bursty"}, "loss: attribute 'model' must be one of random, gemodel, state"),
        ({"p": 5}, "loss: attribute 'p' belongs to model='gemodel', not model='random'"),
        (
            {"model": "gemodel", "r": -0.5},
            "loss: attribute 'r' must be -1 (netem's default) or 0..100",
        ),
        ({"model": "state", "p13": 60, "p14": 50}, "loss: p13 + p14 must be <= 100"),
        ({"rto": 500, "rto_max": 100}, "loss: attribute 'rto_max' (100) must be >= rto (500)"),
        ({"rto": 0}, "loss: attribute 'rto' must be >= 1"),
        ({"percnt": 5}, "loss: unknown attribute 'percnt'"),
    ],
)
def test_bad_attributes_are_a_400_naming_toxic_attribute_and_range(
    attributes: dict[str, Any], message: str
) -> None:
    with ProxyEngine(seed=SEED) as engine, transports.listen("udp://127.0.0.1:0") as up:
        proxy = engine.create("msg", listen="udp://127.0.0.1:0", upstream=up.address)
        with pytest.raises(ProxyError) as info:
            proxy.add_toxic("loss", stream="upstream", **attributes)
        assert info.value.status == 400
        assert message in str(info.value)
        assert proxy.toxics() == []


def test_loss_is_refused_on_http2_frames() -> None:
    with ProxyEngine(seed=SEED) as engine, transports.listen("tcp://127.0.0.1:0") as up:
        proxy = engine.create("h2", upstream=up.address, framing="h2")
        with pytest.raises(ProxyError, match="losing one breaks the connection") as info:
            proxy.add_toxic("loss", percent=1.0)
        assert info.value.status == 400


# ---- latency's netem distributions through the proxy --------------------------------------------
def test_latency_normal_with_correlation_through_a_real_proxy() -> None:
    """Every chunk waits at least its journaled delay; the delays have the normal's mean and
    spread and the asked correlation (lag 1), within 4 standard errors for ~300 chunks."""
    latency, jitter, c = 30, 8, 0.5
    pieces, size = 300, 64
    payload = numbered(pieces * size)
    sent_at: list[float] = []
    arrived: list[tuple[int, float]] = []
    with (
        ProxyEngine(seed=SEED) as engine,
        transports.listen("tcp://127.0.0.1:0") as up,
    ):
        proxy = engine.create("slow", upstream=up.address)
        proxy.add_toxic(
            "latency",
            stream="upstream",
            latency=latency,
            jitter=jitter,
            distribution="normal",
            correlation=c * 100,
        )
        with transports.connect(proxy.address, timeout=10) as client:
            assert isinstance(client, ByteStream)
            sent_at.append(time.monotonic())
            client.send(payload[:size])
            with up.accept(timeout=10) as server:
                assert isinstance(server, ByteStream)

                def reader() -> None:
                    total = 0
                    while total < len(payload):
                        total += len(server.receive(65536, timeout=30))
                        arrived.append((total, time.monotonic()))

                thread = threading.Thread(target=reader, daemon=True)
                thread.start()
                for k in range(1, pieces):
                    time.sleep(0.005)
                    sent_at.append(time.monotonic())
                    client.send(payload[k * size : (k + 1) * size])
                thread.join(30)
                assert not thread.is_alive(), "the stream stalled"
        events = [e for e in proxy.events() if e["kind"] == "fault" and e["decision"] == "delay"]
    assert arrived[-1][0] == len(payload)
    offset = 0
    for e in events:
        start, offset = offset, offset + e["size"]
        reached = next(t for total, t in arrived if total > start)
        assert reached - sent_at[start // size] >= e["delay_ms"] / 1000 - TIMER_SLACK, e
    delays = [float(e["delay_ms"]) for e in events]
    n = len(delays)
    assert n >= 100, n  # most pieces are read one by one
    inflation = math.sqrt((1 + c) / (1 - c))  # AR(1): the mean's error grows with c
    assert abs(statistics.fmean(delays) - latency) < 4 * jitter / math.sqrt(n) * inflation
    assert abs(statistics.pstdev(delays) - jitter) < 0.25 * jitter
    mean = statistics.fmean(delays)
    lag1 = sum((a - mean) * (b - mean) for a, b in itertools.pairwise(delays)) / sum(
        (d - mean) ** 2 for d in delays
    )
    assert abs(lag1 - c) < 4 / math.sqrt(n)
