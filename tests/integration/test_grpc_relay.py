"""The HTTP/2-aware gRPC relay with unmodified grpcio clients and servers.

Clean traffic must pass byte for byte (values and metadata checked at the far end), every
call must be journaled once, and each HTTP/2 fault must do what it says to the one call it
selects while the connection and the other calls live on.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import pytest

grpc = pytest.importorskip("grpc")

from google.protobuf import struct_pb2  # noqa: E402

from faultlab.examples.protos import calc_v1_pb2, calc_v1_pb2_grpc  # noqa: E402
from faultlab.lab.pair import Lab, Pair  # noqa: E402
from faultlab.proxy import ProxyError  # noqa: E402

CALL_TIMEOUT = 10.0


@pytest.fixture
def lab() -> Iterator[Lab]:
    """One lab (one journal) per test: each reads only its own events."""
    with Lab(seed=11) as lab:
        yield lab


@pytest.fixture
def pair(lab: Lab) -> Iterator[Pair]:
    pair = lab.pair("faultlab.examples.calc:Calc", protocol="grpc", options={"proto": "v1"})
    yield pair
    pair.close()


@pytest.fixture
def stub(pair: Pair) -> Iterator[Any]:
    channel = grpc.insecure_channel(pair.address.removeprefix("tcp://"))
    yield calc_v1_pb2_grpc.CalcStub(channel)
    channel.close()


def add(stub: Any, a: float, **kw: Any) -> float | Any:
    """The sum, or the grpc status code of the failure."""
    try:
        return stub.Add(calc_v1_pb2.AddRequest(a=a, b=1), timeout=CALL_TIMEOUT, **kw).value
    except grpc.RpcError as exc:
        return exc.code()


def kinds(pair: Pair, *names: str) -> list[dict[str, Any]]:
    return [e for e in pair.events() if e["kind"] in names]


def served(pair: Pair, method: str) -> int:
    return sum(1 for e in kinds(pair, "server_request") if e.get("method") == method)


def test_the_grpc_proxy_reads_http2(pair: Pair, lab: Lab) -> None:
    proxy = lab.engine.get(pair.name)
    assert (proxy.framing, proxy.protocol) == ("h2", "grpc")


def test_ten_thousand_clean_unary_calls_pass_unchanged_and_are_journaled_once(
    pair: Pair, stub: Any
) -> None:
    rng = random.Random(7)
    alphabet = "abcé€😀 \n\x00"
    for i in range(10_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 64)))
        value = struct_pb2.Value(string_value=f"{i}:{text}")
        assert stub.Echo(value, timeout=CALL_TIMEOUT).string_value == value.string_value
    requests = kinds(pair, "wire_request")
    responses = kinds(pair, "wire_response")
    assert len(requests) == len(responses) == 10_000
    assert all(r["grpc_status"] == 0 and "rpc_error" not in r for r in responses)
    assert {r["rpc_method"] for r in requests} == {"/faultlab.calc.v1.Calc/Echo"}
    assert all(r["messages_up"] == 1 and r["messages_down"] == 1 for r in responses)
    assert all(r["deadline"] <= CALL_TIMEOUT + 0.1 for r in requests)  # grpc-timeout read
    assert not kinds(pair, "framing_error", "error", "wire_unanswered")


class _MetadataEcho(grpc.GenericRpcHandler):  # type: ignore[misc]
    """A plain grpcio server answering every call with the metadata it received."""

    def service(self, details: Any) -> Any:
        def echo(request: bytes, context: Any) -> bytes:
            pairs = sorted(
                f"{k}={v}" for k, v in context.invocation_metadata() if k.startswith("x-")
            )
            return ("|".join(pairs) + "#" + request.decode()).encode()

        return grpc.unary_unary_rpc_method_handler(echo)


@pytest.fixture
def metadata_server() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((_MetadataEcho(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def test_after_a_refused_call_headers_are_re_encoded_and_still_arrive_intact(
    lab: Lab, metadata_server: str
) -> None:
    """A refused call's header block never reaches the server, so the HPACK table the client
    and server share drifts apart: every later block (with metadata that would be indexed)
    must still arrive exactly as sent."""
    proxy = lab.engine.create("md", upstream=metadata_server, protocol="grpc")
    try:
        proxy.add_toxic("rpc_error", stream="upstream", sequence="PFPFP", status="UNAVAILABLE")
        channel = grpc.insecure_channel(proxy.listen)
        call = channel.unary_unary("/test.Echo/Call")
        outcomes = []
        for i in range(60):
            metadata = (("x-same", "constant"), ("x-call", str(i)), ("x-round", str(i % 3)))
            try:
                reply = call(f"body{i}".encode(), metadata=metadata, timeout=CALL_TIMEOUT)
                expected = f"x-call={i}|x-round={i % 3}|x-same=constant#body{i}"
                assert reply.decode() == expected
                outcomes.append("ok")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                outcomes.append("fail")
        assert outcomes[:5] == ["ok", "fail", "ok", "fail", "ok"]
        assert outcomes[5:] == ["ok"] * 55
        channel.close()
    finally:
        lab.engine.delete("md")


def test_rpc_error_answers_selected_calls_with_a_status_and_pushback_the_server_never_sees(
    pair: Pair, stub: Any
) -> None:
    pair.proxy.add_toxic(
        "rpc_error",
        stream="upstream",
        sequence="FFP",
        status="RESOURCE_EXHAUSTED",
        message="slow down",
        pushback_ms="250",
        method="*/Add",
    )
    assert add(stub, 1) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert add(stub, 2) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert add(stub, 3) == 4.0
    assert served(pair, "add") == 1  # the refused calls never reached the server
    injected = [r for r in kinds(pair, "wire_response") if r["injected"]]
    assert [r["rpc_error"] for r in injected] == ["grpc_resource_exhausted"] * 2
    assert all(r["retry_after"] == 0.25 and r["grpc_message"] == "slow down" for r in injected)


def test_fail_first_error_mode_speaks_grpc_too(pair: Pair, stub: Any) -> None:
    pair.proxy.add_toxic("fail_first", stream="upstream", mode="error", count=2, kind="unavailable")
    assert [add(stub, i) for i in range(3)] == [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNAVAILABLE,
        3.0,
    ]


def test_rst_stream_resets_one_call_and_the_connection_lives_on(pair: Pair, stub: Any) -> None:
    pair.proxy.add_toxic("rst_stream", stream="upstream", nth=2, code="INTERNAL_ERROR")
    assert [add(stub, i) for i in range(4)] == [1.0, grpc.StatusCode.INTERNAL, 3.0, 4.0]
    assert served(pair, "add") == 3
    assert len(kinds(pair, "connection")) == 1
    reset = kinds(pair, "wire_unanswered")
    assert [(e["error_kind"], e["rst_code"]) for e in reset] == [
        ("BrokenResourceError", "INTERNAL_ERROR")
    ]


def test_a_downstream_reset_comes_after_the_server_did_the_work(pair: Pair, stub: Any) -> None:
    pair.proxy.add_toxic("rst_stream", stream="downstream", nth=1, code="CANCEL")
    assert add(stub, 1) == grpc.StatusCode.CANCELLED
    assert served(pair, "add") == 1
    assert add(stub, 2) == 3.0


def test_an_error_after_the_response_started_replaces_the_rest(pair: Pair, stub: Any) -> None:
    """rpc_error downstream with after_messages: the status comes in trailers after the
    server's headers (a unary call has one message: 0 messages lets none through)."""
    pair.proxy.add_toxic("rpc_error", stream="downstream", nth=1, status="DATA_LOSS")
    assert add(stub, 1) == grpc.StatusCode.DATA_LOSS
    assert add(stub, 2) == 3.0


