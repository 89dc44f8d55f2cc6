"""Attempts observed on the wire: a proxy with HTTP framing journals every exchange of an
uninstrumented client (``requests``, raw sockets), and the timeline reads them as attempts.

Real sockets, a real HTTP server (stdlib, keep-alive with TCP_NODELAY), real clients; the
proxy is faultlab's engine. Only one-sided time bounds are asserted.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from faultlab.journal import Journal
from faultlab.journal.timeline import timeline
from faultlab.lab.client import logical_call
from faultlab.proxy import ProxyEngine
from faultlab.rpc.base import get_protocol

SEED = 1207


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: list[str]

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        if self.path.startswith("/hang-up"):
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status = 503 if self.path.startswith("/busy") else 200
        body = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", "2")
        self.send_header("X-Request-Id", self.headers.get("X-Request-Id") or "none")
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def do_HEAD(self) -> None:
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "12")  # what a GET would carry; no body follows
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def engine(journal: Journal) -> Iterator[ProxyEngine]:
    with ProxyEngine(seed=SEED, journal=journal) as eng:
        yield eng


def _proxy(engine: ProxyEngine, server: Any, **kwargs: Any) -> tuple[Any, str]:
    port = server.server_address[1]
    proxy = engine.create("web", upstream=f"127.0.0.1:{port}", framing="http", **kwargs)
    return proxy, f"http://{proxy.listen}"


def _wait_for(
    journal: Journal, kind: str, count: int, timeout: float = 5.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = journal.events(kinds=[kind])
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def test_requests_and_responses_are_journaled_with_the_headers_that_matter(
    server: Any, engine: ProxyEngine, journal: Journal
) -> None:
    _, url = _proxy(engine, server)
    with requests.Session() as session:
        ok = session.get(url + "/items/1?x=2", headers={"Idempotency-Key": "k-1"}, timeout=5)
        busy = session.post(
            url + "/busy", json={"a": 1}, headers={"X-Request-Id": "r-9", "Authorization": "s3"}
        )
    assert (ok.status_code, busy.status_code) == (200, 503)
    reqs = _wait_for(journal, "wire_request", 2)
    resps = _wait_for(journal, "wire_response", 2)
    assert [(r["method"], r["target"]) for r in reqs] == [
        ("GET", "/items/1?x=2"),
        ("POST", "/busy"),
    ]
    assert reqs[0]["headers"] == {"idempotency-key": "k-1"}
    assert reqs[1]["headers"] == {"x-request-id": "r-9"}  # credentials are never journaled
    assert [r["status"] for r in resps] == [200, 503]
    assert resps[1]["retry_after"] == 2.0
    assert resps[1]["headers"]["retry-after"] == "2"
    assert [r["exchange"] for r in resps] == [0, 1]
    assert all(r["connection"] == reqs[0]["connection"] for r in reqs + resps)  # keep-alive
    assert not any(r["injected"] for r in resps)
    assert all(q["t"] <= p["t"] for q, p in zip(reqs, resps, strict=True))


def test_the_proxy_relays_the_exact_bytes_it_frames(engine: ProxyEngine) -> None:
    """Header case, order and chunked bodies arrive as the client wrote them."""
    received = bytearray()
    listener = socket.create_server(("127.0.0.1", 0))
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nx-OdD: 1\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    )
    request = (
        b"POST /p HTTP/1.1\r\nhOsT: a\r\nX-Weird:  spaced \r\nTransfer-Encoding: chunked\r\n"
        b"\r\n3\r\nabc\r\n0\r\n\r\n"
    )

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            while not received.endswith(b"0\r\n\r\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    return
                received.extend(chunk)
            conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    proxy = engine.create("raw", upstream=f"127.0.0.1:{listener.getsockname()[1]}", framing="http")
    host, port = proxy.listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(request)
        got = bytearray()
        while not got.endswith(b"0\r\n\r\n"):
            chunk = client.recv(4096)
            assert chunk, f"connection closed after {bytes(got)!r}"
            got.extend(chunk)
    thread.join(timeout=5)
    listener.close()
    assert bytes(received) == request
    assert bytes(got) == answer


def test_a_black_hole_ends_the_attempt_when_the_client_gives_up(
    server: Any, engine: ProxyEngine, journal: Journal
) -> None:
    proxy, url = _proxy(engine, server)
    proxy.add_toxic("timeout", stream="upstream", timeout=0)
    started = time.monotonic()
    with logical_call(journal, "hole"), pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(url + "/items/2", timeout=0.3)
    assert time.monotonic() - started >= 0.3
    gone = _wait_for(journal, "wire_unanswered", 1)
    assert gone[0]["error_kind"] == "TransportTimeout"
    (call,) = timeline(journal).calls
    (attempt,) = call.attempts
    assert attempt.source == "wire"
    assert attempt.failed
    assert attempt.error_kind == "TransportTimeout"
    assert attempt.transient
    assert attempt.t_end is not None
    assert attempt.t_end - attempt.t_start >= 0.29
    assert server.hits == []  # the server never saw it


def test_a_reset_and_a_hang_up_are_told_apart(
    server: Any, engine: ProxyEngine, journal: Journal
) -> None:
    proxy, url = _proxy(engine, server)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url + "/hang-up", timeout=5)
    proxy.add_toxic("reset_peer", stream="upstream", timeout=0)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url + "/items/3", timeout=5)
    kinds = [e["error_kind"] for e in _wait_for(journal, "wire_unanswered", 2)]
    assert kinds == ["EndOfStream", "BrokenResourceError"]


def test_an_unreachable_server_is_an_attempt_too(engine: ProxyEngine, journal: Journal) -> None:
    spare = socket.create_server(("127.0.0.1", 0))
    port = spare.getsockname()[1]
    spare.close()  # nothing listens there now
    proxy = engine.create("gone", upstream=f"127.0.0.1:{port}", framing="http")
    with logical_call(journal, "unreachable"), pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{proxy.listen}/x", timeout=5)
    (call,) = timeline(journal).calls
    assert call.attempts
    assert all(a.error_kind == "EndOfStream" for a in call.attempts)
    assert "could not reach the server" in (call.attempts[0].error or "")


def test_urllib3_retries_become_attempts_of_one_logical_call(
    server: Any, engine: ProxyEngine, journal: Journal
) -> None:
    _, url = _proxy(engine, server)
    retry = Retry(total=2, status_forcelist=[503], backoff_factor=0.01)
    retry.respect_retry_after_header = False
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=retry))
        with logical_call(journal, "busy"), pytest.raises(requests.exceptions.RetryError):
            session.get(url + "/busy", timeout=5)
        with logical_call(journal, "fine"):
            session.get(url + "/items/4", timeout=5)
    busy, fine = timeline(journal).calls
    assert [a.number for a in busy.attempts] == [1, 2, 3]
    assert {a.error_kind for a in busy.attempts} == {"http_503"}
    assert all(a.status == 503 and a.retry_after == 2.0 for a in busy.attempts)
    assert busy.method == "GET /busy"
    assert [(a.ok, a.status, a.path) for a in fine.attempts] == [(True, 200, "/items/4")]
    assert len(server.hits) == 4


def test_overlapping_calls_are_told_apart_by_their_idempotency_key(
    server: Any, engine: ProxyEngine, journal: Journal
) -> None:
    _, url = _proxy(engine, server)
    journal.record("call_start", call=901, label="a", idempotency_key="key-a")
    journal.record("call_start", call=902, label="b", idempotency_key="key-b")
    with requests.Session() as one, requests.Session() as two:
        two.post(url + "/orders", headers={"Idempotency-Key": "key-b"}, timeout=5)
        one.post(url + "/orders", headers={"Idempotency-Key": "key-a"}, timeout=5)
        one.post(url + "/orders", headers={"Idempotency-Key": "key-a"}, timeout=5)
    _wait_for(journal, "wire_response", 3)
    journal.record("call_end", call=901, outcome="ok")
    journal.record("call_end", call=902, outcome="ok")
    a, b = timeline(journal).calls
    assert [x.key for x in a.attempts] == ["key-a", "key-a"]
    assert [x.key for x in b.attempts] == ["key-b"]


def test_client_journaled_attempts_take_precedence_over_the_wire(
    server: Any, engine: ProxyEngine, journal: Journal
) -> None:
    _, url = _proxy(engine, server)
    with logical_call(journal, "own") as record:
        journal.record("attempt_start", call=record.call, attempt=1, method="m")
        requests.get(url + "/items/5", timeout=5)
        journal.record("attempt_end", call=record.call, attempt=1, outcome="ok")
    (call,) = timeline(journal).calls
    assert [(a.source, a.method) for a in call.attempts] == [("client", "m")]


def test_jsonrpc_errors_in_a_200_are_read_with_the_protocol(journal: Journal) -> None:
    from faultlab.examples.calc import Calc

    protocol = get_protocol("jsonrpc")
    srv = protocol.serve(Calc(), address="tcp://127.0.0.1:0", framing="http")
    try:
        with ProxyEngine(seed=SEED, journal=journal) as eng:
            upstream = srv.address.removeprefix("tcp://")
            proxy = eng.create("rpc", upstream=upstream, framing="http", protocol="jsonrpc")
            proxy.add_toxic("rpc_error", stream="upstream", kind="invalid_params", nth=2)
            with protocol.connect(f"tcp://{proxy.listen}", framing="http", timeout=5) as client:
                assert client.call("add", 1, 2) == 3
                with pytest.raises(Exception, match="invalid params"):
                    client.call("add", 2, 2)
            resps = _wait_for(journal, "wire_response", 2)
    finally:
        srv.close()
    reqs = journal.events(kinds=["wire_request"])
    assert [r["rpc_method"] for r in reqs] == ["add", "add"]
    assert reqs[0]["rpc_id"] is not None
    assert "rpc_error" not in resps[0]
    assert resps[0]["injected"] is False
    assert resps[1]["rpc_error"] == "invalid_params"
    assert resps[1]["injected"] is True
    assert resps[1]["transient"] is False


def test_without_http_framing_nothing_is_journaled_per_exchange(
    server: Any, engine: ProxyEngine, journal: Journal
) -> None:
    proxy = engine.create("bytes", upstream=f"127.0.0.1:{server.server_address[1]}")
    requests.get(f"http://{proxy.listen}/items/6", timeout=5)
    assert journal.events(kinds=["wire_request", "wire_response"]) == []
    assert server.hits == ["/items/6"]


@pytest.mark.parametrize("protocol", ["jsonrpc", "xmlrpc", "rest"])
def test_a_pair_over_http_answers_rpc_error_and_journals_it(protocol: str) -> None:
    """Protocols carried over HTTP get HTTP framing on a pair's proxy by default, so
    ``rpc_error`` works on ``faultlab_pair`` (it used to be refused as a raw byte relay)."""
    from faultlab import Lab
    from faultlab.rpc.errors import InvalidParams

    with Lab(seed=SEED) as lab:
        pair = lab.pair(protocol=protocol)
        pair.proxy.add_toxic("rpc_error", stream="upstream", kind="invalid_params", nth=1)
        with pytest.raises(InvalidParams):
            pair.run(lambda c: c.add(1, 2))
        assert pair.run(lambda c: c.add(1, 2)) == 3
        responses = pair.events(kinds=["wire_response"])
    assert responses[-2]["injected"] is True
    assert responses[-1]["injected"] is False
    assert responses[-1]["status"] == 200


@pytest.mark.parametrize(
    ("protocol", "framing", "why"),
    [
        ("binrpc", "http", "binrpc is framed with length-prefix"),
        ("jsonrpc", "msgpack-stream", "jsonrpc is framed with http, lines, length-prefix"),
        ("grpc", "http", "grpc is framed with its library's own"),
    ],
)
def test_a_framing_that_cannot_decode_the_traffic_is_refused_up_front(
    protocol: str, framing: str, why: str
) -> None:
    from faultlab import Lab
    from faultlab.lab.backends.base import BackendError

    with Lab(seed=SEED) as lab:
        started = time.monotonic()
        with pytest.raises(BackendError, match=why):
            lab.pair(protocol=protocol, proxy_framing=framing)
        assert time.monotonic() - started < 5  # refused, not discovered as a hang
        assert lab.pairs == []


def test_a_head_request_passes_through_and_its_answer_has_no_body(
    server: Any, engine: ProxyEngine, journal: Journal
) -> None:
    """A response to HEAD carries a Content-Length but no body: the proxy knows which
    request it answers, so it neither waits for a body nor swallows the next response."""
    _, url = _proxy(engine, server)

    with requests.Session() as session:
        head = session.head(url + "/items/7", timeout=5)
        after = session.get(url + "/items/8", timeout=5)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "12"
    assert after.json() == {"ok": True}
    resps = _wait_for(journal, "wire_response", 2)
    assert [r["status"] for r in resps] == [200, 200]
    assert journal.events(kinds=["wire_unanswered", "framing_error"]) == []


@pytest.mark.parametrize(
    ("protocol", "framing"), [("jsonrpc", "lines"), ("msgpackrpc", "msgpack-stream")]
)
def test_rpc_streams_are_journaled_by_id(protocol: str, framing: str, journal: Journal) -> None:
    """A black-box client speaking newline-delimited JSON-RPC (or msgpack-RPC) over a raw
    socket: each request and its response by id, an injected error read with the protocol,
    a notification expecting nothing."""
    from faultlab.examples.calc import Calc
    from faultlab.rpc.errors import InvalidParams

    wire = get_protocol(protocol)
    srv = wire.serve(Calc(), address="tcp://127.0.0.1:0", framing=framing)
    try:
        with ProxyEngine(seed=SEED, journal=journal) as eng:
            upstream = srv.address.removeprefix("tcp://")
            proxy = eng.create("rpc", upstream=upstream, framing=framing, protocol=protocol)
            proxy.add_toxic("rpc_error", stream="upstream", kind="invalid_params", nth=2)
            with (
                logical_call(journal, "add twice"),
                wire.connect(f"tcp://{proxy.listen}", framing=framing, timeout=5) as client,
            ):
                assert client.call("add", 1, 2) == 3
                with pytest.raises(InvalidParams):
                    client.call("add", 2, 2)
            _wait_for(journal, "wire_response", 2)
    finally:
        srv.close()
    reqs = journal.events(kinds=["wire_request"])
    resps = journal.events(kinds=["wire_response"])
    assert [r["rpc_method"] for r in reqs] == ["add", "add"]
    assert [r["exchange"] for r in resps] == [r["exchange"] for r in reqs]
    assert resps[0].get("rpc_error") is None
    assert resps[1]["rpc_error"] == "invalid_params"
    assert resps[1]["injected"] is True
    (call,) = timeline(journal).calls
    assert [(a.ok, a.error_kind) for a in call.attempts] == [
        (True, None),
        (False, "invalid_params"),
    ]


def test_the_requests_waiting_on_one_connection_are_bounded(journal: Journal) -> None:
    """A client that pipelines without end grows no table in the proxy: past the bound the
    oldest waiting request is no longer tracked (its attempt stays unfinished)."""
    from faultlab.codecs.framing.http_split import HttpSplitter
    from faultlab.proxy import wire

    exchanges = wire.HttpExchanges(journal, "p", 0, protocol=None)
    splitter = HttpSplitter("requests")
    splitter.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    frame = splitter.next_frame()
    for _ in range(wire.MAX_PENDING + 5):
        exchanges.request(frame.raw, frame)  # type: ignore[union-attr]
    assert len(exchanges._pending) == wire.MAX_PENDING
    assert exchanges._pending[0] == 5


def test_a_request_that_waited_for_the_upstream_is_journaled_as_of_its_arrival(
    journal: Journal, engine: ProxyEngine
) -> None:
    """A busy server (its accept queue full) answers the proxy's SYN only on a retransmit,
    a second later. The client sent its request at once: the attempt started then, not
    when the upstream connection was made (else a retry's wait would look a second long)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # an accept queue of one connection
    filler = socket.create_connection(listener.getsockname(), timeout=5)  # fills it
    port = listener.getsockname()[1]
    proxy = engine.create("slow", upstream=f"127.0.0.1:{port}", framing="http")
    host, _, proxy_port = proxy.listen.rpartition(":")
    released = threading.Event()

    def accept_later() -> None:
        time.sleep(0.3)
        listener.settimeout(5)
        conns = [listener.accept()[0] for _ in range(2)]  # the filler, then the proxy
        released.set()
        with conns[1] as conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        conns[0].close()

    thread = threading.Thread(target=accept_later, daemon=True)
    thread.start()
    try:
        with socket.create_connection((host, int(proxy_port)), timeout=10) as client:
            sent = journal.now()
            client.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
        assert released.is_set()
        (request,) = _wait_for(journal, "wire_request", 1)
        (connected,) = [e for e in journal.events(kinds=["connection"]) if e["proxy"] == "slow"]
        assert connected["t"] - sent >= 0.25, "the upstream connection was made late"
        assert request["t"] - sent < 0.2, "journaled as of when the request arrived"
        assert request["t"] >= sent
    finally:
        filler.close()
        listener.close()
        thread.join(5)
