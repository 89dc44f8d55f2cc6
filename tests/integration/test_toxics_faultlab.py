"""faultlab's own toxics, end to end: a real calc server, the proxy, a real client.

Every toxic runs on every carrier where it makes sense: byte streams with a
framing (binrpc over length-prefix, msgpack-RPC over msgpack-stream,
JSON-RPC over HTTP, on tcp and on bridged fifo), and message transports
where each message is a frame (udp, unixgram, shm, mq). Probabilities are
checked statistically against seeded RNGs (within 4 sigma), outcomes by the
typed errors the client raises and the side effects the server records, and
decisions against the journal. Only one-sided time bounds are asserted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from faultlab import transports
from faultlab.errors import (
    BrokenResourceError,
    EndOfStream,
    RemoteProtocolError,
    TransportError,
    TransportTimeout,
)
from faultlab.examples.calc import Calc, CalcV2
from faultlab.lab.pair import Lab
from faultlab.proxy import ProxyEngine, ProxyError, ProxyHandle
from faultlab.rpc import Client, serve
from faultlab.rpc.channel import open_channel
from faultlab.rpc.errors import (
    InternalError,
    InvalidParams,
    MethodNotFound,
    RpcError,
    ServiceUnavailable,
    VersionMismatch,
)
from faultlab.rpc.server import RpcServer
from faultlab.streams import ByteStream
from faultlab.toxics.base import Chunk, ToxicContext, get_toxic_class

SEED = 20240611


@dataclass(frozen=True)
class Carrier:
    scheme: str
    protocol: str
    framing: str | None = None

    @property
    def id(self) -> str:
        return f"{self.scheme}-{self.protocol}" + (f"-{self.framing}" if self.framing else "")

    @property
    def message(self) -> bool:
        return self.framing is None


CARRIERS = [
    Carrier("tcp", "binrpc", "length-prefix"),
    Carrier("tcp", "msgpackrpc", "msgpack-stream"),
    Carrier("tcp", "jsonrpc", "http"),
    Carrier("fifo", "binrpc", "length-prefix"),
    Carrier("udp", "binrpc"),
    Carrier("unixgram", "jsonrpc"),
    Carrier("shm", "msgpackrpc"),
    Carrier("mq", "binrpc"),
]
BINRPC = [c for c in CARRIERS if c.protocol == "binrpc"]
by_carrier = pytest.mark.parametrize("carrier", CARRIERS, ids=lambda c: c.id, indirect=True)


@dataclass
class Rig:
    """A calc server, a proxy in front of it, and clients through the proxy."""

    carrier: Carrier
    calc: Calc
    server: RpcServer
    engine: ProxyEngine
    proxy: ProxyHandle
    clients: list[Client] = field(default_factory=list)

    def client(self, timeout: float = 5.0) -> Client:
        c = Client(
            self.proxy.address, self.carrier.protocol, framing=self.carrier.framing, timeout=timeout
        )
        self.clients.append(c)
        return c

    def decisions(self, toxic_type: str, *names: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.proxy.events()
            if e["kind"] == "fault"
            and e["type"] == toxic_type
            and e["decision"] != "toxicity"
            and (not names or e["decision"] in names)
        ]

    def effects(self) -> list[int]:
        return [e["amount"] for e in self.calc.counter.effects()]

    def notify_incr(self, amounts: list[int]) -> Callable[[], None]:
        """Send ``counter.incr(a)`` notifications on one connection; returns its closer.

        Over HTTP a client waits for each reply, so the requests are pipelined on
        a raw socket instead (the server answers each one it gets with 204).
        """
        if self.carrier.framing == "http":
            parsed = transports.parse_address(self.proxy.address)
            sock = socket.create_connection((parsed.host, parsed.port or 0), timeout=10)
            wire = b""
            for amount in amounts:
                body = json.dumps({"jsonrpc": "2.0", "method": "counter.incr", "params": [amount]})
                wire += (
                    b"POST / HTTP/1.1\r\nHost: calc\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
                )
            sock.sendall(wire)
            return sock.close
        client = self.client()
        for amount in amounts:
            client.notify("counter.incr", amount)
        return client.close


Servers = dict[tuple[Carrier, type[Calc]], tuple[Calc, RpcServer]]


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    """One calc server per carrier and service version for the module (closing one costs
    its accept poll); each rig resets the state a test looks at."""
    running: Servers = {}
    yield running
    for _, server in running.values():
        server.close()


def build_rig(
    carrier: Carrier, servers: Servers, *, seed: int = SEED, service: type[Calc] = Calc
) -> Rig:
    key = (carrier, service)
    if key not in servers:
        calc = service()
        server = serve(
            calc,
            protocol=carrier.protocol,
            address=transports.get(carrier.scheme).example_address("calc"),
            framing=carrier.framing,
        )
        servers[key] = (calc, server)
    calc, server = servers[key]
    calc.counter.reset()
    server.requests_handled = 0
    engine = ProxyEngine(seed=seed)
    proxy = engine.create(
        "calc",
        listen=transports.get(carrier.scheme).example_address("proxy"),
        upstream=server.address,
        framing=carrier.framing,
        protocol=carrier.protocol,
        record_chunks=True,  # tests wait for frames to reach the proxy by their chunk events
    )
    return Rig(carrier, calc, server, engine, proxy)


def close_rig(rig: Rig) -> None:
    for client in rig.clients:
        client.close()
    rig.engine.close()  # closes every proxied connection; the server stays for the next test


@pytest.fixture
def carrier(request: pytest.FixtureRequest) -> Carrier:
    value: Carrier = request.param
    return value


@pytest.fixture
def rig(carrier: Carrier, servers: Servers) -> Iterator[Rig]:
    made = build_rig(carrier, servers)
    yield made
    close_rig(made)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)


def within_sigmas(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


# ---- drop ---------------------------------------------------------------------------


@by_carrier
def test_drop_loses_the_drawn_share_of_frames(rig: Rig) -> None:
    n, p = 300, 0.3
    rig.proxy.add_toxic("drop", stream="upstream", probability=p)
    close = rig.notify_incr([1] * n)
    try:
        wait_for(lambda: len(rig.decisions("drop")) == n, what="a decision per frame")
        passed = len(rig.decisions("drop", "pass"))
        wait_for(lambda: rig.calc.counter.get() == passed, what="every passed frame served")
    finally:
        close()
    dropped = len(rig.decisions("drop", "drop"))
    assert dropped + passed == n
    assert within_sigmas(dropped, n, p), f"{dropped} of {n} dropped, expected ~{n * p:.0f}"
    assert sorted(e["frame_index"] for e in rig.decisions("drop")) == list(range(n))
    time.sleep(0.05)
    assert rig.calc.counter.get() == passed, "a dropped frame reached the server"


@pytest.mark.parametrize("carrier", [CARRIERS[0]], ids=lambda c: c.id, indirect=True)
def test_dropped_call_times_out(rig: Rig) -> None:
    rig.proxy.add_toxic("drop", stream="downstream", probability=1.0)
    started = time.monotonic()
    with pytest.raises(TransportTimeout):
        rig.client().add(1, 2, timeout=0.3)
    assert time.monotonic() - started >= 0.29


def _drive(toxic_type: str, attributes: dict[str, Any], frames: int) -> list[bool]:
    """Run a toxic's ``process`` directly over ``frames`` frames; True where one was emitted."""
    out: list[bool] = []

    async def main() -> None:
        toxic = get_toxic_class(toxic_type)(**attributes)
        ctx = ToxicContext(
            rng=random.Random(SEED),
            record=lambda decision, **f: None,
            close=lambda: None,
            reset=lambda: None,
            direction="upstream",
            link_kind="frames",
            loop=asyncio.get_running_loop(),
        )
        for i in range(frames):
            emitted: list[Chunk] = []

            async def emit(c: Chunk, sink: list[Chunk] = emitted) -> None:
                sink.append(c)

            await toxic.process(ctx, Chunk(b"x", 0.0, i, True), emit)
            out.append(bool(emitted))

    asyncio.run(main())
    return out