def test_a_graceful_goaway_leaves_the_call_out_and_the_client_retries_it_elsewhere(
    pair: Pair, stub: Any
) -> None:
    pair.proxy.add_toxic("goaway", stream="upstream", nth=2, scope="proxy")
    assert [add(stub, i) for i in range(4)] == [1.0, 2.0, 3.0, 4.0]  # transparent retry
    assert served(pair, "add") == 4  # each call processed exactly once
    assert len(kinds(pair, "connection")) == 2
    refused = kinds(pair, "wire_unanswered")
    assert len(refused) == 1
    assert refused[0]["refused"] is True


def test_an_abrupt_goaway_fails_the_call_in_flight(pair: Pair, stub: Any) -> None:
    pair.proxy.add_toxic(
        "goaway", stream="upstream", nth=1, mode="abrupt", include_call=True, scope="proxy"
    )
    assert add(stub, 1) == grpc.StatusCode.UNAVAILABLE
    assert add(stub, 2) == 3.0  # a new connection


def test_a_flow_control_stall_holds_a_large_response_until_released(pair: Pair, stub: Any) -> None:
    big = struct_pb2.Value(string_value="x" * 3_000_000)  # far more than one window
    started = time.monotonic()
    pair.proxy.add_toxic("flow_stall", stream="upstream", duration=400)
    assert stub.Echo(big, timeout=CALL_TIMEOUT).string_value == big.string_value
    assert time.monotonic() - started >= 0.4
    holds = [e for e in kinds(pair, "fault") if e.get("decision") == "hold"]
    released = [e for e in kinds(pair, "fault") if e.get("decision") == "release"]
    assert holds
    assert len(released) == 1


