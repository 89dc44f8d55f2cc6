"""A ``udp://`` proxy relays plain datagrams between a client and a server with no faultlab
code on either side: plain ``socket.SOCK_DGRAM`` sockets, a DNS query built by hand.

Each client address is a flow with its own upstream socket; flows end when idle, the flow
bound evicts the idlest, a full queue drops (and counts) datagrams, and faultlab's own
session protocol still works beside it. Time bounds are one-sided: a tight lower bound, a
loose upper one.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from faultlab import transports
from faultlab.errors import EndOfStream
from faultlab.proxy import ProxyEngine, ProxyHandle
from faultlab.proxy.proxy import InvalidProxyRequest, ListenFailed
from faultlab.proxy.remote import RemoteToxiproxy, ToxiproxyBadRequest
from faultlab.proxy.server import ApiServer

SEED = 1616
Handler = Callable[[bytes], bytes | list[bytes] | None]


class PlainServer:
    """A UDP server with no faultlab code: one plain socket and a thread.

    ``handler`` turns a request into the reply (or replies, or None: no answer); every
    datagram is recorded with its source address.
    """

    def __init__(self, handler: Handler | None = None, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.05)
        self.address = self.sock.getsockname()
        self.uri = f"udp://127.0.0.1:{self.address[1]}"
        self.handler: Handler = handler or (lambda data: data)
        self.received: list[tuple[bytes, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.received.append((data, addr))
            reply = self.handler(data)
            for each in reply if isinstance(reply, list) else [reply]:
                if each is not None:
                    self.sock.sendto(each, addr)

    def datagrams(self) -> list[tuple[bytes, Any]]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[bytes, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.datagrams()
            if len(got) >= count:
                return got
            time.sleep(0.005)
        raise AssertionError(f"the server got {len(self.datagrams())} datagrams, not {count}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def engine() -> Iterator[ProxyEngine]:
    with ProxyEngine(seed=SEED) as eng:
        yield eng


@pytest.fixture
def servers() -> Iterator[Callable[..., PlainServer]]:
    made: list[PlainServer] = []

    def make(handler: Handler | None = None, port: int = 0) -> PlainServer:
        server = PlainServer(handler, port)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture
def clients() -> Iterator[Callable[[], socket.socket]]:
    made: list[socket.socket] = []

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        made.append(sock)
        return sock

    yield make
    for sock in made:
        sock.close()


def target(proxy: ProxyHandle) -> tuple[str, int]:
    """Where a plain client sends: the proxy's listen address."""
    parts = urlsplit(proxy.listen)
    assert parts.scheme == "udp"
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


def udp_proxy(
    engine: ProxyEngine, server: PlainServer, query: str = "", *, chunks: bool = False
) -> ProxyHandle:
    listen = "udp://127.0.0.1:0" + (f"?{query}" if query else "")
    name = f"udp{time.monotonic_ns()}"
    return engine.create(name, listen=listen, upstream=server.uri, record_chunks=chunks)


def kinds(proxy: ProxyHandle, kind: str) -> list[dict[str, Any]]:
    return [e for e in proxy.events() if e["kind"] == kind]