def test_drop_correlation_makes_losses_bursty() -> None:
    p, c, n = 0.1, 0.8, 20_000
    kept = _drive("drop", {"probability": p, "correlation": c}, n)
    drops = [not k for k in kept]
    rate = sum(drops) / n
    expected = p / (1 - c * (1 - p))
    assert abs(rate - expected) < 0.03, (rate, expected)
    after_drop = [b for a, b in itertools.pairwise(drops) if a]
    conditional = sum(after_drop) / len(after_drop)
    assert abs(conditional - (p + c * (1 - p))) < 0.03
    independent = _drive("drop", {"probability": p}, n)
    assert within_sigmas(independent.count(False), n, p)


# ---- duplicate ----------------------------------------------------------------------


@by_carrier
def test_duplicate_applies_a_non_idempotent_call_twice(rig: Rig) -> None:
    rig.proxy.add_toxic("duplicate", stream="upstream", probability=1.0, delay_ms=20)
    client = rig.client()
    assert client.counter.incr(5) == 5
    wait_for(lambda: len(rig.calc.counter.effects()) == 2, what="the duplicate served")
    assert rig.effects() == [5, 5]
    assert [e["value"] for e in rig.calc.counter.effects()] == [5, 10]
    assert len(rig.decisions("duplicate", "duplicate")) == 1
    client.close()  # the duplicate's reply is stale: never read it as another answer


