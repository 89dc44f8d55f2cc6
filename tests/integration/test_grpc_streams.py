"""gRPC streams end to end: the calc service's Count, Sum and Chat over real sockets.

Plain grpcio stubs from the generated ``calc_v*_pb2_grpc`` (what users have)
against faultlab's ``GrpcServer``: each kind of stream with its values
checked, errors before and during a stream, a cancelled stream stopping its
server generator, and resumable clients through the byte-level fault proxy,
judged by ``check_stream_resume``. Timing checks are one-sided and every
blocking call has a timeout.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")

from faultlab.examples.calc import Calc, DomainError  # noqa: E402
from faultlab.examples.protos import (  # noqa: E402
    calc_v1_pb2,
    calc_v1_pb2_grpc,
    calc_v2_pb2,
    calc_v2_pb2_grpc,
)
from faultlab.examples.stream_clients import resume_count, resume_count_buggy  # noqa: E402
from faultlab.lab.pair import Lab  # noqa: E402
from faultlab.oracles import check_stream_resume  # noqa: E402
from faultlab.oracles.streams import S2  # noqa: E402
from faultlab.rpc.grpc import KIND_KEY, GrpcServer  # noqa: E402

pb: Any = calc_v1_pb2
TIMEOUT = 20.0
N = 1000


def squares(start: int, n: int) -> list[tuple[int, int]]:
    return [(i, i * i) for i in range(start, n)]


class Watched(Calc):
    """Calc whose Count streams say, from the server side, when they have ended."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.ended = threading.Event()
        self.fail_after: int | None = None

    def count(
        self,
        start: int = 0,
        n: int = 0,
        delay_ms: int = 0,
        *,
        stopped: threading.Event | None = None,
    ) -> Iterator[dict[str, int]]:
        inner = super().count(start, n, delay_ms, stopped=stopped)
        self.started.set()
        try:
            for sent, item in enumerate(inner):
                if self.fail_after is not None and sent == self.fail_after:
                    raise DomainError("the stream gave up")
                yield item
        finally:
            self.ended.set()


@pytest.fixture
def service() -> Watched:
    return Watched()


@pytest.fixture
def stub(service: Watched) -> Iterator[Any]:
    with GrpcServer(service, address="tcp://127.0.0.1:0") as server:
        target = server.address.split("://", 1)[1]
        with grpc.insecure_channel(target) as channel:
            yield calc_v1_pb2_grpc.CalcStub(channel)


def test_server_stream_of_1000_items(stub: Any) -> None:
    items = [(m.index, m.value) for m in stub.Count(pb.CountRequest(n=N), timeout=TIMEOUT)]
    assert items == squares(0, N)
    resumed = stub.Count(pb.CountRequest(start=990, n=N), timeout=TIMEOUT)
    assert [(m.index, m.value) for m in resumed] == squares(990, N)
    assert list(stub.Count(pb.CountRequest(start=5, n=5), timeout=TIMEOUT)) == []