def wait_event(
    proxy: ProxyHandle, kind: str, timeout: float = 5.0, **fields: Any
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in kinds(proxy, kind):
            if all(event.get(k) == v for k, v in fields.items()):
                return event
        time.sleep(0.01)
    raise AssertionError(f"no {kind} event with {fields} within {timeout} s")


# ---- plain datagrams -------------------------------------------------------------------


def test_plain_client_and_server_exchange_datagrams(
    engine: ProxyEngine,
    servers: Callable[..., PlainServer],
    clients: Callable[[], socket.socket],
) -> None:
    server = servers()
    proxy = udp_proxy(engine, server, chunks=True)
    client = clients()
    for payload in (b"hello", b"", b"x" * 1400, bytes(range(256)) * 255 + b"y" * 227):
        client.sendto(payload, target(proxy))
        reply, source = client.recvfrom(65535)
        assert reply == payload
        assert source == target(proxy)  # the answer comes from the address the client used
    assert len(payload) == 65507  # the largest UDP payload over IPv4 went through
    sources = {addr for _, addr in server.datagrams()}
    assert len(sources) == 1
    assert sources != {client.getsockname()}  # the server sees the proxy's socket
    [conn] = kinds(proxy, "connection")
    assert conn["client"] == str(client.getsockname())
    sizes = [e["size"] for e in kinds(proxy, "chunk") if e["direction"] == "upstream"]
    assert sizes == [5, 0, 1400, 65507]  # one frame per datagram


def _flipped_bits(a: bytes, b: bytes) -> int:
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize(
    "toxic",
    ["latency", "drop", "duplicate", "corrupt", "reorder", "bandwidth"],
)
def test_toxics_act_on_each_datagram(
    toxic: str,
    engine: ProxyEngine,
    servers: Callable[..., PlainServer],
    clients: Callable[[], socket.socket],
) -> None:
    server = servers(lambda data: None)  # a sink: the test looks at what arrives
    proxy = udp_proxy(engine, server)
    client = clients()
    payloads = [bytes([i]) * 1000 for i in range(5)]
    attributes: dict[str, Any] = {
        "latency": {"latency": 150},
        "drop": {"probability": 1.0},
        "duplicate": {"probability": 1.0},
        "corrupt": {"probability": 1.0},
        "reorder": {"window": 5, "max_hold_ms": 2000},
        "bandwidth": {"rate": 10},  # 10 KB/s: 1000 B every 0.1 s
    }[toxic]
    proxy.add_toxic(toxic, stream="upstream", **attributes)
    started = time.monotonic()
    for payload in payloads:
        client.sendto(payload, target(proxy))
    if toxic == "drop":
        time.sleep(0.5)
        assert server.datagrams() == []
        drops = [e for e in kinds(proxy, "fault") if e["decision"] == "drop"]
        assert [e["frame_index"] for e in drops] == [0, 1, 2, 3, 4]
        return
    expected = 10 if toxic == "duplicate" else 5
    got = [data for data, _ in server.wait_for(expected)]
    elapsed = time.monotonic() - started
    time.sleep(0.1)
    assert len(server.datagrams()) == expected  # nothing more than the toxic made
    if toxic == "latency":
        assert elapsed >= 0.149
        assert got == payloads
    elif toxic == "duplicate":
        assert sorted(got) == sorted(payloads * 2)
    elif toxic == "corrupt":
        assert [_flipped_bits(a, b) for a, b in zip(payloads, got, strict=True)] == [1] * 5
    elif toxic == "reorder":
        assert sorted(got) == payloads  # every datagram, in the seeded order
        released = [e for e in kinds(proxy, "fault") if e["decision"] == "reorder"]
        assert len(released) == 5
    elif toxic == "bandwidth":
        assert elapsed >= 0.45  # 5 x 1000 B at 10 KB/s, the first one included
        assert got == payloads
    assert elapsed < 5


# ---- DNS ---------------------------------------------------------------------------------


def dns_query(query_id: int, name: str) -> bytes:
    """An RFC 1035 query for ``name``'s A record, recursion desired."""
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(p)]) + p.encode("ascii") for p in name.split("."))
    return header + labels + b"\x00" + struct.pack("!HH", 1, 1)


def dns_responder(zone: dict[str, str]) -> Handler:
    """A tiny authoritative server: A records from ``zone``, NXDOMAIN for the rest."""

    def answer(query: bytes) -> bytes:
        query_id, _flags, _qd, _an, _ns, _ar = struct.unpack("!HHHHHH", query[:12])
        labels, end = [], 12
        while query[end]:
            labels.append(query[end + 1 : end + 1 + query[end]].decode("ascii"))
            end += query[end] + 1
        question = query[12 : end + 5]  # the name, its zero byte, QTYPE and QCLASS
        address = zone.get(".".join(labels))
        if address is None:
            return struct.pack("!HHHHHH", query_id, 0x8183, 1, 0, 0, 0) + question
        record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
        return struct.pack("!HHHHHH", query_id, 0x8180, 1, 1, 0, 0) + question + record

    return answer