@pytest.mark.parametrize("carrier", BINRPC[:1], ids=lambda c: c.id, indirect=True)
def test_duplicate_probability_is_drawn(rig: Rig) -> None:
    n, p = 200, 0.25
    rig.proxy.add_toxic("duplicate", stream="upstream", probability=p)
    close = rig.notify_incr([1] * n)
    try:
        wait_for(lambda: len(rig.decisions("duplicate")) == n)
        copies = len(rig.decisions("duplicate", "duplicate"))
        wait_for(lambda: rig.calc.counter.get() == n + copies, what="originals and copies")
    finally:
        close()
    assert within_sigmas(copies, n, p)


# ---- reorder ------------------------------------------------------------------------


@by_carrier
def test_reorder_changes_order_but_loses_nothing(rig: Rig) -> None:
    n = 24
    rig.proxy.add_toxic("reorder", stream="upstream", window=8, max_hold_ms=2000)
    close = rig.notify_incr(list(range(n)))
    try:
        wait_for(lambda: len(rig.calc.counter.effects()) == n, what="every frame served")
    finally:
        close()
    served = rig.effects()
    assert sorted(served) == list(range(n)), "a frame was lost or invented"
    assert served != list(range(n)), "nothing was reordered"
    releases = rig.decisions("reorder", "reorder")
    assert sorted(e["frame_index"] for e in releases) == list(range(n))
    assert {e["reason"] for e in releases} == {"window"}


@pytest.mark.parametrize("carrier", [CARRIERS[0], CARRIERS[4]], ids=lambda c: c.id, indirect=True)
def test_reorder_pipelined_replies_still_match(rig: Rig) -> None:
    rig.proxy.add_toxic("reorder", stream="downstream", window=4)
    replies = rig.client().pipeline([("add", [i, 1000]) for i in range(8)])
    assert [r.result for r in replies] == [i + 1000 for i in range(8)]


@pytest.mark.parametrize("carrier", [CARRIERS[0], CARRIERS[4]], ids=lambda c: c.id, indirect=True)
def test_reorder_releases_a_lone_frame_after_max_hold(rig: Rig) -> None:
    rig.proxy.add_toxic("reorder", stream="upstream", window=8, max_hold_ms=150)
    started = time.monotonic()
    assert rig.client().add(2, 2) == 4
    assert time.monotonic() - started >= 0.14
    assert [e["reason"] for e in rig.decisions("reorder", "reorder")] == ["max_hold"]


@pytest.mark.parametrize("carrier", [CARRIERS[0], CARRIERS[4]], ids=lambda c: c.id, indirect=True)
def test_reorder_flushes_on_removal_and_on_eof(rig: Rig) -> None:
    rig.proxy.add_toxic("reorder", stream="upstream", window=100, max_hold_ms=60_000)
    close = rig.notify_incr([1, 2, 3])
    wait_for(lambda: len(rig.proxy.events(kinds=["chunk"])) >= 3, what="frames held")
    time.sleep(0.05)
    assert rig.calc.counter.get() == 0, "held frames leaked"
    rig.proxy.remove_toxic("reorder_upstream")
    wait_for(lambda: sorted(rig.effects()) == [1, 2, 3], what="flush on removal")
    close()
    rig.proxy.add_toxic("reorder", stream="upstream", window=100, max_hold_ms=60_000)
    close = rig.notify_incr([4, 5])
    time.sleep(0.1)
    close()  # EOF: the held frames leave before it
    wait_for(lambda: sorted(rig.effects()) == [1, 2, 3, 4, 5], what="flush on EOF")
    reasons = {e["reason"] for e in rig.decisions("reorder", "reorder")}
    assert reasons == {"removed", "eof"}


# ---- corrupt ------------------------------------------------------------------------


@by_carrier
def test_corrupt_reaches_the_client_typed_or_changed(rig: Rig) -> None:
    rig.proxy.add_toxic("corrupt", stream="downstream", probability=1.0)
    client = rig.client(timeout=0.5)
    value = "faultlab-" * 20
    outcomes: list[str] = []
    for _ in range(4):
        try:
            outcomes.append("same" if client.echo(value) == value else "changed")
        except (RpcError, RemoteProtocolError, TransportError) as exc:
            outcomes.append(type(exc).__name__)  # refused: typed, as it must be
            client.close()
    assert outcomes.count("same") < len(outcomes), outcomes
    flips = rig.decisions("corrupt", "corrupt")
    assert flips
    assert all(e["flips"] == 1 for e in flips)
    rig.proxy.remove_toxic("corrupt_downstream")
    client.close()
    assert client.echo(value) == value


