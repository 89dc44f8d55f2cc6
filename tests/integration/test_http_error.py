"""``http_error`` and request matching, black-box: a real HTTP server, the proxy, real clients.

The server is stdlib ``http.server`` (HTTP/1.1 keep-alive, TCP_NODELAY) in a thread; it
records every request it sees, so "answered without reaching the server" is a count. The
clients are ``requests`` and ``http.client`` (and a raw socket where the exact bytes
matter). The toxic is added through :class:`ProxyEngine` and through the HTTP API.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from faultlab import transports
from faultlab.journal import Journal
from faultlab.proxy import ProxyEngine, ProxyError, ProxyHandle
from faultlab.proxy.server import ApiServer

pytestmark = pytest.mark.timeout(60)
TIMEOUT = 5.0


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    peer: int
    """The port the proxy connected from: one per proxied connection."""


@dataclass
class Backend:
    """A keep-alive HTTP/1.1 server that answers 200 with what it saw, and counts hits."""

    server: ThreadingHTTPServer
    hits: list[Hit] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list[str]:
        return [h.path for h in self.hits]


def _handler(backend: Backend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            backend.hits.append(
                Hit(self.command, self.path, dict(self.headers.items()), self.client_address[1])
            )
            reply: dict[str, Any] = {"path": self.path, "hit": len(backend.hits)}
            if body.startswith(b"{"):  # a JSON-RPC call: answer it as the server would
                call = json.loads(body)
                reply = {"jsonrpc": "2.0", "id": call.get("id"), "result": call.get("method")}
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    made = Backend(server)
    server.RequestHandlerClass = _handler(made)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield made
    server.shutdown()
    server.server_close()


@pytest.fixture
def engine(backend: Backend) -> Iterator[ProxyEngine]:
    backend.hits.clear()
    with ProxyEngine(seed=7, journal=Journal()) as made:
        yield made


@pytest.fixture
def proxy(engine: ProxyEngine, backend: Backend) -> ProxyHandle:
    return engine.create("web", listen="127.0.0.1:0", upstream=backend.address, framing="http")


def base_url(proxy: ProxyHandle) -> str:
    parsed = transports.parse_address(proxy.address)
    return f"http://{parsed.host}:{parsed.port}"


def connection(proxy: ProxyHandle) -> http.client.HTTPConnection:
    parsed = transports.parse_address(proxy.address)
    return http.client.HTTPConnection(parsed.host, parsed.port or 0, timeout=TIMEOUT)


def raw_socket(proxy: ProxyHandle) -> socket.socket:
    parsed = transports.parse_address(proxy.address)
    return socket.create_connection((parsed.host, parsed.port or 0), timeout=TIMEOUT)


def decisions(proxy: ProxyHandle, toxic_type: str = "http_error") -> list[dict[str, Any]]:
    return [
        e
        for e in proxy.events()
        if e["kind"] == "fault" and e["type"] == toxic_type and e["decision"] != "toxicity"
    ]


def statuses(session: requests.Session, url: str, n: int, **kwargs: Any) -> list[int]:
    return [session.get(url, timeout=TIMEOUT, **kwargs).status_code for _ in range(n)]


# ---- answering without the server ---------------------------------------------------------------
def test_a_503_with_retry_after_never_reaches_the_server(
    proxy: ProxyHandle, backend: Backend
) -> None:
    proxy.add_toxic("http_error", name="down", stream="upstream", retry_after=2)
    reply = requests.get(base_url(proxy) + "/items/1?x=1", timeout=TIMEOUT)
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "2"
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json() == {"error": "service unavailable (injected)"}
    assert int(reply.headers["Content-Length"]) == len(reply.content)
    assert backend.hits == []  # answered by the proxy
    [event] = decisions(proxy)
    assert (event["decision"], event["status"], event["match"]) == ("http_error", 503, 1)
    assert (event["method"], event["path"], event["closed"]) == ("GET", "/items/1", False)
    proxy.remove_toxic("down")
    assert requests.get(base_url(proxy) + "/items/1", timeout=TIMEOUT).status_code == 200
    assert backend.paths() == ["/items/1"]


def test_nth_hits_only_the_second_matching_request(proxy: ProxyHandle, backend: Backend) -> None:
    proxy.add_toxic("http_error", stream="upstream", match_path="/items/*", nth=2, status=500)
    url = base_url(proxy)
    with requests.Session() as session:
        got = [
            session.get(url + path, timeout=TIMEOUT).status_code
            for path in ["/health", "/items/1", "/health", "/items/2", "/items/3"]
        ]
    assert got == [200, 200, 200, 500, 200]
    assert backend.paths() == ["/health", "/items/1", "/health", "/items/3"]
    assert [(e["decision"], e.get("reason"), e.get("match")) for e in decisions(proxy)] == [
        ("pass", "path", None),
        ("pass", "nth", 1),
        ("pass", "path", None),
        ("http_error", None, 2),
        ("pass", "nth", 3),
    ]


@pytest.mark.parametrize(
    "selection",
    [{"sequence": "fail,fail,pass"}, {"sequence": "FFP"}, {"times": 2}],
    ids=["words", "letters", "times"],
)
def test_a_sequence_fails_then_passes(
    proxy: ProxyHandle, backend: Backend, selection: dict[str, Any]
) -> None:
    proxy.add_toxic("http_error", stream="upstream", status=502, **selection)
    with requests.Session() as session:
        assert statuses(session, base_url(proxy) + "/flaky", 5) == [502, 502, 200, 200, 200]
    assert len(backend.hits) == 3
    reasons = [e.get("reason") for e in decisions(proxy) if e["decision"] == "pass"]
    assert reasons == [next(iter(selection))] * 3


def test_scope_proxy_counts_across_connections(proxy: ProxyHandle, backend: Backend) -> None:
    proxy.add_toxic("http_error", stream="upstream", sequence="PF", scope="proxy")
    url = base_url(proxy) + "/x"
    with requests.Session() as first, requests.Session() as second:
        assert first.get(url, timeout=TIMEOUT).status_code == 200
        assert second.get(url, timeout=TIMEOUT).status_code == 503  # the proxy's 2nd match
        assert first.get(url, timeout=TIMEOUT).status_code == 200
    assert len(backend.hits) == 2
    (a, _), (b, decision), (c, _) = [(e["connection"], e["decision"]) for e in decisions(proxy)]
    assert (a == c, a != b, decision) == (True, True, "http_error")


def test_match_header_picks_requests_carrying_it(proxy: ProxyHandle, backend: Backend) -> None:
    proxy.add_toxic(
        "http_error",
        stream="upstream",
        status=429,
        match_method="post",
        match_header="Idempotency-Key: *",
    )
    url = base_url(proxy) + "/orders"
    with requests.Session() as session:
        keyed = session.post(url, json={}, headers={"Idempotency-Key": "k1"}, timeout=TIMEOUT)
        plain = session.post(url, json={}, timeout=TIMEOUT)
        get = session.get(url, headers={"Idempotency-Key": "k2"}, timeout=TIMEOUT)
    assert (keyed.status_code, plain.status_code, get.status_code) == (429, 200, 200)
    assert [(h.method, "Idempotency-Key" in h.headers) for h in backend.hits] == [
        ("POST", False),
        ("GET", True),
    ]
    assert [e.get("reason") for e in decisions(proxy)] == [None, "header", "method"]


def test_custom_headers_and_body(proxy: ProxyHandle, backend: Backend) -> None:
    proxy.add_toxic(
        "http_error",
        stream="upstream",
        status=400,
        headers="X-Reason: drill\nContent-Type: text/plain; charset=utf-8",
        body="bad request, on purpose",
    )
    reply = requests.get(base_url(proxy) + "/", timeout=TIMEOUT)
    assert reply.status_code == 400
    assert reply.headers["X-Reason"] == "drill"
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert reply.text == "bad request, on purpose"
    assert backend.hits == []


# ---- the connection around an injected reply --------------------------------------------------
def test_keep_alive_survives_an_injected_reply(proxy: ProxyHandle, backend: Backend) -> None:
    proxy.add_toxic("http_error", stream="upstream", nth=1)
    conn = connection(proxy)
    try:
        conn.request("GET", "/first")
        first = conn.getresponse()
        assert (first.status, first.will_close) == (503, False)
        first.read()
        sock = conn.sock
        conn.request("GET", "/second")
        second = conn.getresponse()
        assert second.status == 200
        assert json.loads(second.read())["path"] == "/second"
        assert conn.sock is sock  # the same client connection, not a reconnect
    finally:
        conn.close()
    assert backend.paths() == ["/second"]


def test_connection_close_is_honoured(proxy: ProxyHandle, backend: Backend) -> None:
    """A request saying ``Connection: close`` gets it back, and the proxy closes as a server."""
    proxy.add_toxic("http_error", stream="upstream")
    with raw_socket(proxy) as sock:
        sock.sendall(b"GET /bye HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):  # ends: the proxy closed the connection
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nConnection: close" in head
    assert json.loads(body) == {"error": "service unavailable (injected)"}
    assert backend.hits == []
    assert decisions(proxy)[0]["closed"] is True


def test_head_gets_no_body_and_the_connection_stays_in_step(
    proxy: ProxyHandle, backend: Backend
) -> None:
    proxy.add_toxic("http_error", stream="upstream", match_method="HEAD", status=504)
    with raw_socket(proxy) as sock:
        sock.sendall(b"HEAD /h HTTP/1.1\r\nHost: web\r\n\r\nGET /g HTTP/1.1\r\nHost: web\r\n\r\n")
        received = b""
        while received.count(b"HTTP/1.1 ") < 2 or not received.endswith(b"}"):
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 504 ")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert length == len(json.dumps({"error": "gateway timeout (injected)"}))  # a GET's length
    assert rest.startswith(b"HTTP/1.1 200 ")  # no body bytes between the two responses
    assert backend.paths() == ["/g"]


# ---- other toxics gain the same matching --------------------------------------------------------
def test_fail_first_matches_a_path(proxy: ProxyHandle, backend: Backend) -> None:
    proxy.add_toxic("fail_first", stream="upstream", match_path="/login", scope="proxy")
    url = base_url(proxy)
    with requests.Session() as session:
        assert session.get(url + "/home", timeout=TIMEOUT).status_code == 200
        with pytest.raises(requests.ConnectionError):
            session.get(url + "/login", timeout=TIMEOUT)
    assert requests.get(url + "/login", timeout=TIMEOUT).status_code == 200
    assert backend.paths() == ["/home", "/login"]
    fails = [e for e in decisions(proxy, "fail_first") if e["decision"] == "fail"]
    assert [(e["path"], e["match"]) for e in fails] == [("/login", 1)]


def test_rpc_error_matches_a_header_and_a_sequence(engine: ProxyEngine, backend: Backend) -> None:
    proxy = engine.create(
        "rpc", listen="127.0.0.1:0", upstream=backend.address, framing="http", protocol="jsonrpc"
    )
    proxy.add_toxic(
        "rpc_error",
        stream="upstream",
        method="counter.*",
        match_header="X-Tenant: blue",
        sequence="pass,fail",
        scope="proxy",  # each call below is a new connection
        kind="internal_error",
    )
    url = base_url(proxy) + "/rpc"

    def call(method: str, tenant: str) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": method, "params": []}
        reply = requests.post(url, json=body, headers={"X-Tenant": tenant}, timeout=TIMEOUT)
        result: dict[str, Any] = reply.json()
        return result

    assert call("counter.incr", "blue")["result"] == "counter.incr"  # 1st match: pass
    assert call("counter.incr", "red")["result"] == "counter.incr"  # header differs
    assert call("add", "blue")["result"] == "add"  # method differs
    assert call("counter.incr", "blue")["error"]["code"] == -32603  # 2nd match: fail
    assert call("counter.incr", "blue")["result"] == "counter.incr"  # sequence done
    assert len(backend.hits) == 4
    assert [e.get("reason") for e in decisions(proxy, "rpc_error")] == [
        "sequence",
        "header",
        "rpc_method",
        None,
        "sequence",
    ]


def test_match_rpc_method_reads_the_proxys_protocol(engine: ProxyEngine, backend: Backend) -> None:
    proxy = engine.create(
        "rpc", listen="127.0.0.1:0", upstream=backend.address, framing="http", protocol="jsonrpc"
    )
    proxy.add_toxic("http_error", stream="upstream", match_rpc_method="pay*", status=503)
    url = base_url(proxy)
    pay = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "pay"}, timeout=TIMEOUT)
    get = requests.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "get"}, timeout=TIMEOUT)
    assert (pay.status_code, get.status_code) == (503, 200)
    assert [e.get("rpc_method") for e in decisions(proxy)] == ["pay", "get"]


# ---- refusals -----------------------------------------------------------------------------------
def test_refused_where_it_cannot_act(engine: ProxyEngine, backend: Backend) -> None:
    raw = engine.create("raw", listen="127.0.0.1:0", upstream=backend.address)
    with pytest.raises(ProxyError, match="raw byte stream: set a framing") as info:
        raw.add_toxic("http_error", stream="upstream")
    assert info.value.status == 400
    framed = engine.create(
        "framed", listen="127.0.0.1:0", upstream=backend.address, framing="length-prefix"
    )
    with pytest.raises(ProxyError, match='create the proxy with framing="http"') as info:
        framed.add_toxic("http_error", stream="upstream")
    assert info.value.status == 400
    web = engine.create("web", listen="127.0.0.1:0", upstream=backend.address, framing="http")
    with pytest.raises(ProxyError, match='add it with stream="upstream"') as info:
        web.add_toxic("http_error")  # the default stream is downstream
    assert info.value.status == 400
    with pytest.raises(ProxyError, match="match_rpc_method reads the RPC method"):
        web.add_toxic("http_error", stream="upstream", match_rpc_method="pay")
    with pytest.raises(ProxyError, match="nth and times exclude each other"):
        web.add_toxic("http_error", stream="upstream", nth=1, times=2)
    with pytest.raises(ProxyError, match="match_path match HTTP requests"):
        framed.add_toxic("fail_first", stream="upstream", match_path="/x")
    with pytest.raises(ProxyError, match="responses carry no method"):
        web.add_toxic("fail_first", match_header="X-A: *")
    for proxy in (raw, framed, web):
        assert proxy.toxics() == []


# ---- over the HTTP API --------------------------------------------------------------------------
def test_over_the_http_api(engine: ProxyEngine, backend: Backend) -> None:
    api = ApiServer(engine, port=0).start()
    try:
        base = api.url.rstrip("/")

        def post(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            reply = requests.post(base + path, json=body, timeout=TIMEOUT)
            return reply.status_code, reply.json()

        listen = {"listen": "127.0.0.1:0", "upstream": backend.address}
        assert post("/proxies", {"name": "web", "framing": "http", **listen})[0] == 201
        assert post("/proxies", {"name": "raw", **listen})[0] == 201
        toxic = {
            "type": "http_error",
            "stream": "upstream",
            "attributes": {"status": 503, "retry_after": 2, "match_path": "/items/*"},
        }
        status, body = post("/proxies/web/toxics", toxic)
        assert status == 200, body
        assert body["attributes"]["retry_after"] == 2
        web = engine.proxy("web")
        reply = requests.get(base_url(web) + "/items/9", timeout=TIMEOUT)
        assert (reply.status_code, reply.headers["Retry-After"]) == (503, "2")
        assert requests.get(base_url(web) + "/other", timeout=TIMEOUT).status_code == 200
        assert backend.paths() == ["/other"]

        status, body = post("/proxies/raw/toxics", toxic)
        assert status == 400
        assert "set a framing" in body["error"]
        status, body = post("/proxies/web/toxics", {**toxic, "name": "d", "stream": "downstream"})
        assert status == 400
        assert 'add it with stream="upstream"' in body["error"]
        bad = {**toxic, "name": "b", "attributes": {"sequence": "fail,maybe"}}
        status, body = post("/proxies/web/toxics", bad)
        assert (status, body["error"]) == (
            400,
            "http_error: attribute 'sequence' lists fail/pass steps "
            "(e.g. 'fail,fail,pass' or 'FFP'); step 2 is 'maybe'",
        )
        bad = {**toxic, "name": "h", "attributes": {"headers": "Retry-After: 2; X-A: b"}}
        status, body = post("/proxies/web/toxics", bad)
        assert status == 400
        assert "separate headers with a newline" in body["error"]
        catalogue = requests.get(base + "/faultlab/toxics", timeout=TIMEOUT).json()
        assert catalogue["http_error"]["attributes"]["status"]["drawn"] == {
            "values": [503, 500, 429, 502, 504, 400]
        }
    finally:
        api.close()