def parse_response(response: bytes) -> tuple[int, int, str | None]:
    """(id, rcode, the first A record or None), as a stub resolver reads them."""
    query_id, flags, qdcount, ancount, _ns, _ar = struct.unpack("!HHHHHH", response[:12])
    assert flags & 0x8000, "not a response"
    end = 12
    for _ in range(qdcount):
        while response[end]:
            end += response[end] + 1
        end += 5
    if not ancount:
        return query_id, flags & 0xF, None
    rtype, _class, _ttl, length = struct.unpack("!HHIH", response[end + 2 : end + 12])
    assert rtype == 1
    assert length == 4
    return query_id, flags & 0xF, socket.inet_ntoa(response[end + 12 : end + 16])


def resolve(client: socket.socket, proxy: ProxyHandle, query_id: int, name: str) -> Any:
    client.sendto(dns_query(query_id, name), target(proxy))
    while True:
        response = client.recv(512)
        got_id, rcode, address = parse_response(response)
        if got_id == query_id:  # a resolver ignores answers to other queries
            return rcode, address


def test_dns_request_and_response_through_the_proxy(
    engine: ProxyEngine,
    servers: Callable[..., PlainServer],
    clients: Callable[[], socket.socket],
) -> None:
    server = servers(dns_responder({"db.faultlab.test": "192.0.2.7"}))
    proxy = udp_proxy(engine, server)
    client = clients()
    assert resolve(client, proxy, 0x1234, "db.faultlab.test") == (0, "192.0.2.7")
    assert resolve(client, proxy, 0x1235, "nope.faultlab.test") == (3, None)  # NXDOMAIN

    # A lost query: the resolver times out, and its retry is answered.
    proxy.add_toxic("drop", name="lost", stream="upstream", probability=1.0)
    client.settimeout(0.3)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        resolve(client, proxy, 0x1236, "db.faultlab.test")
    assert time.monotonic() - started >= 0.29
    proxy.remove_toxic("lost")
    client.settimeout(5)
    assert resolve(client, proxy, 0x1236, "db.faultlab.test") == (0, "192.0.2.7")

    # A slow, duplicated answer: it arrives late, twice, and the resolver takes the first.
    proxy.add_toxic("latency", stream="downstream", latency=100)
    proxy.add_toxic("duplicate", stream="downstream", probability=1.0)
    started = time.monotonic()
    assert resolve(client, proxy, 0x1237, "db.faultlab.test") == (0, "192.0.2.7")
    assert time.monotonic() - started >= 0.099
    assert parse_response(client.recv(512))[0] == 0x1237  # the copy
    queries = [data for data, _ in server.datagrams()]
    assert len(queries) == 4  # the dropped query never reached the server
    decisions = {e["decision"] for e in kinds(proxy, "fault")}
    assert {"drop", "delay", "duplicate"} <= decisions


# ---- flows ---------------------------------------------------------------------------------


def test_each_client_gets_its_own_upstream_socket(
    engine: ProxyEngine,
    servers: Callable[..., PlainServer],
    clients: Callable[[], socket.socket],
) -> None:
    server = servers()
    proxy = udp_proxy(engine, server)
    many = [clients() for _ in range(20)]
    for round_ in range(2):
        for i, client in enumerate(many):
            client.sendto(f"{i}:{round_}".encode(), target(proxy))
        for i, client in enumerate(many):
            assert client.recv(100) == f"{i}:{round_}".encode()  # its own answer only
    by_payload = dict(server.datagrams())
    ports = {by_payload[f"{i}:0".encode()] for i in range(20)}
    assert len(ports) == 20  # distinct source ports: one upstream socket per client
    for i in range(20):  # a flow keeps its socket
        assert by_payload[f"{i}:0".encode()] == by_payload[f"{i}:1".encode()]
    assert len(kinds(proxy, "connection")) == 20
    assert proxy.connections() == 20