@pytest.mark.parametrize(
    ("listen", "framing"),
    [("tcp://127.0.0.1:0", "length-prefix"), ("udp://127.0.0.1:0", None)],
    ids=["tcp-length-prefix", "udp-messages"],
)
def test_corrupt_keeps_frame_boundaries(listen: str, framing: str | None) -> None:
    """One bit per frame is flipped inside the payload; every frame keeps its size."""
    payloads = [bytes([i]) * (10 + i) for i in range(30)]
    with ProxyEngine(seed=SEED) as engine, transports.listen(listen) as up:
        proxy = engine.create("frames", listen=listen, upstream=up.address, framing=framing)
        proxy.add_toxic("corrupt", stream="upstream", probability=1.0)
        with transports.connect(proxy.address, timeout=10) as client:
            with up.accept(timeout=10) as server:
                send = open_channel(client, framing or "datagram")
                receive = open_channel(server, framing or "datagram")
                for payload in payloads:
                    send.send(payload)
                got = [receive.receive(timeout=5) for _ in payloads]
    for sent, received in zip(payloads, got, strict=True):
        assert len(received) == len(sent)
        assert sum(bin(a ^ b).count("1") for a, b in zip(sent, received, strict=True)) == 1


def test_corrupt_flips_the_journaled_bits_of_a_raw_stream() -> None:
    """On a raw byte stream (no framing) bytes are corrupted at ``rate``: count the bits."""
    with ProxyEngine(seed=SEED) as engine, transports.listen("tcp://127.0.0.1:0") as up:
        proxy = engine.create("raw", upstream=up.address)
        proxy.add_toxic("corrupt", stream="upstream", rate=0.01)
        payload = bytes(range(256)) * 256
        with transports.connect(proxy.address, timeout=10) as client:
            server = up.accept(timeout=10)
            with server:
                assert isinstance(client, ByteStream)
                assert isinstance(server, ByteStream)
                client.send(payload)
                client.send_eof()
                got = b""
                while len(got) < len(payload):
                    got += server.receive(65536, timeout=5)
    events = [e for e in proxy.events() if e["kind"] == "fault" and e["decision"] == "corrupt"]
    flips = sum(e["flips"] for e in events)
    bits = sum(bin(a ^ b).count("1") for a, b in zip(payload, got, strict=True))
    assert bits == flips
    assert within_sigmas(flips, len(payload), 0.01)


# ---- delay --------------------------------------------------------------------------


@by_carrier
def test_delay_holds_every_nth_message(rig: Rig) -> None:
    rig.proxy.add_toxic("delay", stream="upstream", delay_ms=200, every=2)
    client = rig.client()
    assert client.add(1, 1) == 2
    started = time.monotonic()
    assert client.add(2, 2) == 4  # the second request is delayed
    assert time.monotonic() - started >= 0.19
    delayed = rig.decisions("delay", "delay")
    assert len(delayed) == 1
    assert delayed[0]["delay_ms"] == 200


@pytest.mark.parametrize("carrier", [CARRIERS[0], CARRIERS[5]], ids=lambda c: c.id, indirect=True)
def test_delay_without_order_lets_later_frames_overtake(rig: Rig) -> None:
    rig.proxy.add_toxic("delay", stream="upstream", delay_ms=150, every=2, keep_order=False)
    close = rig.notify_incr([0, 1, 2, 3])
    try:
        wait_for(lambda: len(rig.calc.counter.effects()) == 4, what="every frame served")
    finally:
        close()
    assert rig.effects() == [0, 2, 1, 3]


@pytest.mark.parametrize("carrier", [CARRIERS[0]], ids=lambda c: c.id, indirect=True)
def test_delay_jitter_stays_in_bounds(rig: Rig) -> None:
    rig.proxy.add_toxic("delay", stream="upstream", delay_ms=50, jitter_ms=40)
    close = rig.notify_incr([1] * 20)
    try:
        wait_for(lambda: rig.calc.counter.get() == 20)
    finally:
        close()
    delays = [e["delay_ms"] for e in rig.decisions("delay", "delay")]
    assert len(delays) == 20
    assert all(10 <= d <= 90 for d in delays)
    assert len(set(delays)) > 1


# ---- partition ----------------------------------------------------------------------