@pytest.mark.parametrize(
    ("fields", "match"), [({"n": 10_000_001}, "above"), ({"n": 3, "delay_ms": 10_001}, "delay")]
)
def test_count_refuses_unbounded_work_with_invalid_argument(
    stub: Any, fields: dict[str, int], match: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        list(stub.Count(pb.CountRequest(**fields), timeout=TIMEOUT))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert match in err.value.details()
    assert dict(err.value.trailing_metadata())[KIND_KEY] == "invalid_params"


def test_an_error_mid_stream_ends_it_with_the_kind_and_status(stub: Any, service: Watched) -> None:
    service.fail_after = 3
    call = stub.Count(pb.CountRequest(n=N), timeout=TIMEOUT)
    got = [next(call).index for _ in range(3)]
    with pytest.raises(grpc.RpcError) as err:
        next(call)
    assert got == [0, 1, 2]
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert dict(err.value.trailing_metadata())[KIND_KEY] == "application_error"
    assert "the stream gave up" in err.value.details()


def test_client_stream_sums_1000_items(stub: Any) -> None:
    sent = (pb.Item(index=i, value=i * 7) for i in range(N))
    reply = stub.Sum(sent, timeout=TIMEOUT)
    assert reply.value == sum(i * 7 for i in range(N))
    assert stub.Sum(iter(()), timeout=TIMEOUT).value == 0


def test_bidi_stream_echoes_1000_messages_each_way(stub: Any) -> None:
    sent = [pb.Item(index=i, value=-i * 3) for i in range(N)]
    echoed = [(m.index, m.value) for m in stub.Chat(iter(sent), timeout=TIMEOUT)]
    assert echoed == [(i, -i * 3) for i in range(N)]


def test_bidi_stream_echoes_each_item_as_it_arrives(stub: Any) -> None:
    """Ping-pong: the next item is sent only after the previous one came back, so an
    echo that waited for the end of the client stream would hang (bounded by timeouts)."""
    outbox: queue.Queue[Any] = queue.Queue()

    def requests() -> Iterator[Any]:
        while (item := outbox.get(timeout=TIMEOUT)) is not None:
            yield item

    call = stub.Chat(requests(), timeout=TIMEOUT)
    try:
        for i in range(20):
            outbox.put(pb.Item(index=i, value=i + 100))
            reply = next(call)
            assert (reply.index, reply.value) == (i, i + 100)
    finally:
        outbox.put(None)
    assert list(call) == []


def test_v2_stubs_stream_from_a_v1_server() -> None:
    """Streams keep their field numbers across versions: a v2 client reads a v1 server
    (which answers the sibling version's path), items and refusals alike."""
    v2: Any = calc_v2_pb2
    with GrpcServer(Calc(), address="tcp://127.0.0.1:0", proto="v1") as server:
        target = server.address.split("://", 1)[1]
        with grpc.insecure_channel(target) as channel:
            stub = calc_v2_pb2_grpc.CalcStub(channel)
            got = stub.Count(v2.CountRequest(start=2, n=6), timeout=TIMEOUT)
            assert [(m.index, m.value) for m in got] == squares(2, 6)
            items = iter([v2.Item(index=1, value=5), v2.Item(index=2, value=6)])
            assert [m.value for m in stub.Chat(items, timeout=TIMEOUT)] == [5, 6]


@pytest.mark.parametrize("delay_ms", [10_000, 0], ids=["sleeping", "busy"])
def test_cancel_stops_the_server_generator(stub: Any, service: Watched, delay_ms: int) -> None:
    """Cancelled while it waits 10 s between items, or while it streams flat out
    toward ten million: the server's generator ends at once either way."""
    call = stub.Count(pb.CountRequest(n=10_000_000, delay_ms=delay_ms), timeout=60)
    assert next(call).index == 0
    assert service.started.is_set()
    assert not service.ended.is_set()
    t0 = time.monotonic()
    call.cancel()
    assert service.ended.wait(5.0), "the server kept streaming after the client cancelled"
    assert time.monotonic() - t0 < 5.0
    reply = stub.Count(pb.CountRequest(n=3), timeout=TIMEOUT)  # the server still serves
    assert [m.index for m in reply] == [0, 1, 2]


# ---- resuming through the fault proxy ---------------------------------------------------------
@pytest.fixture
def broken_stub() -> Iterator[tuple[Any, Any]]:
    """A stub through faultlab's byte-level proxy, whose ``limit_data`` toxic closes
    every connection after 6000 bytes down: each Count attempt breaks after a few
    hundred items, and the next one (a new connection) gets as many again."""
    with Lab(seed=7) as lab:
        pair = lab.pair("faultlab.examples.calc:Calc", protocol="grpc", proxy_framing=None)
        pair.proxy.add_toxic("limit_data", stream="downstream", bytes=6000)
        target = pair.proxy.address.split("://", 1)[1]
        options = [("grpc.enable_retries", 0), ("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(target, options=options) as channel:
            yield calc_v1_pb2_grpc.CalcStub(channel), pair


def test_a_correct_resume_delivers_every_item_once(broken_stub: tuple[Any, Any]) -> None:
    stub, pair = broken_stub
    attempts: list[int] = []
    t0 = time.monotonic()
    got = resume_count(stub, N, deadline=TIMEOUT, max_resumes=50, attempts=attempts)
    assert time.monotonic() - t0 < TIMEOUT
    assert len(attempts) >= 2, "the stream never broke: the check below would prove nothing"
    verdict = check_stream_resume(
        got, squares(0, N), journal=pair.events(), label="Count", attempts=attempts
    )
    assert verdict.passed, verdict.report()
    assert f"over {len(attempts)} attempts" in verdict.message


def test_an_off_by_one_resume_is_caught_as_a_duplicate(broken_stub: tuple[Any, Any]) -> None:
    stub, pair = broken_stub
    attempts: list[int] = []
    got = resume_count_buggy(stub, N, deadline=TIMEOUT, max_resumes=50, attempts=attempts)
    assert len(attempts) >= 2
    verdict = check_stream_resume(
        got, squares(0, N), journal=pair.events(), label="Count", attempts=attempts
    )
    assert not verdict.passed
    assert verdict.property == S2
    first_break = attempts[0] - 1
    assert f"index {first_break} " in verdict.message
    assert "by attempts 1 and 2" in verdict.message


def test_one_deadline_covers_the_whole_resumed_stream(broken_stub: tuple[Any, Any]) -> None:
    """1000 items 20 ms apart take 20 s; a 1 s deadline ends the stream, resumes and
    all, within it (plus a scheduling margin), never 1 s per attempt."""
    stub, _ = broken_stub
    t0 = time.monotonic()
    with pytest.raises((grpc.RpcError, TimeoutError)) as err:
        resume_count(stub, N, deadline=1.0, max_resumes=50, delay_ms=20)
    assert time.monotonic() - t0 < 1.0 + 2.0
    if isinstance(err.value, grpc.RpcError):
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
