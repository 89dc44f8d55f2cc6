"""gRPC end to end: the calc service in a server process, clients in this one.

Covers tcp, unix and tls; error kinds (domain error, unknown method, bad
params, deadline, unavailable); version skew both ways between the v1 and v2
protos; and third-party peers on each side: the raw generated stub against our
server, and our client against a server built from the generated servicer.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")

from faultlab import transports  # noqa: E402
from faultlab._proc import ChildProcess, spawn_ready  # noqa: E402
from faultlab.examples.calc import Calc  # noqa: E402
from faultlab.examples.protos import calc_v1_pb2, calc_v1_pb2_grpc  # noqa: E402
from faultlab.rpc import (  # noqa: E402
    ApplicationError,
    DeadlineExceeded,
    InternalError,
    InvalidParams,
    MethodNotFound,
    Request,
    Response,
    ServiceUnavailable,
)
from faultlab.rpc.grpc import KIND_KEY, GrpcClient, GrpcServer  # noqa: E402

SCHEMES = ["tcp", "unix", "tls"]


def start_server(proto: str, scheme: str = "tcp", *extra: str) -> ChildProcess:
    address = transports.get(scheme).example_address("grpc")
    cmd = [sys.executable, "-m", "faultlab.rpc.grpc", "serve", "--proto", proto]
    return spawn_ready([*cmd, "--address", address, *extra], timeout=30)


def stop_server(child: ChildProcess) -> None:
    """Close stdin so the server shuts down (and removes its socket file), then reap it."""
    if child.proc.stdin is not None and not child.proc.stdin.closed:
        child.proc.stdin.close()
    try:
        child.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    child.close()


@pytest.fixture(scope="module", params=SCHEMES)
def v1_server(request: pytest.FixtureRequest) -> Iterator[ChildProcess]:
    child = start_server("v1", request.param)
    yield child
    stop_server(child)


@pytest.fixture(scope="module")
def v2_server() -> Iterator[ChildProcess]:
    child = start_server("v2")
    yield child
    stop_server(child)


@pytest.fixture(scope="module")
def v1_tcp_server() -> Iterator[ChildProcess]:
    child = start_server("v1")
    yield child
    stop_server(child)


def test_calc_end_to_end(v1_server: ChildProcess) -> None:
    scheme = v1_server.address.split("://", 1)[0]
    assert scheme in SCHEMES
    with GrpcClient(v1_server.address, timeout=20) as client:
        assert client.add(2, 3) == 5.0
        assert client.call("add", a=1.5, b=2) == 3.5
        assert client.call("add", 1, b=2) == 3.0
        value = {"name": "ünïcode ✓", "items": [1, 2.5, None, True], "nested": {"k": ["v"]}}
        assert client.echo(value) == value
        assert client.echo(None) is None
        big = "x" * (256 * 1024)
        assert client.echo(big) == big
        assert client.sleep(5) == 5
        assert client.about() == {"service": "calc", "version": 1}
        client.counter.reset()
        assert client.counter.incr() == 1  # omitted optional field: the method's default
        assert client.counter.incr(2, "k1") == 3
        assert client.counter.incr(2, "k1") == 3  # repeated key: no new side effect
        assert client.counter.incr(amount=4) == 7
        assert isinstance(client.counter.get(), int)
        assert client.counter.effects() == [
            {"key": None, "amount": 1, "value": 1},
            {"key": "k1", "amount": 2, "value": 3},
            {"key": None, "amount": 4, "value": 7},
        ]


def test_error_kinds(v1_server: ChildProcess) -> None:
    with GrpcClient(v1_server.address, timeout=20) as client:
        with pytest.raises(ApplicationError, match="division by zero") as err:
            client.div(1, 0)
        assert err.value.data == {"type": "DomainError"}
        with pytest.raises(MethodNotFound):
            client.no_such_method()
        with pytest.raises(InvalidParams):
            client.add("two", 3)
        with pytest.raises(InvalidParams):
            client.add(2**60, 1)  # a double would round it: refused, not answered wrongly
        with pytest.raises(InvalidParams):
            client.add(1, 2, 3)
        assert client.div(1, 4) == 0.25  # errors leave the channel usable


def test_deadline_exceeded_within_bound(v1_tcp_server: ChildProcess) -> None:
    with GrpcClient(v1_tcp_server.address, timeout=20) as client:
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded) as err:
            client.sleep(5000, timeout=0.3)
        elapsed = time.monotonic() - start
        assert err.value.transient
        assert 0.25 <= elapsed < 3.0
        assert client.add(1, 1) == 2.0


def test_unavailable_when_server_dies() -> None:
    child = start_server("v1")
    try:
        with GrpcClient(child.address, timeout=5) as client:
            assert client.add(1, 1) == 2.0
            child.kill()
            with pytest.raises(ServiceUnavailable) as err:
                client.add(1, 1)
            assert err.value.transient
    finally:
        child.close()


def test_idempotency_key_reaches_the_server() -> None:
    seen: list[tuple[Request, Response]] = []
    with (
        GrpcServer(Calc(), on_request=lambda q, r: seen.append((q, r))) as server,
        GrpcClient(server.address) as client,
    ):
        assert client.counter.incr(1, idempotency_key="abc") == 1
        assert server.requests_handled == 1
    request, response = seen[0]
    assert request.method == "counter.incr"
    assert request.meta["idempotency_key"] == "abc"
    assert response.result == 1


# version skew: field numbers are shared, packages differ, servers answer both


def test_v1_client_against_v2_server(v2_server: ChildProcess) -> None:
    with GrpcClient(v2_server.address, proto="v1", timeout=20) as client:
        assert client.about() == {"service": "calc", "version": 2}  # precision: skipped
        assert client.add(2, 3) == 5.0
        assert client.counter.incr(5) == 5
        with pytest.raises(MethodNotFound):
            client.pow(2, 3)  # not in the v1 proto: refused before sending


def test_v2_client_against_v1_server(v1_tcp_server: ChildProcess) -> None:
    with GrpcClient(v1_tcp_server.address, proto="v2", timeout=20) as client:
        assert client.about() == {"service": "calc", "version": 1, "precision": None}
        assert client.add(2, 3) == 5.0
        with pytest.raises(MethodNotFound, match="Pow"):
            client.pow(2, 3)  # the server's answer: UNIMPLEMENTED


def test_v2_client_against_v2_server(v2_server: ChildProcess) -> None:
    with GrpcClient(v2_server.address, proto="v2", timeout=20) as client:
        assert client.about() == {"service": "calc", "version": 2, "precision": "double"}
        assert client.pow(2, 10) == 1024.0
        with pytest.raises(ApplicationError, match="exponent too large"):
            client.pow(2, 5000)


def test_v2_proto_over_a_v1_object() -> None:
    child = start_server("v2", "tcp", "--schema-version", "1")
    try:
        with GrpcClient(child.address, proto="v2", timeout=20) as client:
            assert client.about()["precision"] is None
            with pytest.raises(MethodNotFound, match="pow"):
                client.pow(2, 3)  # in the proto, not in the object: the Service says so
    finally:
        child.close()


class _BadCalc(Calc):
    def add(self, a: float, b: float) -> Any:
        return "not a number"  # a bug in the service: NumberReply cannot hold it


def test_result_that_does_not_fit_the_reply_is_internal_error() -> None:
    with (
        GrpcServer(_BadCalc()) as server,
        GrpcClient(server.address) as client,
        pytest.raises(InternalError, match="NumberReply"),
    ):
        client.add(1, 2)


def test_strict_server_refuses_other_versions() -> None:
    with (
        GrpcServer(Calc(), proto="v1", other_versions=False) as server,
        GrpcClient(server.address, proto="v2") as client,
        pytest.raises(MethodNotFound),
    ):
        client.add(1, 2)  # a typed refusal, never a guess at the other schema


# third-party peers


def test_generated_stub_against_our_server(v1_tcp_server: ChildProcess) -> None:
    from google.protobuf import empty_pb2, struct_pb2

    target = v1_tcp_server.address.split("://", 1)[1]
    with grpc.insecure_channel(target) as channel:
        stub = calc_v1_pb2_grpc.CalcStub(channel)
        assert stub.Add(calc_v1_pb2.AddRequest(a=2, b=3), timeout=10).value == 5.0
        about = stub.About(empty_pb2.Empty(), timeout=10)
        assert (about.service, about.version) == ("calc", 1)
        echoed = stub.Echo(struct_pb2.Value(string_value="hi"), timeout=10)
        assert echoed.string_value == "hi"
        with pytest.raises(grpc.RpcError) as err:
            stub.Div(calc_v1_pb2.DivRequest(a=1, b=0), timeout=10)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "division by zero" in err.value.details()
        assert dict(err.value.trailing_metadata())[KIND_KEY] == "application_error"
        with pytest.raises(grpc.RpcError) as slow:
            stub.Sleep(calc_v1_pb2.SleepRequest(ms=5000), timeout=0.2)
        assert slow.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        missing = channel.unary_unary("/faultlab.calc.v1.Calc/Nope")
        with pytest.raises(grpc.RpcError) as nope:
            missing(b"", timeout=10)
        assert nope.value.code() == grpc.StatusCode.UNIMPLEMENTED
        garbage = channel.unary_unary("/faultlab.calc.v1.Calc/Add")
        with pytest.raises(grpc.RpcError) as bad:
            garbage(b"\xff\xff\xff", timeout=10)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert dict(bad.value.trailing_metadata())[KIND_KEY] == "parse_error"


class _ThirdPartyCalc(calc_v1_pb2_grpc.CalcServicer):  # type: ignore[misc]
    """A hand-written servicer: no faultlab metadata, just statuses."""

    def Add(self, request: Any, context: Any) -> Any:
        return calc_v1_pb2.NumberReply(value=request.a + request.b)

    def Div(self, request: Any, context: Any) -> Any:
        if request.b == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "b must not be zero")
        return calc_v1_pb2.NumberReply(value=request.a / request.b)

    def About(self, request: Any, context: Any) -> Any:
        return calc_v1_pb2.AboutReply(service="third-party", version=7)

    def Sleep(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNAVAILABLE, "overloaded")


@pytest.fixture
def third_party_server() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    calc_v1_pb2_grpc.add_CalcServicer_to_server(_ThirdPartyCalc(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"tcp://127.0.0.1:{port}"
    server.stop(None).wait()


def test_our_client_against_generated_servicer(third_party_server: str) -> None:
    with GrpcClient(third_party_server, timeout=10) as client:
        assert client.add(2, 3) == 5.0
        assert client.about() == {"service": "third-party", "version": 7}
        with pytest.raises(InvalidParams, match="zero"):
            client.div(1, 0)
        with pytest.raises(ServiceUnavailable, match="overloaded"):
            client.sleep(1)
        with pytest.raises(MethodNotFound):
            client.counter.incr(1)  # the base class answers UNIMPLEMENTED


def test_a_lab_grpc_pair_is_provisioned_through_its_registered_protocol() -> None:
    """No ``== "grpc"`` in the lab: the protocol serves (journaling each request) and
    connects; the pair's proxy knows it carries gRPC and reads its HTTP/2."""
    from faultlab.lab.pair import Lab
    from faultlab.proxy import ProxyError

    with Lab(seed=3) as lab:
        pair = lab.pair("faultlab.examples.calc:CalcV2", protocol="grpc", options={"proto": "v2"})
        assert pair.run(lambda c: c.pow(2, 10)) == 1024  # the v2 proto reached both ends
        served = [e["method"] for e in pair.events() if e["kind"] == "server_request"]
        assert served.count("pow") == 1
        proxy = lab.engine.get(pair.name)
        assert (proxy.protocol, proxy.framing) == ("grpc", "h2")  # it reads grpcio's HTTP/2
        pair.proxy.add_toxic("rpc_error", stream="upstream", nth=1)
        with pytest.raises(ServiceUnavailable):
            pair.run(lambda c: c.pow(2, 3))
        with pytest.raises(ProxyError, match="HTTP/2-aware toxics"):
            pair.proxy.add_toxic("drop", stream="upstream")