@by_carrier
def test_partition_makes_a_call_time_out_within_its_deadline(rig: Rig) -> None:
    client = rig.client()
    # Connected first: on a loaded machine a bridged transport's first connection through the
    # proxy can take longer than the call's 0.4 s, and then the reply the partition must
    # swallow would never have been sent.
    assert client.add(0, 0) == 0
    rig.proxy.add_toxic("partition", stream="downstream")
    started, journal_started = time.monotonic(), rig.engine.journal.now()
    with pytest.raises(TransportTimeout):
        client.add(1, 2, timeout=0.4)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.39
    assert elapsed < 3.0, "the timeout did not fire near its deadline"
    deadline = time.monotonic() + 5.0  # the reply may reach the proxy after the give-up
    while not rig.decisions("partition", "blackhole") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rig.decisions("partition", "blackhole")
    closed = [e["t"] for e in rig.proxy.events(kinds=["connection_closed"])]
    assert all(t > journal_started + 0.39 for t in closed), "the partition closed a connection"
    rig.proxy.remove_toxic("partition_downstream")
    assert rig.client().add(2, 3) == 5


@pytest.mark.parametrize("carrier", [CARRIERS[0], CARRIERS[6]], ids=lambda c: c.id, indirect=True)
def test_partition_both_ways(rig: Rig) -> None:
    rig.proxy.add_toxic("partition", stream="upstream")
    rig.proxy.add_toxic("partition", stream="downstream")
    with pytest.raises(TransportTimeout):
        rig.client().add(1, 2, timeout=0.3)
    assert rig.calc.counter.get() == 0
    assert rig.server.requests_handled == 0, "the request crossed an upstream partition"


def test_partition_on_a_raw_byte_stream_holds_data_and_eof() -> None:
    with ProxyEngine(seed=SEED) as engine, transports.listen("tcp://127.0.0.1:0") as up:
        proxy = engine.create("raw", upstream=up.address)
        proxy.add_toxic("partition", stream="upstream")
        with transports.connect(proxy.address, timeout=10) as client:
            with up.accept(timeout=10) as server:
                client.send(b"lost")
                client.send_eof()
                with pytest.raises(TransportTimeout):
                    server.receive(timeout=0.3)
                proxy.remove_toxic("partition_upstream")
                with pytest.raises(EndOfStream):  # the held EOF goes on; the data is gone
                    server.receive(timeout=5)


# ---- slow_open ----------------------------------------------------------------------


@by_carrier
def test_slow_open_delays_the_first_call_only(rig: Rig) -> None:
    rig.proxy.add_toxic("slow_open", stream="upstream", delay_ms=250)
    client = rig.client()
    started = time.monotonic()
    assert client.add(1, 1) == 2
    assert time.monotonic() - started >= 0.24
    assert client.add(2, 2) == 4
    opened = rig.decisions("slow_open", "slow_open")
    assert [e["frame_index"] for e in opened] == [0]


@pytest.mark.parametrize("carrier", [CARRIERS[0]], ids=lambda c: c.id, indirect=True)
def test_slow_open_connection_mode_counts_from_the_open(rig: Rig) -> None:
    rig.proxy.add_toxic("slow_open", stream="upstream", delay_ms=300, mode="connection")
    client = rig.client()
    started = time.monotonic()
    assert client.add(1, 1) == 2
    assert time.monotonic() - started >= 0.29


def test_slow_open_on_a_raw_byte_stream() -> None:
    with ProxyEngine(seed=SEED) as engine, transports.listen("tcp://127.0.0.1:0") as up:
        proxy = engine.create("raw", upstream=up.address)
        proxy.add_toxic("slow_open", stream="upstream", delay_ms=200)
        with transports.connect(proxy.address, timeout=10) as client:
            with up.accept(timeout=10) as server:
                started = time.monotonic()
                client.send(b"hello")
                assert server.receive(5, timeout=5) == b"hello"
                assert time.monotonic() - started >= 0.19


# ---- fail_first ---------------------------------------------------------------------


@by_carrier
def test_fail_first_closes_then_recovers(rig: Rig) -> None:
    rig.proxy.add_toxic("fail_first", stream="upstream", count=2, scope="proxy")
    client = rig.client(timeout=2.0)
    for _ in range(2):
        with pytest.raises((TransportError, RemoteProtocolError)):
            client.add(1, 2)
        client.close()
    assert client.add(1, 2) == 3
    assert rig.server.requests_handled == 1
    assert [e["request"] for e in rig.decisions("fail_first", "fail")] == [1, 2]


@by_carrier
def test_fail_first_answers_natively_per_connection(rig: Rig) -> None:
    rig.proxy.add_toxic("fail_first", stream="upstream", mode="error", kind="unavailable")
    client = rig.client()
    with pytest.raises(ServiceUnavailable):
        client.add(1, 2)
    assert client.add(1, 2) == 3  # same connection: only its first request failed
    client.close()
    with pytest.raises(ServiceUnavailable):
        client.add(1, 2)  # a new connection fails first again
    assert rig.server.requests_handled == 1