def test_an_idle_flow_ends_after_its_timeout(
    engine: ProxyEngine,
    servers: Callable[..., PlainServer],
    clients: Callable[[], socket.socket],
) -> None:
    server = servers()
    proxy = udp_proxy(engine, server, "idle_timeout=0.3")
    client = clients()
    client.sendto(b"one", target(proxy))
    assert client.recv(10) == b"one"
    answered = time.monotonic()
    closed = wait_event(proxy, "udp_flow_closed")
    assert time.monotonic() - answered >= 0.29
    assert closed["reason"] == "idle"
    assert closed["idle"] >= 0.3
    assert (closed["datagrams_in"], closed["datagrams_out"]) == (1, 1)
    wait_event(proxy, "connection_closed", connection=closed["connection"])
    assert proxy.connections() == 0
    client.sendto(b"two", target(proxy))  # a new flow, with a new upstream socket
    assert client.recv(10) == b"two"
    first, second = (addr for _, addr in server.datagrams())
    assert first != second
    assert len(kinds(proxy, "connection")) == 2


def test_a_flow_whose_toxic_holds_a_datagram_outlives_its_idle_timeout(
    engine: ProxyEngine,
    servers: Callable[..., PlainServer],
    clients: Callable[[], socket.socket],
) -> None:
    server = servers()
    proxy = udp_proxy(engine, server, "idle_timeout=0.2")
    proxy.add_toxic("latency", stream="downstream", latency=700)
    client = clients()
    started = time.monotonic()
    client.sendto(b"slow", target(proxy))
    assert client.recv(10) == b"slow"  # the reply waited 0.7 s in the toxic, and arrived
    assert time.monotonic() - started >= 0.69
    closed = wait_event(proxy, "udp_flow_closed")
    assert closed["reason"] == "idle"


def test_the_flow_bound_evicts_the_idlest_flow(
    engine: ProxyEngine,
    servers: Callable[..., PlainServer],
    clients: Callable[[], socket.socket],
) -> None:
    server = servers()
    proxy = udp_proxy(engine, server, "max_flows=2")
    a, b, c = clients(), clients(), clients()
    for client in (a, b, c):
        client.sendto(b"hi", target(proxy))
        assert client.recv(10) == b"hi"
        time.sleep(0.02)
    evicted = wait_event(proxy, "udp_flow_closed", reason="evicted")
    assert evicted["client"] == str(a.getsockname())  # the idlest went
    assert proxy.connections() == 2
    b.sendto(b"again", target(proxy))
    assert b.recv(10) == b"again"
    a.sendto(b"back", target(proxy))  # a comes back: a new flow, and c is now the idlest
    assert a.recv(10) == b"back"
    sources = [addr for _, addr in server.datagrams()]
    assert sources[3] == sources[1]  # b kept its upstream socket
    assert sources[4] != sources[0]  # a got a new one
    evictions = [e["client"] for e in kinds(proxy, "udp_flow_closed")]
    assert evictions == [str(a.getsockname()), str(c.getsockname())]


def test_a_full_queue_drops_and_counts_datagrams(
    engine: ProxyEngine,
    servers: Callable[..., PlainServer],
    clients: Callable[[], socket.socket],
) -> None:
    """UDP has no backpressure: past the link's bound and the flow's queue, datagrams are
    dropped, counted and journaled (never buffered without bound)."""
    server = servers(lambda data: None)
    proxy = udp_proxy(engine, server, "queue=4&queue_bytes=262144")
    # 1200 KB/s: 20 datagrams of 60 KB a second, slow enough for the server to read them all
    proxy.add_toxic("bandwidth", stream="upstream", rate=1200)
    client = clients()
    sent = 40
    for i in range(sent):
        client.sendto(bytes([i]) * 60000, target(proxy))
    overflow = wait_event(proxy, "udp_overflow")
    assert overflow["side"] == "client"
    assert (overflow["queue"], overflow["queue_bytes"]) == (4, 262144)
    arrived, deadline = -1, time.monotonic() + 10
    while arrived != len(server.datagrams()) and time.monotonic() < deadline:
        arrived = len(server.datagrams())
        time.sleep(0.3)  # what was kept drains through the bandwidth toxic
    proxy.delete()
    closed = wait_event(proxy, "udp_flow_closed")
    assert closed["reason"] == "stopped"
    assert closed["dropped_client"] > 0
    # Every datagram the proxy received and did not drop was relayed (the kernel may lose
    # some before the proxy reads them: UDP does not promise delivery, nor do we).
    assert 20 <= arrived == closed["datagrams_in"] - closed["dropped_client"]


