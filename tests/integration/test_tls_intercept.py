"""TLS interception, certificate faults and the TLS oracles, with unmodified clients.

The upstream is a real HTTPS server (stdlib ``http.server`` behind ``ssl``, the cached test CA's
certificate) that counts the requests it saw, so "no request byte reached the upstream" is a
count. The clients are ``requests`` and ``httpx`` as users configure them: verification on
(trusting the lab CA, which is what ``GET /faultlab/ca.pem`` serves), ``verify=False``, and one
that trusts the wrong CA. gRPC over TLS (ALPN h2) is in ``test_grpc_tls.py``.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from faultlab.journal import Journal
from faultlab.oracles import check_mtls_enforced, check_tls_verification
from faultlab.proxy import ProxyEngine, ProxyHandle
from faultlab.proxy.tlscerts import CERT_FAULTS
from faultlab.transports import tls as tls_transport
from faultlab.transports.tls import lab_ca
from tests.integration.toxic_helpers import settle

pytestmark = pytest.mark.timeout(90)
TIMEOUT = 5.0
REFUSED_KINDS = tuple(k for k in CERT_FAULTS if k != "rotate")


@dataclass
class HttpsBackend:
    server: ThreadingHTTPServer
    hits: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


def _backend(ctx: ssl.SSLContext) -> HttpsBackend:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            backend.hits.append(self.path)
            body = b"hello over tls"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> tuple[Any, Any]:
            sock, addr = self.socket.accept()
            sock.settimeout(TIMEOUT)
            # the handshake runs in the handler's thread: a refusal never stalls accept()
            return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

        def handle_error(self, request: Any, client_address: Any) -> None:
            backend.refused.append(str(client_address))

    server = Server(("127.0.0.1", 0), Handler)
    backend = HttpsBackend(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return backend


def _server_ctx(*, client_auth: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(tls_transport.test_ca_files()[1]))
    if client_auth is not None:
        ctx.load_verify_locations(cafile=str(tls_transport.test_ca_files()[0]))
        ctx.verify_mode = ssl.CERT_REQUIRED if client_auth == "required" else ssl.CERT_OPTIONAL
    return ctx


@pytest.fixture
def backend() -> Iterator[HttpsBackend]:
    b = _backend(_server_ctx())
    yield b
    b.server.shutdown()
    b.server.server_close()


@pytest.fixture
def engine() -> Iterator[ProxyEngine]:
    eng = ProxyEngine(journal=Journal(), seed=7)
    yield eng
    eng.close()


def _intercept(engine: ProxyEngine, backend: HttpsBackend, **kw: Any) -> ProxyHandle:
    return engine.create(
        "tls", upstream=backend.address, framing="http", tls={"mode": "intercept"}, **kw
    )


def _url(proxy: ProxyHandle, path: str = "/x") -> str:
    return f"https://localhost:{proxy.listen.rsplit(':', 1)[1]}{path}"


CA = str(tls_transport.test_ca_files()[0])
CA_CONTEXT = ssl.create_default_context(cafile=CA)


def test_clean_traffic_is_read_inside_tls(engine: ProxyEngine, backend: HttpsBackend) -> None:
    proxy = _intercept(engine, backend)
    with requests.Session() as session:
        # no response kept: a live response holds its socket's file open past session.close()
        answers = [
            (r.status_code, r.text)
            for r in (session.get(_url(proxy, f"/r{i}"), verify=CA, timeout=TIMEOUT) for i in "012")
        ]
    assert answers == [(200, "hello over tls")] * 3
    with httpx.Client(verify=CA_CONTEXT, timeout=TIMEOUT) as client:
        assert client.get(_url(proxy, "/h")).text == "hello over tls"
    settle(engine)
    assert backend.hits == ["/r0", "/r1", "/r2", "/h"]
    requests_seen = engine.journal.events(kinds=["wire_request"])
    assert [e["target"] for e in requests_seen] == ["/r0", "/r1", "/r2", "/h"]
    assert all(e.get("tls") is True for e in requests_seen)
    shakes = engine.journal.events(kinds=["tls_handshake"])
    client_side = [e for e in shakes if e["side"] == "client"]
    assert [e["ok"] for e in client_side] == [True, True]  # one keep-alive connection each
    assert {e["sni"] for e in client_side} == {"localhost"}
    assert all(e["cert"] == "lab" for e in client_side)
    closed = engine.journal.events(kinds=["connection_closed"])
    assert len(closed) == 2
    assert all(e["client_app_bytes"] > 0 for e in closed)
    assert all(e["server_app_bytes"] > 0 for e in closed)
    assert check_tls_verification(engine.journal).vacuous


def test_a_per_request_fault_works_inside_tls(engine: ProxyEngine, backend: HttpsBackend) -> None:
    proxy = _intercept(engine, backend)
    proxy.add_toxic("http_error", stream="upstream", status=503, nth=2)
    with requests.Session() as session:
        codes = [session.get(_url(proxy), verify=CA, timeout=TIMEOUT).status_code for _ in "abc"]
    assert codes == [200, 503, 200]
    assert len(backend.hits) == 2  # the 503 came from the proxy, inside the client's TLS


@pytest.mark.parametrize("kind", REFUSED_KINDS)
def test_every_bad_certificate_is_refused_by_verifying_clients(
    engine: ProxyEngine, backend: HttpsBackend, kind: str
) -> None:
    proxy = _intercept(engine, backend)
    proxy.add_toxic("tls_cert", stream="downstream", kind=kind)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(_url(proxy), verify=CA, timeout=TIMEOUT)
    with pytest.raises(httpx.ConnectError):
        httpx.get(_url(proxy), verify=CA_CONTEXT, timeout=TIMEOUT)
    settle(engine)
    assert backend.hits == [], "no request byte may reach the upstream"
    refused = [
        e
        for e in engine.journal.events(kinds=["tls_handshake"])
        if e["side"] == "client" and not e["ok"]
    ]
    assert len(refused) == 2
    assert all(e["cert"] == kind for e in refused)
    assert not any(e.get("proxy_error") for e in refused), refused  # the clients refused it
    verdict = check_tls_verification(engine.journal)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous


def test_a_client_without_verification_is_caught(
    engine: ProxyEngine, backend: HttpsBackend
) -> None:
    proxy = _intercept(engine, backend)
    proxy.add_toxic("tls_cert", stream="downstream", kind="expired")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning: the bug under test
        r = requests.get(_url(proxy, "/secret"), verify=False, timeout=TIMEOUT)
    assert r.status_code == 200
    settle(engine)
    verdict = check_tls_verification(engine.journal)
    assert not verdict.passed
    assert verdict.property.startswith("TLS1")
    assert "expired certificate" in verdict.message
    assert "GET /secret" in verdict.message


def test_a_client_trusting_the_wrong_ca_is_caught(
    engine: ProxyEngine, backend: HttpsBackend, tmp_path: Path
) -> None:
    proxy = _intercept(engine, backend)
    proxy.add_toxic("tls_cert", stream="downstream", kind="untrusted")
    wrong = tmp_path / "bundle.pem"
    interceptor = engine.run(lambda: engine.get("tls")._interceptor)
    wrong.write_bytes(Path(CA).read_bytes() + interceptor.certs.untrusted_root_pem)
    with httpx.Client(
        verify=ssl.create_default_context(cafile=str(wrong)), timeout=TIMEOUT
    ) as client:
        assert client.get(_url(proxy, "/pinned")).status_code == 200
    settle(engine)
    verdict = check_tls_verification(engine.journal)
    assert not verdict.passed
    assert "untrusted certificate" in verdict.message


def _fingerprint_client(url: str) -> bytes:
    """A client that pins the leaf certificate it saw first (it refuses any other)."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    ctx = ssl.create_default_context(cafile=CA)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return hashlib.sha256(der).digest()