@pytest.mark.parametrize("carrier", [CARRIERS[0]], ids=lambda c: c.id, indirect=True)
def test_fail_first_reset(rig: Rig) -> None:
    rig.proxy.add_toxic("fail_first", stream="upstream", mode="reset", scope="proxy")
    client = rig.client()
    with pytest.raises((BrokenResourceError, EndOfStream)):
        client.add(1, 2)
    client.close()
    assert client.add(1, 2) == 3


# ---- rpc_error ----------------------------------------------------------------------

ERROR_CARRIERS = [
    Carrier("tcp", "jsonrpc", "http"),
    Carrier("tcp", "jsonrpc", "lines"),
    Carrier("udp", "jsonrpc"),
    Carrier("tcp", "xmlrpc", "http"),
    Carrier("tcp", "xmlrpc", "length-prefix"),
    Carrier("tcp", "msgpackrpc", "msgpack-stream"),
    Carrier("shm", "msgpackrpc"),
    Carrier("tcp", "binrpc", "length-prefix"),
    Carrier("mq", "binrpc"),
    Carrier("tcp", "rest", "http"),
]
KIND_CLASSES = [
    ("unavailable", ServiceUnavailable),
    ("internal_error", InternalError),
    ("method_not_found", MethodNotFound),
]


@pytest.mark.parametrize("carrier", ERROR_CARRIERS, ids=lambda c: c.id, indirect=True)
@pytest.mark.parametrize("stream", ["upstream", "downstream"])
def test_rpc_error_gives_the_typed_native_error(rig: Rig, stream: str) -> None:
    client = rig.client()
    for kind, cls in KIND_CLASSES:
        method = "add" if stream == "upstream" else "*"
        rig.proxy.add_toxic("rpc_error", stream=stream, kind=kind, method=method)
        with pytest.raises(cls):
            client.add(1, 2)
        rig.proxy.clear()
    assert client.add(1, 2) == 3  # the connection is still good
    served = rig.server.requests_handled
    assert served == (1 if stream == "upstream" else len(KIND_CLASSES) + 1)
    injected = rig.decisions("rpc_error", "rpc_error")
    assert [e["error_kind"] for e in injected] == [k for k, _ in KIND_CLASSES]


@pytest.mark.parametrize(
    "carrier", [ERROR_CARRIERS[0], ERROR_CARRIERS[7]], ids=lambda c: c.id, indirect=True
)
def test_rpc_error_matches_method_and_counts(rig: Rig) -> None:
    rig.proxy.add_toxic("rpc_error", stream="upstream", method="a*", nth=2)
    client = rig.client()
    assert client.add(1, 1) == 2
    assert client.div(4, 2) == 2.0  # does not match the glob, not counted
    with pytest.raises(ServiceUnavailable):
        client.add(1, 2)
    assert client.add(1, 3) == 4
    rig.proxy.clear()
    rig.proxy.add_toxic("rpc_error", stream="upstream", every=2, kind="internal_error")
    outcomes = []
    for i in range(4):
        try:
            outcomes.append(client.add(i, 0))
        except InternalError:
            outcomes.append(None)
    assert outcomes == [0, None, 2, None]


@pytest.mark.parametrize("carrier", [CARRIERS[0]], ids=lambda c: c.id, indirect=True)
def test_rpc_error_custom_code_and_message(rig: Rig) -> None:
    rig.proxy.add_toxic("rpc_error", stream="upstream", kind="internal_error", code=-32099,
                        message="disk on fire")  # fmt: skip
    with pytest.raises(InternalError) as info:
        rig.client().add(1, 2)
    assert info.value.code == -32099
    assert "disk on fire" in str(info.value)


@pytest.mark.parametrize("carrier", [CARRIERS[4]], ids=lambda c: c.id, indirect=True)
def test_rpc_error_proxy_scope_counts_across_connections(rig: Rig) -> None:
    rig.proxy.add_toxic("rpc_error", stream="upstream", nth=2, scope="proxy")
    first, second = rig.client(), rig.client()
    assert first.add(1, 1) == 2
    with pytest.raises(ServiceUnavailable):
        second.add(1, 1)
    assert first.add(1, 1) == 2


# ---- version_skew -------------------------------------------------------------------


@pytest.mark.parametrize("carrier", BINRPC, ids=lambda c: c.id, indirect=True)
@pytest.mark.parametrize("stream", ["upstream", "downstream"])
def test_version_skew_gives_a_typed_version_mismatch(rig: Rig, stream: str) -> None:
    rig.proxy.add_toxic("version_skew", stream=stream, to_version=2)
    client = rig.client()
    with pytest.raises(VersionMismatch):
        client.add(1, 2)
    skews = rig.decisions("version_skew", "skew")
    assert skews
    assert skews[0]["changes"] == ["version 1->2"]
    rig.proxy.clear()
    client.close()
    assert rig.client().add(1, 2) == 3