def test_a_flood_of_replies_is_bounded_on_the_server_side(
    engine: ProxyEngine,
    servers: Callable[..., PlainServer],
    clients: Callable[[], socket.socket],
) -> None:
    server = servers(lambda data: [bytes([i]) * 60000 for i in range(40)])
    proxy = udp_proxy(engine, server, "queue=2&queue_bytes=131072")
    proxy.add_toxic("bandwidth", stream="downstream", rate=1200)
    client = clients()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    client.sendto(b"flood me", target(proxy))
    overflow = wait_event(proxy, "udp_overflow")
    assert overflow["side"] == "server"
    assert overflow["connection"] == 0
    assert client.recv(65535) == bytes([0]) * 60000  # the first reply still came through
    proxy.delete()
    closed = wait_event(proxy, "udp_flow_closed")
    assert closed["datagrams_in"] == 1
    assert closed["dropped_server"] > 0
    assert closed["dropped_client"] == 0


def test_disable_and_enable_keep_the_address_and_the_options(
    engine: ProxyEngine,
    servers: Callable[..., PlainServer],
    clients: Callable[[], socket.socket],
) -> None:
    server = servers()
    proxy = udp_proxy(engine, server, "idle_timeout=30&max_flows=8")
    listen = proxy.listen
    client = clients()
    client.sendto(b"before", target(proxy))
    assert client.recv(10) == b"before"
    proxy.disable()
    assert wait_event(proxy, "udp_flow_closed")["reason"] == "stopped"
    assert proxy.connections() == 0
    proxy.enable()
    assert proxy.listen == listen  # the same port, the options kept
    client.sendto(b"after", target(proxy))
    assert client.recv(10) == b"after"
    assert len(kinds(proxy, "connection")) == 2


def test_an_upstream_that_refuses_ends_the_flow(
    engine: ProxyEngine, clients: Callable[[], socket.socket]
) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now: the kernel answers ICMP port unreachable
    proxy = engine.create("refused", listen="udp://127.0.0.1:0", upstream=f"udp://127.0.0.1:{port}")
    client = clients()
    client.sendto(b"anyone?", target(proxy))
    error = wait_event(proxy, "peer_error", side="server")
    assert "refused" in error["error"].lower()
    closed = wait_event(proxy, "udp_flow_closed")
    assert closed["reason"] == "upstream_refused"
    client.sendto(b"still?", target(proxy))  # the next datagram opens a new flow
    wait_event(proxy, "connection", connection=1)


# ---- faultlab's own udp:// sessions ----------------------------------------------------------


def test_a_faultlab_session_still_works_and_its_late_bye_opens_no_flow(
    engine: ProxyEngine,
) -> None:
    with transports.listen("udp://127.0.0.1:0") as upstream:
        proxy = engine.create("session", listen="udp://127.0.0.1:0", upstream=upstream.address)
        client = transports.connect(proxy.address, timeout=5)
        server = upstream.accept(timeout=5)
        client.send(b"x" * 200_000)  # fragmented, reassembled, relayed as one message
        assert server.receive(timeout=5) == b"x" * 200_000
        server.close()
        with pytest.raises(EndOfStream):
            client.receive(timeout=5)
        time.sleep(0.1)
        client.close()  # its BYE reaches a proxy whose session is over
        time.sleep(0.3)
    assert len(kinds(proxy, "udp_session")) == 1
    assert len(kinds(proxy, "connection")) == 1  # the stray BYE opened no plain flow
    assert kinds(proxy, "udp_flow_closed") == []


def test_with_session_off_the_session_protocol_is_relayed_as_plain_datagrams(
    engine: ProxyEngine,
) -> None:
    with transports.listen("udp://127.0.0.1:0") as upstream:
        proxy = engine.create(
            "raw",
            listen="udp://127.0.0.1:0?session=off",
            upstream=upstream.address,
            record_chunks=True,
        )
        with ThreadPoolExecutor(1) as pool:
            accepting = pool.submit(upstream.accept, timeout=5)
            client = transports.connect(proxy.address, timeout=5)
            server = accepting.result(timeout=10)
        with client, server:
            client.send(b"ping")
            assert server.receive(timeout=5) == b"ping"
            server.send(b"pong")
            assert client.receive(timeout=5) == b"pong"
    assert kinds(proxy, "udp_session") == []
    sizes = [e["size"] for e in kinds(proxy, "chunk") if e["direction"] == "upstream"]
    assert sizes[:2] == [7, 11]  # the HELLO, then the message with its 7-byte header