def _next_seq(engine: ProxyEngine) -> int:
    events = engine.journal.events()
    return int(events[-1]["seq"]) + 1 if events else 0


def test_rotation_is_accepted_and_a_pinning_client_is_caught(
    engine: ProxyEngine, backend: HttpsBackend
) -> None:
    proxy = _intercept(engine, backend)
    proxy.add_toxic("tls_cert", stream="downstream", kind="rotate")
    for _ in range(2):
        with requests.Session() as session:  # a new connection: a new certificate
            assert session.get(_url(proxy), verify=CA, timeout=TIMEOUT).status_code == 200
    settle(engine)
    verdict = check_tls_verification(engine.journal)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous

    # a client that pins the first certificate it saw: it closes any other connection
    # right after the handshake, before sending a byte
    since = _next_seq(engine)
    pins = [_fingerprint_client(_url(proxy)) for _ in range(3)]
    assert len(set(pins)) == 3, "rotate shows a new certificate on every connection"
    settle(engine)
    pinned = engine.journal.events(since=since)
    verdict = check_tls_verification(pinned)
    assert not verdict.passed
    assert verdict.property.startswith("TLS2"), verdict.report()
    assert "pin" in verdict.message
    # declared as a pinning client (nothing should accept a rotated certificate): it passes
    assert check_tls_verification(pinned, accept=()).passed