@pytest.mark.parametrize("toxic", ["drop", "duplicate", "reorder", "delay"])
def test_frame_toxics_that_would_break_http2_are_refused_with_the_reason(
    pair: Pair, toxic: str
) -> None:
    with pytest.raises(ProxyError, match="HTTP/2-aware toxics"):
        pair.proxy.add_toxic(toxic, stream="downstream")


def test_a_raw_pair_relays_grpc_bytes_so_the_slicer_can_cut_them(lab: Lab) -> None:
    """proxy_framing=None asks for a raw relay; gRPC's implied HTTP/2 framing must not
    override it (the partial-I/O suite slices gRPC byte streams at every byte)."""
    raw = lab.pair(
        "faultlab.examples.calc:Calc", protocol="grpc", options={"proto": "v1"}, proxy_framing=None
    )
    try:
        proxy = lab.engine.get(raw.name)
        assert (proxy.framing, proxy.protocol) == (None, None)
        for stream in ("upstream", "downstream"):
            raw.proxy.add_toxic("slicer", stream=stream, average_size=1, size_variation=0)
        channel = grpc.insecure_channel(raw.address.removeprefix("tcp://"))
        try:
            assert add(calc_v1_pb2_grpc.CalcStub(channel), 41) == 42
        finally:
            channel.close()
        slices = [e for e in kinds(raw, "fault") if e.get("decision") == "slice"]
        assert slices, "the slicer cut nothing: the call did not cross the raw relay"
    finally:
        raw.close()


def test_http2_toxics_are_refused_on_a_proxy_that_does_not_read_http2(lab: Lab) -> None:
    proxy = lab.engine.create("plain", upstream="127.0.0.1:9")
    try:
        for toxic in ("rst_stream", "goaway", "flow_stall"):
            with pytest.raises(ProxyError, match='protocol="grpc"'):
                proxy.add_toxic(toxic, stream="upstream")
    finally:
        lab.engine.delete("plain")


def test_bad_attributes_are_refused_with_a_typed_message(pair: Pair) -> None:
    with pytest.raises(ProxyError, match="unknown gRPC status 'NOPE'"):
        pair.proxy.add_toxic("rpc_error", stream="upstream", status="NOPE")
    with pytest.raises(ProxyError, match="unknown HTTP/2 error code"):
        pair.proxy.add_toxic("rst_stream", stream="upstream", code="WHATEVER")
    with pytest.raises(ProxyError, match="pushback_ms"):
        pair.proxy.add_toxic("rpc_error", stream="upstream", pushback_ms="1\r\nx: y")
    with pytest.raises(ProxyError, match='stream="upstream"'):
        pair.proxy.add_toxic("goaway", stream="downstream")