# ---- configuration and the HTTP API --------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "upstream", "message"),
    [
        ("udp://127.0.0.1:0?idle_timeout=0", "udp://127.0.0.1:9", "idle_timeout must be"),
        ("udp://127.0.0.1:0?idle_timeout=nan", "udp://127.0.0.1:9", "idle_timeout must be"),
        ("udp://127.0.0.1:0?max_flows=-1", "udp://127.0.0.1:9", "max_flows must be"),
        ("udp://127.0.0.1:0?queue_bytes=10", "udp://127.0.0.1:9", "queue_bytes must be"),
        ("udp://127.0.0.1:0?session=maybe", "udp://127.0.0.1:9", "session must be"),
        ("udp://127.0.0.1:0?idle=5", "udp://127.0.0.1:9", "unknown udp option 'idle'"),
        ("udp://127.0.0.1:0", "udp://127.0.0.1:9?max_flows=3", "belong on the listen"),
    ],
)
def test_bad_udp_options_are_refused_before_anything_binds(
    engine: ProxyEngine, listen: str, upstream: str, message: str
) -> None:
    with pytest.raises(InvalidProxyRequest, match=message) as info:
        engine.create("bad", listen=listen, upstream=upstream)
    assert info.value.status == 400
    assert engine.list_proxies() == []


def test_with_session_off_a_taken_port_is_refused(engine: ProxyEngine) -> None:
    first = engine.create(
        "first", listen="udp://127.0.0.1:0?session=off", upstream="udp://127.0.0.1:9"
    )
    port = target(first)[1]
    with pytest.raises(ListenFailed, match="in use"):
        engine.create(
            "second", listen=f"udp://127.0.0.1:{port}?session=off", upstream="udp://127.0.0.1:9"
        )
    assert engine.list_proxies() == ["first"]


def test_a_toxiproxy_client_drives_a_udp_proxy(
    engine: ProxyEngine,
    servers: Callable[..., PlainServer],
    clients: Callable[[], socket.socket],
) -> None:
    server = servers()
    with ApiServer(engine, host="127.0.0.1", port=0) as api:
        toxiproxy = RemoteToxiproxy(api.url, timeout=10)
        remote = toxiproxy.create(
            "statsd", listen="udp://127.0.0.1:0?idle_timeout=5", upstream=server.uri
        )
        assert re.fullmatch(r"udp://127\.0\.0\.1:\d+\?idle_timeout=5", remote.listen)
        remote.add_toxic("latency", latency=120)
        client = clients()
        started = time.monotonic()
        client.sendto(b"requests:1|c", target(engine.proxy("statsd")))
        assert client.recv(100) == b"requests:1|c"
        assert time.monotonic() - started >= 0.119
        with pytest.raises(ToxiproxyBadRequest, match="unknown udp option"):
            toxiproxy.create("typo", listen="udp://127.0.0.1:0?idel_timeout=5", upstream=server.uri)


# ---- resources ---------------------------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_socket_outlives_the_proxy(
    engine: ProxyEngine, servers: Callable[..., PlainServer]
) -> None:
    server = servers()
    before = _open_fds()
    proxy = udp_proxy(engine, server)
    for i in range(30):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(b"%d" % i, target(proxy))
            assert client.recv(10) == b"%d" % i
    assert proxy.connections() == 30
    assert _open_fds() >= before + 31  # the listening socket and one per flow
    proxy.delete()
    deadline = time.monotonic() + 5
    while _open_fds() > before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _open_fds() <= before
    assert len(kinds(proxy, "udp_flow_closed")) == 30


def test_the_documented_example_runs_as_printed() -> None:
    """docs/udp.md's first Python block, executed verbatim (it asserts what it shows)."""
    text = (Path(__file__).parents[2] / "docs" / "udp.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S)
    assert block is not None
    exec(compile(block.group(1), "docs/udp.md", "exec"), {"__name__": "udp_example"})