def test_rotation_refused_by_a_pinning_client_fails_tls2(engine: ProxyEngine) -> None:
    """TLS2 on a journal where a client refused the rotated certificate in the handshake."""
    events = [
        {"seq": 1, "kind": "tls_handshake", "proxy": "p", "connection": 0, "side": "client",
         "ok": False, "cert": "rotate", "sni": "localhost", "error": "certificate pin mismatch"},
    ]  # fmt: skip
    verdict = check_tls_verification(events)
    assert not verdict.passed
    assert verdict.property.startswith("TLS2")
    assert "pin" in verdict.message


def test_a_plain_http_client_gets_a_clear_refusal(
    engine: ProxyEngine, backend: HttpsBackend
) -> None:
    proxy = _intercept(engine, backend)
    port = int(proxy.listen.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    conn.request("GET", "/")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.getresponse()
    conn.close()
    [event] = [e for e in engine.journal.events(kinds=["tls_handshake"]) if e["side"] == "client"]
    assert not event["ok"]
    assert "plain HTTP?" in event["error"]
    # the proxy still serves TLS clients
    assert requests.get(_url(proxy), verify=CA, timeout=TIMEOUT).status_code == 200


# ---- mTLS ------------------------------------------------------------------------------------
@pytest.fixture
def mtls_backend() -> Iterator[HttpsBackend]:
    b = _backend(_server_ctx(client_auth="required"))
    yield b
    b.server.shutdown()
    b.server.server_close()


@pytest.fixture
def lenient_backend() -> Iterator[HttpsBackend]:
    b = _backend(_server_ctx(client_auth="optional"))
    yield b
    b.server.shutdown()
    b.server.server_close()


def test_mtls_server_accepts_the_lab_client_cert(
    engine: ProxyEngine, mtls_backend: HttpsBackend
) -> None:
    proxy = _intercept(engine, mtls_backend)
    assert requests.get(_url(proxy), verify=CA, timeout=TIMEOUT).text == "hello over tls"
    [up] = [e for e in engine.journal.events(kinds=["tls_handshake"]) if e["side"] == "upstream"]
    assert up["ok"]
    assert up["client_cert"] == "lab"


@pytest.mark.parametrize("kind", ["none", "expired", "untrusted", "self_signed"])
def test_an_mtls_server_refuses_bad_client_certs(
    engine: ProxyEngine, mtls_backend: HttpsBackend, kind: str
) -> None:
    proxy = _intercept(engine, mtls_backend)
    proxy.add_toxic("tls_cert", stream="upstream", kind=kind)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(_url(proxy), verify=CA, timeout=TIMEOUT)
    settle(engine)
    assert mtls_backend.hits == []
    verdict = check_mtls_enforced(engine.journal)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous


def test_a_server_that_does_not_require_client_certs_is_caught(
    engine: ProxyEngine, lenient_backend: HttpsBackend
) -> None:
    proxy = _intercept(engine, lenient_backend)
    proxy.add_toxic("tls_cert", stream="upstream", kind="none")
    assert requests.get(_url(proxy, "/open"), verify=CA, timeout=TIMEOUT).status_code == 200
    settle(engine)
    verdict = check_mtls_enforced(engine.journal)
    assert not verdict.passed
    assert "no client certificate" in verdict.message
    assert "GET /open" in verdict.message


def test_the_lab_ca_is_the_one_the_proxy_signs_with(
    engine: ProxyEngine, backend: HttpsBackend
) -> None:
    proxy = _intercept(engine, backend)
    pem = lab_ca().cert_pem.bytes()
    assert pem == Path(CA).read_bytes()
    ctx = ssl.create_default_context(cadata=pem.decode())
    host, port = "localhost", int(proxy.listen.rsplit(":", 1)[1])
    with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


# ---- pairs: faultlab's own TLS service, and a FastAPI service serving HTTPS itself ------------
def test_a_tls_pair_intercepts_and_faults_per_request() -> None:
    from faultlab.lab.pair import Lab
    from faultlab.rpc.errors import RpcError

    with Lab(seed=3) as lab:
        pair = lab.pair(
            "faultlab.examples.calc:Calc", protocol="jsonrpc", transport="tls", tls="intercept"
        )
        assert pair.client.add(1, 2) == 3
        pair.proxy.add_toxic("rpc_error", stream="upstream", kind="unavailable", nth=1)
        with pytest.raises(RpcError):
            pair.client.add(1, 3)
        assert pair.client.add(2, 2) == 4
        requests_seen = [e for e in pair.events() if e["kind"] == "wire_request"]
        assert len(requests_seen) == 3
        assert all(e.get("tls") is True for e in requests_seen)


def test_a_pair_refuses_interception_without_tls() -> None:
    from faultlab.lab.backends.base import BackendError
    from faultlab.lab.pair import Lab

    with Lab(seed=3) as lab, pytest.raises(BackendError, match="needs a TLS server"):
        lab.pair("faultlab.examples.calc:Calc", protocol="jsonrpc", tls="intercept")


def test_fastapi_serving_https_as_a_command(tmp_path: Path) -> None:
    """An unmodified FastAPI app under uvicorn with its own TLS; requests through pair.url."""
    import sys

    import faultlab
    from faultlab.lab.pair import Lab

    pem = str(tls_transport.test_ca_files()[1])  # key and chain in one file
    argv = [sys.executable, "-m", "uvicorn", "tests.blackbox.services.fastapi_app:app"]
    argv += ["--host", "{host}", "--port", "{port}", "--no-access-log", "--log-level", "warning"]
    argv += ["--ssl-certfile", pem, "--ssl-keyfile", pem]
    repo = Path(__file__).resolve().parents[2]
    service = faultlab.Command(argv, cwd=str(repo), ready=faultlab.ready.tcp())
    with Lab(seed=4) as lab:
        pair = lab.pair(service, protocol="http", tls="intercept")
        assert pair.url.startswith("https://")
        url = pair.url.replace("127.0.0.1", "localhost")
        with requests.Session() as session:
            item = session.get(f"{url}/items/1", verify=CA, timeout=TIMEOUT).json()
        assert item == {"id": 1, "name": "item-1"}
        pair.proxy.add_toxic("tls_cert", stream="downstream", kind="wrong_host")
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{url}/items/2", verify=CA, timeout=TIMEOUT)
        settle(lab.engine)
        verdict = check_tls_verification(pair.events())
        assert verdict.passed, verdict.report()
        assert not verdict.vacuous
        targets = [e["target"] for e in pair.events() if e["kind"] == "wire_request"]
        assert targets == ["/items/1"]


# ---- hostile and silent clients: nothing hangs, nothing leaks --------------------------------
def test_a_silent_client_is_timed_out(
    engine: ProxyEngine, backend: HttpsBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faultlab.proxy import tlsintercept

    monkeypatch.setattr(tlsintercept, "HANDSHAKE_TIMEOUT", 0.3)
    proxy = _intercept(engine, backend)
    port = int(proxy.listen.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"\x16\x03\x01\x02")  # the start of a record header, then nothing
        assert sock.recv(100) == b""  # the proxy closed it
    settle(engine)
    [event] = engine.journal.events(kinds=["tls_handshake"])
    assert event["error"] == "timed out"


@pytest.mark.parametrize(
    "junk",
    [
        b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",  # a ClientHello with an empty body
        b"\x16\x03\x01\x00\x30" + bytes(48),  # a record of zeros
        b"\x16\x03\x03" + b"\xff\xff" + b"\x01" * 64,  # a record longer than what follows
        bytes(range(256)) * 4,
    ],
)
def test_junk_is_refused_and_the_proxy_serves_on(
    engine: ProxyEngine, backend: HttpsBackend, junk: bytes
) -> None:
    proxy = _intercept(engine, backend)
    port = int(proxy.listen.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(junk)
        sock.shutdown(socket.SHUT_WR)  # a client that sent everything it had
        while sock.recv(4096):
            pass  # until the proxy closes: it must, within the test's timeout
    settle(engine)
    [event] = engine.journal.events(kinds=["tls_handshake"])
    assert event["ok"] is False
    assert event["error"]
    assert requests.get(_url(proxy), verify=CA, timeout=TIMEOUT).status_code == 200


def _open_fds() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


def test_many_connections_leave_nothing_behind(engine: ProxyEngine, backend: HttpsBackend) -> None:
    proxy = _intercept(engine, backend)
    requests.get(_url(proxy), verify=CA, timeout=TIMEOUT)  # contexts and CA loaded once
    settle(engine)
    before = _open_fds()
    runtime = tls_transport.test_ca_files()[0].parent
    proxy.add_toxic("tls_cert", stream="downstream", kind="rotate", toxicity=0.5)
    for i in range(30):
        with requests.Session() as session:
            assert session.get(_url(proxy, f"/{i}"), verify=CA, timeout=TIMEOUT).ok
    proxy.remove_toxic("tls_cert_downstream")
    proxy.add_toxic("tls_cert", stream="downstream", kind="expired")
    for _ in range(20):
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(_url(proxy), verify=CA, timeout=TIMEOUT)
    settle(engine)
    assert engine.run(lambda: len(engine.get("tls").connections)) == 0
    assert _open_fds() <= before
    assert not list(runtime.glob(".chain-*")), "no certificate file outlives its load"
