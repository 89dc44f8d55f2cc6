"""``auth_error`` on the wire: a real HTTP server, the proxy, ``requests`` and ``http.client``.

The server is stdlib ``http.server`` (HTTP/1.1 keep-alive, TCP_NODELAY) in a thread that
records every request it sees, so "answered without reaching the server" is a count. The
toxic is added through :class:`ProxyEngine` and through the HTTP API.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from faultlab import transports
from faultlab.journal import Journal
from faultlab.journal.wire import credential_fingerprint
from faultlab.proxy import ProxyEngine, ProxyError, ProxyHandle
from faultlab.proxy.server import ApiServer
from faultlab.toxics import InvalidToxic
from faultlab.toxics.auth_error import AuthError

pytestmark = pytest.mark.timeout(60)
TIMEOUT = 5.0
TOKEN_A = "Bearer token-a-s3cret"
TOKEN_B = "Bearer token-b-s3cret"


@dataclass
class Backend:
    """A keep-alive HTTP/1.1 server answering 200, recording each request's path and token."""

    server: ThreadingHTTPServer
    hits: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


def _handler(backend: Backend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            backend.hits.append((self.path, self.headers.get("Authorization")))
            data = json.dumps({"path": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

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
    thread.join(TIMEOUT)


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


def decisions(proxy: ProxyHandle) -> list[dict[str, Any]]:
    return [
        e
        for e in proxy.events()
        if e["kind"] == "fault" and e["type"] == "auth_error" and e["decision"] != "toxicity"
    ]


def get(session: requests.Session, url: str, token: str | None) -> int:
    headers = {"Authorization": token} if token else {}
    return session.get(url, headers=headers, timeout=TIMEOUT).status_code


# ---- the answer ---------------------------------------------------------------------------------
def test_a_401_with_the_challenge_never_reaches_the_server(
    proxy: ProxyHandle, backend: Backend
) -> None:
    proxy.add_toxic("auth_error", stream="upstream", realm="orders", match_path="/items/*")
    reply = requests.get(
        base_url(proxy) + "/items/1", headers={"Authorization": TOKEN_A}, timeout=TIMEOUT
    )
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == 'Bearer realm="orders", error="invalid_token"'
    assert reply.json() == {"error": "unauthorized (injected)"}
    assert backend.hits == []  # answered by the proxy
    other = requests.get(
        base_url(proxy) + "/health", headers={"Authorization": TOKEN_A}, timeout=TIMEOUT
    )
    assert other.status_code == 200  # not matched: the server answers
    fingerprint = credential_fingerprint(TOKEN_A)
    [event, passed] = decisions(proxy)
    assert (event["decision"], event["status"], event["reason"], event["match"]) == (
        "auth_error",
        401,
        "selected",
        1,
    )
    assert (event["method"], event["path"], event["credential"]) == ("GET", "/items/1", fingerprint)
    assert (passed["decision"], passed["reason"]) == ("pass", "path")
    requests_seen = [e for e in proxy.events() if e["kind"] == "wire_request"]
    assert [(e["credential"], e["credential_scheme"]) for e in requests_seen] == [
        (fingerprint, "Bearer"),
        (fingerprint, "Bearer"),
    ]
    assert all("tls" not in e for e in requests_seen)  # a plain proxy: clear text
    journal_text = json.dumps(proxy.events())
    assert "token-a-s3cret" not in journal_text  # the secret is never journaled
    [answer, _] = [e for e in proxy.events() if e["kind"] == "wire_response"]
    assert (answer["status"], answer["injected"]) == (401, True)


def test_connection_close_is_honoured(proxy: ProxyHandle, backend: Backend) -> None:
    proxy.add_toxic("auth_error", stream="upstream", error="", scheme="Basic")
    reply = requests.get(base_url(proxy) + "/x", headers={"Connection": "close"}, timeout=TIMEOUT)
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == 'Basic realm="faultlab"'
    assert reply.headers["Connection"] == "close"
    [event] = decisions(proxy)
    assert event["closed"] is True
    assert event["credential"] is None
    assert backend.hits == []


# ---- which requests -----------------------------------------------------------------------------
def test_nth_revokes_the_rejected_credential(proxy: ProxyHandle, backend: Backend) -> None:
    proxy.add_toxic("auth_error", stream="upstream", nth=2, match_path="/items/*")
    url = base_url(proxy) + "/items/1"
    with requests.Session() as session:
        got = [
            get(session, url, TOKEN_A),  # match 1: passes
            get(session, url, TOKEN_A),  # match 2: 401, token A revoked
            get(session, url, TOKEN_A),  # revoked: 401 whatever nth says
            get(session, base_url(proxy) + "/other", TOKEN_A),  # not matched: passes
            get(session, url, TOKEN_B),  # a refreshed token: match 3, passes
            get(session, url, TOKEN_A),  # still revoked
        ]
    assert got == [200, 401, 401, 200, 200, 401]
    assert backend.hits == [
        ("/items/1", TOKEN_A),
        ("/other", TOKEN_A),
        ("/items/1", TOKEN_B),
    ]
    reasons = [(e["decision"], e["reason"], e.get("match")) for e in decisions(proxy)]
    assert reasons == [
        ("pass", "nth", 1),
        ("auth_error", "selected", 2),
        ("auth_error", "revoked", None),
        ("pass", "path", None),
        ("pass", "nth", 3),
        ("auth_error", "revoked", None),
    ]


def test_without_revoke_only_the_selected_request_fails(
    proxy: ProxyHandle, backend: Backend
) -> None:
    proxy.add_toxic("auth_error", stream="upstream", nth=2, revoke=False)
    url = base_url(proxy) + "/items/1"
    with requests.Session() as session:
        got = [get(session, url, TOKEN_A) for _ in range(4)]
    assert got == [200, 401, 200, 200]
    assert len(backend.hits) == 3


def test_revoke_is_proxy_wide_and_no_credential_is_one_too(
    proxy: ProxyHandle, backend: Backend
) -> None:
    proxy.add_toxic("auth_error", stream="upstream", times=2)
    url = base_url(proxy) + "/items/1"
    with requests.Session() as first, requests.Session() as second:
        assert get(first, url, TOKEN_A) == 401  # match 1 (per connection), A revoked
        assert get(second, url, TOKEN_A) == 401  # another connection: still revoked
        assert get(second, url, None) == 401  # match 1 of this connection: "none" revoked
        assert get(first, url, None) == 401  # revoked, proxy-wide
        assert get(first, url, TOKEN_B) == 401  # match 2 of the first connection
        assert get(second, url, "Bearer token-c") == 401  # match 2 of the second
        assert get(first, url, "Bearer token-d") == 200  # times used up, d never rejected
    assert backend.hits == [("/items/1", "Bearer token-d")]


def test_after_ms_expires_the_credentials_in_use(engine: ProxyEngine, backend: Backend) -> None:
    after = 1500
    revoking = engine.create(
        "revoking", listen="127.0.0.1:0", upstream=backend.address, framing="http"
    )
    once = engine.create("once", listen="127.0.0.1:0", upstream=backend.address, framing="http")
    adding = time.monotonic()  # the toxics' clocks start after this...
    revoking.add_toxic("auth_error", stream="upstream", after_ms=after)
    once.add_toxic("auth_error", stream="upstream", after_ms=after, revoke=False)
    added = time.monotonic()  # ... and before this
    with requests.Session() as session:
        before = [get(session, base_url(p) + "/items/1", TOKEN_A) for p in (revoking, once)]
        assert time.monotonic() - adding < after / 1000, "the machine is too slow for this test"
        time.sleep(max(0.0, after / 1000 - (time.monotonic() - added)) + 0.05)
        late = {
            p.name: [
                get(session, base_url(p) + "/items/1", TOKEN_A),  # expired at after_ms
                get(session, base_url(p) + "/items/1", TOKEN_A),  # revoked, or fresh again
                get(session, base_url(p) + "/items/1", TOKEN_B),  # first seen late: fresh
            ]
            for p in (revoking, once)
        }
    assert before == [200, 200]
    assert late == {"revoking": [401, 401, 200], "once": [401, 200, 200]}
    reasons = [(e["decision"], e["reason"]) for e in decisions(revoking)]
    assert reasons == [
        ("pass", "after_ms"),
        ("auth_error", "expired"),
        ("auth_error", "revoked"),
        ("pass", "fresh credential"),
    ]
    expired = decisions(revoking)[1]
    assert expired["elapsed_ms"] >= after


# ---- refusals -----------------------------------------------------------------------------------
BAD = [
    ({"scheme": "Bad Scheme"}, "attribute 'scheme' is an auth scheme name"),
    ({"realm": 'say "hi"'}, "attribute 'realm' is sent as a quoted string"),
    ({"error": "invalid token"}, "attribute 'error' is an RFC 6750 error code"),
    ({"after_ms": 100, "nth": 2}, "after_ms cannot combine with nth"),
    ({"after_ms": 100, "every": 3}, "after_ms cannot combine with every"),
    ({"after_ms": -1}, "attribute 'after_ms' must be >= 0"),
    ({"revoke": "yes"}, "attribute 'revoke' must be true or false"),
    ({"nth": 1, "times": 2}, "nth and times exclude each other"),
    ({"realms": "x"}, "unknown attribute 'realms'"),
]


@pytest.mark.parametrize(("attributes", "message"), BAD)
def test_bad_attributes_are_invalid_toxics(attributes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidToxic, match=message):
        AuthError(**attributes)


def test_refused_where_it_cannot_act(engine: ProxyEngine, backend: Backend) -> None:
    raw = engine.create("raw", listen="127.0.0.1:0", upstream=backend.address)
    with pytest.raises(ProxyError, match="raw byte stream: set a framing") as info:
        raw.add_toxic("auth_error", stream="upstream")
    assert info.value.status == 400
    lines = engine.create("lines", listen="127.0.0.1:0", upstream=backend.address, framing="lines")
    with pytest.raises(ProxyError, match='create the proxy with framing="http"') as info:
        lines.add_toxic("auth_error", stream="upstream")
    assert info.value.status == 400
    web = engine.create("web", listen="127.0.0.1:0", upstream=backend.address, framing="http")
    with pytest.raises(ProxyError, match='add it with stream="upstream"') as info:
        web.add_toxic("auth_error")  # the default stream is downstream
    assert info.value.status == 400
    with pytest.raises(ProxyError, match="attribute 'realm'") as info:
        web.add_toxic("auth_error", stream="upstream", realm="a\\b")
    assert info.value.status == 400
    assert web.toxics() == []


def test_over_the_http_api(engine: ProxyEngine, backend: Backend) -> None:
    api = ApiServer(engine, port=0).start()
    try:
        base = api.url.rstrip("/")

        def post(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            reply = requests.post(base + path, json=body, timeout=TIMEOUT)
            return reply.status_code, reply.json()

        listen = {"listen": "127.0.0.1:0", "upstream": backend.address}
        assert post("/proxies", {"name": "web", "framing": "http", **listen})[0] == 201
        for attributes, message in BAD:
            toxic = {"type": "auth_error", "stream": "upstream", "attributes": attributes}
            status, body = post("/proxies/web/toxics", toxic)
            assert status == 400, body
            assert message in body["error"]
        good = {"type": "auth_error", "stream": "upstream", "attributes": {"nth": 1}}
        status, body = post("/proxies/web/toxics", good)
        assert status == 200, body
        assert body["attributes"]["revoke"] is True
        url = base_url(engine.proxy("web")) + "/items/1"
        with requests.Session() as session:
            assert [get(session, url, TOKEN_A), get(session, url, TOKEN_B)] == [401, 200]
        catalogue = requests.get(base + "/faultlab/toxics", timeout=TIMEOUT).json()
        assert "auth_error" in json.dumps(catalogue)
    finally:
        api.close()


# ---- gRPC ---------------------------------------------------------------------------------------
class _TokenEcho:
    """A plain grpcio server answering each call with the bearer token it was sent."""

    def __init__(self) -> None:
        import grpc

        self.seen: list[str] = []
        echo = grpc.unary_unary_rpc_method_handler(self._echo)
        handler = grpc.method_handlers_generic_handler("test.Items", {"Get": echo})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _echo(self, request: bytes, context: Any) -> bytes:
        token = dict(context.invocation_metadata()).get("authorization", "")
        self.seen.append(token)
        return token.encode()


@pytest.fixture
def grpc_server() -> Iterator[_TokenEcho]:
    pytest.importorskip("grpc")
    made = _TokenEcho()
    yield made
    made.server.stop(grace=None).wait(TIMEOUT)


class _Plugin:
    """``grpc.metadata_call_credentials``: the channel adds the current token to each call."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, context: Any, callback: Any) -> None:
        callback((("authorization", self.token),), None)


def test_grpc_unauthenticated_with_a_challenge_never_reaches_the_server(
    engine: ProxyEngine, grpc_server: _TokenEcho
) -> None:
    """An unmodified grpcio client with call credentials (a refresh on UNAUTHENTICATED, one
    retry) recovers; the same client re-sending its rejected token is caught by A2."""
    import grpc

    from faultlab.oracles import AuthPolicy, check_auth
    from faultlab.oracles.auth import A2, A4

    proxy = engine.create(
        "items", listen="127.0.0.1:0", upstream=f"127.0.0.1:{grpc_server.port}", protocol="grpc"
    )
    proxy.add_toxic("auth_error", stream="upstream", nth=2, scope="proxy", realm="items")
    plugin = _Plugin(TOKEN_A)
    credentials = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
        grpc.metadata_call_credentials(plugin),
    )
    parsed = transports.parse_address(proxy.address)
    with grpc.secure_channel(f"{parsed.host}:{parsed.port}", credentials) as channel:
        get = channel.unary_unary("/test.Items/Get")

        def call(refresh: bool) -> bytes:
            try:
                return bytes(get(b"", timeout=TIMEOUT))
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
                    raise
                trailing = dict(exc.trailing_metadata() or ())
                assert trailing["www-authenticate"] == (
                    'Bearer realm="items", error="invalid_token"'
                )
                if refresh:
                    plugin.token = TOKEN_B
                return bytes(get(b"", timeout=TIMEOUT))  # one retry

        assert call(refresh=True) == TOKEN_A.encode()
        assert call(refresh=True) == TOKEN_B.encode()  # rejected, refreshed, retried
    assert grpc_server.seen == [TOKEN_A, TOKEN_B]  # the rejected call never reached it
    [fault] = [e for e in decisions(proxy) if e["decision"] == "auth_error"]
    assert (fault["decision"], fault["grpc_status"], fault["reason"]) == (
        "auth_error",
        16,
        "selected",
    )
    events = proxy.events()
    requests_seen = [e for e in events if e["kind"] == "wire_request"]
    assert [e["credential"] for e in requests_seen] == [
        credential_fingerprint(t) for t in (TOKEN_A, TOKEN_A, TOKEN_B)
    ]
    assert "token-a-s3cret" not in json.dumps(events)
    verdict = check_auth(events, AuthPolicy(require_tls=False))
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous
    assert check_auth(events).property == A4  # local credentials: no TLS on the wire

    plugin.token = TOKEN_A  # revoked: a client re-sending it is a storm
    with grpc.secure_channel(f"{parsed.host}:{parsed.port}", credentials) as channel:
        get = channel.unary_unary("/test.Items/Get")
        with pytest.raises(grpc.RpcError) as info:
            call(refresh=False)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    storm = check_auth(proxy.events(), AuthPolicy(require_tls=False))
    assert storm.property == A2, storm.report()
    assert "/test.Items/Get" in storm.message
    assert "UNAUTHENTICATED" in storm.message