def test_framing_http_on_grpc_traffic_fails_fast_with_the_reason(lab: Lab, pair: Pair) -> None:
    upstream = lab.engine.get(pair.name).upstream
    proxy = lab.engine.create("h1", upstream=upstream, framing="http")
    try:
        channel = grpc.insecure_channel(proxy.listen)
        stub = calc_v1_pb2_grpc.CalcStub(channel)
        started = time.monotonic()
        assert add(stub, 1) == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < CALL_TIMEOUT / 2  # not a hang until the deadline
        channel.close()
        errors = [e["error"] for e in lab.journal.events() if e["kind"] == "framing_error"]
        assert any('framing="h2"' in error for error in errors)
    finally:
        lab.engine.delete("h1")


def test_a_hundred_bidi_streams_of_a_thousand_messages_each_way_pass_unchanged(
    pair: Pair, stub: Any
) -> None:
    messages = 1000
    for round_ in range(100):
        items = [calc_v1_pb2.Item(index=i, value=round_ * 7919 + i) for i in range(messages)]
        got = [(m.index, m.value) for m in stub.Chat(iter(items), timeout=60)]
        assert got == [(m.index, m.value) for m in items]
    responses = kinds(pair, "wire_response")
    assert len(responses) == 100
    assert all(r["messages_up"] == r["messages_down"] == messages for r in responses)
    assert not kinds(pair, "framing_error", "error", "wire_unanswered")


@pytest.mark.parametrize("toxic", ["rst_stream", "rpc_error"])
def test_a_server_stream_cut_after_n_messages_is_resumed_and_the_oracle_judges_it(
    pair: Pair, stub: Any, toxic: str
) -> None:
    """Cut the first Count stream after 300 items (a reset, or an UNAVAILABLE in trailers):
    the correct client resumes at the next index and gets every item once; the off-by-one
    client repeats the item at the cut, and the stream oracle says so (S2)."""
    from faultlab.examples.stream_clients import resume_count, resume_count_buggy
    from faultlab.oracles.streams import check_stream_resume

    fault = {"status": "UNAVAILABLE"} if toxic == "rpc_error" else {"code": "INTERNAL_ERROR"}
    expected = [(i, i * i) for i in range(1000)]
    for client, should_pass in ((resume_count, True), (resume_count_buggy, False)):
        name = pair.proxy.add_toxic(toxic, stream="downstream", nth=1, after_messages=300, **fault)[
            "name"
        ]
        attempts: list[int] = []
        got = client(stub, 1000, deadline=30.0, max_resumes=5, attempts=attempts)
        pair.proxy.remove_toxic(name)
        if toxic == "rpc_error":
            assert attempts[0] == 300  # the cut came exactly where it was asked
        else:  # a reset may discard messages the client had received but not yet read
            assert 0 < attempts[0] <= 300
        verdict = check_stream_resume(got, expected, label="Count", attempts=attempts)
        assert verdict.passed is should_pass, verdict
        if not should_pass:
            assert [v.property.split()[0] for v in verdict.failed_checks()] == ["S2"]


def test_stream_latency_slows_the_selected_method_and_not_the_calls_beside_it(
    pair: Pair, stub: Any
) -> None:
    """A Sleep call's request is delayed 400 ms; Add calls made meanwhile on the same
    connection are not held behind it (``latency`` would hold them all)."""
    pair.proxy.add_toxic("stream_latency", stream="upstream", latency=400, method="*/Sleep")
    with futures.ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        slow = pool.submit(lambda: stub.Sleep(calc_v1_pb2.SleepRequest(ms=0), timeout=10))
        fast_took = []
        for i in range(5):
            t0 = time.monotonic()
            assert add(stub, i) == i + 1.0
            fast_took.append(time.monotonic() - t0)
        slow.result(timeout=10)
        slow_took = time.monotonic() - started
    assert slow_took >= 0.4
    assert max(fast_took) < 0.4  # not behind the held call (generous on a loaded machine)
    delays = [e for e in kinds(pair, "fault") if e.get("decision") == "delay"]
    assert [e["delay_ms"] for e in delays] == [400]
    assert len(kinds(pair, "wire_response")) == 6