FIELD_CARRIERS = [
    Carrier("tcp", "jsonrpc", "http"),
    Carrier("unixgram", "jsonrpc"),
    Carrier("tcp", "msgpackrpc", "msgpack-stream"),
    Carrier("tcp", "binrpc", "length-prefix"),
    Carrier("tcp", "xmlrpc", "http"),
    Carrier("tcp", "rest", "http"),
]


@pytest.mark.parametrize("carrier", FIELD_CARRIERS, ids=lambda c: c.id, indirect=True)
def test_version_skew_drops_a_result_field_and_stays_compatible(
    carrier: Carrier, servers: Servers
) -> None:
    rig = build_rig(carrier, servers, service=CalcV2)
    try:
        client = rig.client()
        assert client.about() == {"service": "calc", "version": 2, "precision": "double"}
        rig.proxy.add_toxic("version_skew", stream="downstream", drop_field="precision")
        assert client.about() == {"service": "calc", "version": 2}  # what a v1 server says
        rig.proxy.clear()
        rig.proxy.add_toxic("version_skew", stream="downstream", rename_field="version:v")
        assert client.about() == {"service": "calc", "v": 2, "precision": "double"}
        assert client.add(1, 2) == 3  # a scalar result has no field: untouched
        assert len(rig.decisions("version_skew", "skew")) == 2
    finally:
        close_rig(rig)


@pytest.mark.parametrize(
    "carrier",
    [c for c in FIELD_CARRIERS if c.protocol not in ("xmlrpc", "msgpackrpc")],  # positional
    ids=lambda c: c.id,
    indirect=True,
)
def test_version_skew_renamed_param_is_refused_typed(carrier: Carrier, servers: Servers) -> None:
    rig = build_rig(carrier, servers)
    try:
        client = rig.client()
        rig.proxy.add_toxic("version_skew", stream="upstream", rename_field="a:x", method="add")
        with pytest.raises(InvalidParams):  # a v1 server does not know the v2 name
            client.call("add", a=1, b=2)
        assert client.call("div", a=4, b=2) == 2.0  # not matched by the method glob
        assert [e["decision"] for e in rig.decisions("version_skew")] == ["skew", "pass"]
    finally:
        close_rig(rig)


# ---- determinism --------------------------------------------------------------------


@pytest.mark.parametrize("carrier", [CARRIERS[0], CARRIERS[7]], ids=lambda c: c.id, indirect=True)
def test_same_seed_same_decisions(carrier: Carrier, servers: Servers) -> None:
    def run(seed: int) -> list[tuple[Any, ...]]:
        rig = build_rig(carrier, servers, seed=seed)
        try:
            rig.proxy.add_toxic("drop", stream="upstream", probability=0.5)
            rig.proxy.add_toxic("corrupt", stream="upstream", probability=0.3)
            rig.proxy.add_toxic("reorder", stream="upstream", window=4, max_hold_ms=5000)
            close = rig.notify_incr(list(range(40)))
            try:
                wait_for(lambda: len(rig.decisions("drop")) == 40)
            finally:
                close()  # EOF flushes the last window
            wait_for(lambda: len(rig.decisions("reorder")) == len(rig.decisions("drop", "pass")))
            return [
                (e["type"], e["decision"], e["frame_index"], e.get("positions"), e.get("position"))
                for e in rig.proxy.events()
                if e["kind"] == "fault" and e["decision"] != "toxicity"
            ]
        finally:
            close_rig(rig)

    first, again, other = run(11), run(11), run(12)
    assert first == again
    assert first != other


# ---- refusals -----------------------------------------------------------------------

FRAME_TOXICS: dict[str, dict[str, Any]] = {
    "drop": {"probability": 0.5},
    "duplicate": {},
    "reorder": {},
    "delay": {"delay_ms": 10},
    "fail_first": {},
    "rpc_error": {"protocol": "jsonrpc"},
    "version_skew": {"protocol": "binrpc", "to_version": 2},
}


@pytest.fixture
def raw_proxy() -> Iterator[ProxyHandle]:
    with ProxyEngine(seed=SEED) as engine, transports.listen("tcp://127.0.0.1:0") as up:
        yield engine.create("raw", upstream=up.address)


@pytest.mark.parametrize("toxic", sorted(FRAME_TOXICS))
def test_frame_toxics_are_refused_on_raw_byte_streams(raw_proxy: ProxyHandle, toxic: str) -> None:
    with pytest.raises(ProxyError, match="raw byte stream: set a framing") as info:
        raw_proxy.add_toxic(toxic, **FRAME_TOXICS[toxic])
    assert info.value.status == 400
    assert raw_proxy.toxics() == []


