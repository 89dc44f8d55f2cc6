"""gRPC over TLS through an intercepting proxy: ALPN h2 both ways, the HTTP/2 relay inside TLS.

An unmodified grpcio server with TLS (the cached test CA's certificate) and unmodified grpcio
clients with ``ssl_channel_credentials`` trusting the lab CA. Clean calls pass, each call is a
wire event read inside TLS, a gRPC status fault acts on one call, and a bad certificate is
refused by grpc-core before any call reaches the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")

from faultlab.examples.protos import calc_v1_pb2, calc_v1_pb2_grpc  # noqa: E402
from faultlab.journal import Journal  # noqa: E402
from faultlab.oracles import check_tls_verification  # noqa: E402
from faultlab.proxy import ProxyEngine, ProxyHandle  # noqa: E402
from faultlab.proxy.tlscerts import CERT_FAULTS  # noqa: E402
from faultlab.transports import tls as tls_transport  # noqa: E402
from tests.integration.toxic_helpers import settle  # noqa: E402

pytestmark = pytest.mark.timeout(90)
CALL_TIMEOUT = 10.0
REFUSED_KINDS = tuple(k for k in CERT_FAULTS if k not in ("rotate", "weak"))
"""What grpc-core refuses; ``weak`` (a 1024-bit RSA key) it accepts: BoringSSL sets no minimum
key size, unlike OpenSSL's security level 2 (Python's ``ssl``, requests, httpx)."""


class Adder(calc_v1_pb2_grpc.CalcServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.calls = 0

    def Add(self, request: Any, context: Any) -> Any:
        self.calls += 1
        return calc_v1_pb2.NumberReply(value=request.a + request.b)


@pytest.fixture
def server() -> Iterator[tuple[Adder, int]]:
    _, server_pem = tls_transport.test_ca_files()
    pem = server_pem.read_bytes()
    key_end = pem.index(b"-----BEGIN CERTIFICATE-----")  # the key, then the chain
    credentials = grpc.ssl_server_credentials([(pem[:key_end], pem[key_end:])])
    adder = Adder()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    calc_v1_pb2_grpc.add_CalcServicer_to_server(adder, srv)
    port = srv.add_secure_port("127.0.0.1:0", credentials)
    srv.start()
    yield adder, port
    srv.stop(grace=None).wait(5)


@pytest.fixture
def engine() -> Iterator[ProxyEngine]:
    eng = ProxyEngine(journal=Journal(), seed=5)
    yield eng
    eng.close()


def _proxy(engine: ProxyEngine, port: int) -> ProxyHandle:
    return engine.create(
        "grpc-tls", upstream=f"127.0.0.1:{port}", protocol="grpc", tls={"mode": "intercept"}
    )


def _stub(proxy: ProxyHandle) -> tuple[Any, Any]:
    ca = tls_transport.test_ca_files()[0].read_bytes()
    port = proxy.listen.rsplit(":", 1)[1]
    channel = grpc.secure_channel(
        f"localhost:{port}", grpc.ssl_channel_credentials(root_certificates=ca)
    )
    return channel, calc_v1_pb2_grpc.CalcStub(channel)


def _add(stub: Any, a: float) -> float | Any:
    try:
        return stub.Add(calc_v1_pb2.AddRequest(a=a, b=1), timeout=CALL_TIMEOUT).value
    except grpc.RpcError as exc:
        return exc.code()


def test_grpc_calls_pass_and_are_read_inside_tls(
    engine: ProxyEngine, server: tuple[Adder, int]
) -> None:
    adder, port = server
    proxy = _proxy(engine, port)
    assert engine.run(lambda: engine.get("grpc-tls").framing) == "h2"
    channel, stub = _stub(proxy)
    with channel:
        assert [_add(stub, i) for i in range(20)] == [i + 1 for i in range(20)]
    assert adder.calls == 20
    calls = engine.journal.events(kinds=["wire_request"])
    assert len(calls) == 20
    assert all(e.get("tls") is True for e in calls)
    assert {e.get("rpc_method") for e in calls} == {"/faultlab.calc.v1.Calc/Add"}
    shakes = engine.journal.events(kinds=["tls_handshake"])
    assert {(e["side"], e["alpn"]) for e in shakes} == {("client", "h2"), ("upstream", "h2")}


def test_a_grpc_status_fault_acts_inside_tls(
    engine: ProxyEngine, server: tuple[Adder, int]
) -> None:
    adder, port = server
    proxy = _proxy(engine, port)
    proxy.add_toxic("rpc_error", stream="upstream", kind="unavailable", nth=2)
    channel, stub = _stub(proxy)
    with channel:
        results = [_add(stub, i) for i in range(3)]
    assert results == [1, grpc.StatusCode.UNAVAILABLE, 3]
    assert adder.calls == 2  # the proxy answered the second call inside the client's TLS


@pytest.mark.parametrize("kind", REFUSED_KINDS)
def test_grpc_core_refuses_a_bad_certificate(
    engine: ProxyEngine, server: tuple[Adder, int], kind: str
) -> None:
    adder, port = server
    proxy = _proxy(engine, port)
    proxy.add_toxic("tls_cert", stream="downstream", kind=kind)
    channel, stub = _stub(proxy)
    with channel:
        assert _add(stub, 1) == grpc.StatusCode.UNAVAILABLE
    settle(engine)
    assert adder.calls == 0
    verdict = check_tls_verification(engine.journal)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous


def test_grpc_core_accepts_a_weak_key_and_tls1_says_so(
    engine: ProxyEngine, server: tuple[Adder, int]
) -> None:
    """A finding, not a wish: grpc-core completes the handshake with a 1024-bit RSA server key
    and sends the call. TLS1 reports it, naming the call it sent."""
    adder, port = server
    proxy = _proxy(engine, port)
    proxy.add_toxic("tls_cert", stream="downstream", kind="weak")
    channel, stub = _stub(proxy)
    with channel:
        assert _add(stub, 1) == 2
    settle(engine)
    assert adder.calls == 1
    verdict = check_tls_verification(engine.journal)
    assert not verdict.passed
    assert "accepted a weak certificate" in verdict.message