def test_stream_latency_downstream_delays_the_answers_of_every_nth_call(
    pair: Pair, stub: Any
) -> None:
    pair.proxy.add_toxic("stream_latency", stream="downstream", latency=300, every=2)
    took = []
    for i in range(4):
        t0 = time.monotonic()
        assert add(stub, i) == i + 1.0
        took.append(time.monotonic() - t0)
    assert took[1] >= 0.3
    assert took[3] >= 0.3
    assert len(kinds(pair, "wire_response")) == 4


def _count(stub: Any, n: int) -> list[tuple[int, int]] | Any:
    try:
        return [(m.index, m.value) for m in stub.Count(calc_v1_pb2.CountRequest(n=n), timeout=30)]
    except grpc.RpcError as exc:
        return exc.code()


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("drop", [(i, i * i) for i in range(1000) if i != 499]),
        ("duplicate", [(i, i * i) for i in range(500)] + [(i, i * i) for i in range(499, 1000)]),
        (
            "reorder",
            [(i, i * i) for i in range(499)]
            + [(500, 250000), (499, 249001)]
            + [(i, i * i) for i in range(501, 1000)],
        ),
    ],
)
def test_grpc_message_faults_act_on_one_message_inside_a_server_stream(
    pair: Pair, stub: Any, action: str, expected: list[tuple[int, int]]
) -> None:
    """The 500th item of a 1,000-item server stream is dropped, repeated or swapped with the
    next; the stream itself, the connection and flow control stay healthy (a second stream
    right after is intact)."""
    pair.proxy.add_toxic("grpc_message", stream="downstream", action=action, nth_message=500,
                         nth=1)  # fmt: skip
    assert _count(stub, 1000) == expected
    assert _count(stub, 1000) == [(i, i * i) for i in range(1000)]  # only the 1st call
    faults = [e for e in kinds(pair, "fault") if e.get("decision") == action]
    assert [e["message"] for e in faults] == [500]


def test_a_corrupt_message_reaches_the_decoder_and_the_call_fails_or_differs(
    pair: Pair, stub: Any
) -> None:
    pair.proxy.add_toxic("grpc_message", stream="downstream", action="corrupt", nth_message=3,
                         nth=1)  # fmt: skip
    got = _count(stub, 10)
    assert got != [(i, i * i) for i in range(10)]  # the damage is visible to the client
    assert _count(stub, 10) == [(i, i * i) for i in range(10)]


def test_dropped_and_duplicated_upload_messages_keep_flow_control_balanced(
    pair: Pair, stub: Any
) -> None:
    """Client-streaming Sum with every 2nd message dropped, then duplicated: the server
    sums what it got, and 2 MB more flows on the same connection afterwards (a leaked or
    over-granted window would stall or break it)."""
    items = [calc_v1_pb2.Item(index=i, value=1) for i in range(2000)]
    pair.proxy.add_toxic("grpc_message", name="drop", stream="upstream", action="drop",
                         probability=0.5, nth=1)  # fmt: skip
    dropped_sum = stub.Sum(iter(items), timeout=30).value
    dropped = [e for e in kinds(pair, "fault") if e.get("decision") == "drop"]
    assert dropped_sum == 2000 - len(dropped)
    assert 0 < len(dropped) < 2000
    pair.proxy.remove_toxic("drop")
    pair.proxy.add_toxic("grpc_message", name="dup", stream="upstream", action="duplicate",
                         probability=0.5, nth=1)  # fmt: skip
    duplicated_sum = stub.Sum(iter(items), timeout=30).value
    duplicated = [e for e in kinds(pair, "fault") if e.get("decision") == "duplicate"]
    assert duplicated_sum == 2000 + len(duplicated)
    big = struct_pb2.Value(string_value="y" * 2_000_000)
    assert stub.Echo(big, timeout=CALL_TIMEOUT).string_value == big.string_value