@pytest.mark.parametrize("toxic", ["corrupt", "partition", "slow_open"])
def test_byte_toxics_are_accepted_on_raw_byte_streams(raw_proxy: ProxyHandle, toxic: str) -> None:
    raw_proxy.add_toxic(toxic)
    assert [t["type"] for t in raw_proxy.toxics()] == [toxic]


def test_protocol_aware_toxics_refuse_clearly() -> None:
    with ProxyEngine(seed=SEED) as engine, transports.listen("tcp://127.0.0.1:0") as up:
        framed = engine.create("framed", upstream=up.address, framing="length-prefix")
        with pytest.raises(ProxyError, match="needs the RPC protocol"):
            framed.add_toxic("rpc_error", stream="upstream")
        with pytest.raises(ProxyError, match="needs the RPC protocol"):
            framed.add_toxic("fail_first", mode="error")
        framed.add_toxic("fail_first")  # close needs no protocol
        with pytest.raises(ProxyError, match="binrpc's header version byte"):
            framed.add_toxic("version_skew", protocol="jsonrpc", to_version=3)
        with pytest.raises(ProxyError, match="replies carry no method name"):
            framed.add_toxic("rpc_error", protocol="binrpc", method="add")
        with pytest.raises(ProxyError, match="rest needs framing='http'"):
            framed.add_toxic("rpc_error", stream="upstream", protocol="rest")
        framed.add_toxic("rpc_error", stream="upstream", protocol="binrpc", method="add")
        with pytest.raises(ProxyError, match="needs the RPC protocol"):
            framed.update_toxic("rpc_error_upstream", protocol="")
        lines = engine.create("lines", upstream=up.address, framing="lines")
        with pytest.raises(ProxyError, match="binrpc is not framed with 'lines'"):
            lines.add_toxic("rpc_error", stream="upstream", protocol="binrpc")
        http = engine.create("http", upstream=up.address, framing="http")
        with pytest.raises(ProxyError, match="not carried over HTTP"):
            http.add_toxic("version_skew", protocol="binrpc", drop_field="x")


@pytest.mark.parametrize(
    ("toxic", "attributes", "message"),
    [
        ("drop", {"probability": 1.5}, "must be <= 1.0"),
        ("drop", {"correlation": -0.1}, "must be >= 0.0"),
        ("reorder", {"window": 1}, "must be >= 2"),
        ("delay", {"delay_ms": 10**9}, "must be <="),
        ("corrupt", {"rate": 2}, "must be <= 1.0"),
        ("rpc_error", {"kind": "bogus", "protocol": "binrpc"}, "must be one of"),
        ("rpc_error", {"protocol": "corba"}, "must be one of"),
        ("fail_first", {"mode": "explode"}, "must be one of"),
        ("fail_first", {"count": 0}, "must be >= 1"),
        ("slow_open", {"mode": "later"}, "must be one of"),
        ("version_skew", {"protocol": "binrpc"}, "nothing to skew"),
        ("version_skew", {"protocol": "binrpc", "rename_field": "a"}, "rename_field must be"),
        ("version_skew", {"protocol": "binrpc", "to_version": 256}, "must be <= 255"),
    ],
)
def test_absurd_attributes_are_refused(
    toxic: str, attributes: dict[str, Any], message: str
) -> None:
    with ProxyEngine(seed=SEED) as engine, transports.listen("udp://127.0.0.1:0") as up:
        proxy = engine.create("msg", listen="udp://127.0.0.1:0", upstream=up.address)
        with pytest.raises(ProxyError, match=message) as info:
            proxy.add_toxic(toxic, stream="upstream", **attributes)
        assert info.value.status == 400


@pytest.mark.parametrize(
    ("protocol", "framing"),
    [("binrpc", None), ("msgpackrpc", None), ("jsonrpc", "lines"), ("xmlrpc", "length-prefix")],
)
def test_a_lab_pair_tells_its_proxy_the_protocol(protocol: str, framing: str | None) -> None:
    """rpc_error needs no ``protocol`` attribute on a Lab pair: the pair's proxy knows it."""
    with Lab(seed=SEED) as lab:
        pair = lab.pair(protocol=protocol, framing=framing)
        pair.proxy.add_toxic("rpc_error", stream="upstream", kind="unavailable", method="add")
        with pytest.raises(ServiceUnavailable):
            pair.client.add(1, 2)
        assert pair.client.echo("still served") == "still served"  # only add is answered
        injected = [
            e
            for e in pair.proxy.events()
            if e["kind"] == "fault" and e["type"] == "rpc_error" and e["decision"] == "rpc_error"
        ]
        assert [e["protocol"] for e in injected] == [protocol]