def test_concurrent_calls_keep_their_headers_while_every_third_is_refused(
    lab: Lab, metadata_server: str
) -> None:
    """Eight threads share one connection; refusals make the relay re-encode header blocks
    while other streams are in flight: every answered call still gets exactly its own
    metadata and body."""
    proxy = lab.engine.create("md-many", upstream=metadata_server, protocol="grpc")
    try:
        proxy.add_toxic("rpc_error", stream="upstream", every=3, scope="proxy", status=14)
        channel = grpc.insecure_channel(proxy.listen)
        call = channel.unary_unary("/test.Echo/Call")

        def one(i: int) -> str:
            metadata = (("x-call", str(i)), ("x-thread", str(i % 8)), ("x-pad", "p" * (i % 50)))
            try:
                reply = call(f"b{i}".encode(), metadata=metadata, timeout=CALL_TIMEOUT)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE
                return "refused"
            expected = f"x-call={i}|x-pad={'p' * (i % 50)}|x-thread={i % 8}#b{i}"
            assert reply.decode() == expected
            return "ok"

        with futures.ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(one, range(300)))
        assert outcomes.count("refused") == 100
        assert outcomes.count("ok") == 200
        channel.close()
        assert not [e for e in lab.journal.events() if e["kind"] in ("error", "framing_error")]
    finally:
        lab.engine.delete("md-many")


def test_a_call_the_server_has_not_answered_is_journaled_soon_with_its_arrival_time(
    pair: Pair, stub: Any
) -> None:
    """The relay reads a clean request after forwarding it (once the answer went out, or
    after DEFER_DELAY): a call the server sits on is still journaled within milliseconds,
    timed when its bytes arrived, not when they were read."""
    from faultlab.proxy.h2relay import DEFER_DELAY

    add(stub, 1)  # the connection is up
    with futures.ThreadPoolExecutor(1) as pool:
        sent = pair.journal.now()
        slow = pool.submit(lambda: stub.Sleep(calc_v1_pb2.SleepRequest(ms=800), timeout=10))
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            sleeps = [e for e in kinds(pair, "wire_request") if e["rpc_method"].endswith("/Sleep")]
            if sleeps:
                break
            time.sleep(0.005)
        assert len(sleeps) == 1, "the unanswered call was not journaled within 0.5 s"
        exchange = sleeps[0]["exchange"]
        # journaled while the server still sleeps, timed when the request came
        assert not [e for e in kinds(pair, "wire_response") if e["exchange"] == exchange]
        assert sent <= sleeps[0]["t"] < sent + 0.4
        assert slow.result().ms == 800
    answers = [e for e in kinds(pair, "wire_response") if e["exchange"] == exchange]
    assert len(answers) == 1
    assert answers[0]["t"] >= sleeps[0]["t"] + 0.8
    assert DEFER_DELAY <= 0.05  # the bound the 0.5 s wait above leaves room for


def test_each_call_is_journaled_request_first_both_timed_as_they_crossed(
    pair: Pair, stub: Any
) -> None:
    for a in range(200):
        assert add(stub, a) == a + 1
    events = [e for e in pair.events() if e["kind"] in ("wire_request", "wire_response")]
    assert [e["kind"] for e in events] == ["wire_request", "wire_response"] * 200
    for request, response in zip(events[::2], events[1::2], strict=True):
        assert request["exchange"] == response["exchange"]
        assert request["t"] <= response["t"]
        assert request["seq"] < response["seq"]


def test_closed_http2_connections_leave_no_cycles(pair: Pair, lab: Lab) -> None:
    """The relay reads the client's bytes late (H2Relay.defer): once the connection closed,
    nothing of it is kept alive by a reference cycle (it is freed by reference counting)."""
    import gc

    from faultlab.proxy.proxy import Connection

    proxy = lab.engine.get(pair.name)
    gc.collect()
    gc.disable()
    try:
        for _ in range(5):
            channel = grpc.insecure_channel(pair.address.removeprefix("tcp://"))
            stub = calc_v1_pb2_grpc.CalcStub(channel)
            for a in range(4):  # the first call shares a read with the preface; later are read late
                assert add(stub, a) == a + 1
            channel.close()
        deadline = time.monotonic() + 10
        while proxy.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # late transport callbacks, and the relay's timer (DEFER_DELAY)
        alive = sum(1 for obj in gc.get_objects() if isinstance(obj, Connection))
        assert alive == 0, "closed HTTP/2 connections are kept alive by reference cycles"
    finally:
        gc.enable()
