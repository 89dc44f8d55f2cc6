"""A Node.js ``@grpc/grpc-js`` server, run as a ``faultlab.Command``, behind a proxy with
``protocol="grpc"`` (the HTTP/2-aware relay), called with a plain grpcio stub.

``services/node_grpc/server.js`` serves the calc service from ``calc_v1.proto`` (loaded at
run time with ``@grpc/proto-loader``) and logs one line ``call <Method>`` per call it
handles, so a test can count what reached the server. Install its packages with
``npm ci --prefix tests/blackbox/services/node_grpc``; without node or them the tests skip.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import faultlab
from faultlab.examples.protos import calc_v1_pb2, calc_v1_pb2_grpc
from faultlab.lab.backends.command import CommandServer
from faultlab.lab.pair import Lab, Pair

grpc = pytest.importorskip("grpc")
empty_pb2 = pytest.importorskip("google.protobuf.empty_pb2")
struct_pb2 = pytest.importorskip("google.protobuf.struct_pb2")
pb: Any = calc_v1_pb2  # generated modules: no types
pb_grpc: Any = calc_v1_pb2_grpc

pytestmark = pytest.mark.timeout(120)

NODE_DIR = Path(__file__).parent / "services" / "node_grpc"
SERVER = NODE_DIR / "server.js"
PACKAGES = ("@grpc/grpc-js", "@grpc/proto-loader")
METHOD = "/faultlab.calc.v1.Calc/{}"
CALL_TIMEOUT = 10.0
STREAM_TIMEOUT = 30.0
STREAMS = {"Count", "Sum", "Chat"} <= set(pb.DESCRIPTOR.services_by_name["Calc"].methods_by_name)
needs_streams = pytest.mark.skipif(
    not STREAMS, reason="calc_v1.proto has no Count/Sum/Chat streaming methods yet"
)


def _node() -> str:
    """The node binary, or a skip saying what is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed on this machine")
    for package in PACKAGES:
        manifest = NODE_DIR / "node_modules" / package / "package.json"
        if not manifest.exists():
            pytest.skip(
                f"npm ci --prefix tests/blackbox/services/node_grpc has not run: {manifest} "
                "is missing"
            )
    return node


def _answers_about(address: str) -> bool:
    """Readiness: the server answers About (straight to it, not through the proxy)."""
    with grpc.insecure_channel(address) as channel:
        reply = pb_grpc.CalcStub(channel).About(empty_pb2.Empty(), timeout=1.0)
    return bool(reply.service == "calc")


def node_command(node: str) -> faultlab.Command:
    return faultlab.Command(
        [node, str(SERVER), "{port}", "{host}"],
        cwd=str(NODE_DIR),
        ready=_answers_about,
        ready_timeout=30.0,
        stop_timeout=5.0,
    )


def _node_processes(port: int) -> list[int]:
    """Pids of live (not zombie) processes running this server.js on ``port``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(SERVER).encode() in argv and str(port).encode() in argv and state != "Z":
            found.append(int(entry.name))
    return found


@dataclass
class NodeGrpc:
    lab: Lab
    pair: Pair
    server: CommandServer
    channel: Any  # grpc.Channel
    stub: Any  # calc_v1_pb2_grpc.CalcStub

    def calls(self, method: str) -> int:
        """How many ``method`` calls the Node server handled so far (its stdout log)."""
        lines = self.server.stdout(limit=10_000_000).splitlines()
        return lines.count(f"call {method}")

    def events(self, kind: str, method: str | None = None) -> list[dict[str, Any]]:
        """This pair's journal events of one kind (of one gRPC method, when given)."""
        return [
            e
            for e in self.pair.events()
            if e["kind"] == kind
            and e.get("proxy") == self.pair.name
            and (method is None or e.get("rpc_method", e.get("method")) == METHOD.format(method))
        ]

    def responses(self) -> dict[int, dict[str, Any]]:
        """wire_response events of this pair by exchange (HTTP/2 stream id)."""
        return {e["exchange"]: e for e in self.events("wire_response")}

    def assert_clean_wire(self) -> None:
        """The relay reported no framing or connection error."""
        bad = self.events("framing_error") + self.events("error")
        assert not bad, json.dumps(bad, indent=1, default=str)


@pytest.fixture
def node_grpc(faultlab_seed: int) -> Iterator[NodeGrpc]:
    node = _node()
    lab = Lab(seed=faultlab_seed)
    channel: Any = None
    port: int | None = None
    try:
        pair = lab.pair(node_command(node), protocol="grpc", options={"proto": "v1"})
        assert isinstance(pair.server, CommandServer)
        port = pair.server.port
        assert lab.engine.get(pair.name).framing == "h2"
        channel = grpc.insecure_channel(f"{pair.host}:{pair.port}")
        yield NodeGrpc(lab, pair, pair.server, channel, pb_grpc.CalcStub(channel))
    finally:
        if channel is not None:
            channel.close()
        lab.close()
    assert _node_processes(port) == [], f"node server on port {port} outlived lab.close()"


def test_200_unary_calls_pass_and_are_journaled_once_each(node_grpc: NodeGrpc) -> None:
    for i in range(200):
        reply = node_grpc.stub.Add(pb.AddRequest(a=i, b=0.5), timeout=CALL_TIMEOUT)
        assert reply.value == i + 0.5
    assert node_grpc.calls("Add") == 200
    requests = node_grpc.events("wire_request", "Add")
    responses = node_grpc.responses()
    assert len(requests) == 200
    assert len(responses) == 200, sorted(responses)
    assert {r["exchange"] for r in requests} == set(responses)
    for request in requests:
        assert request["protocol"] == "grpc"
        assert request["http2"] is True
        assert 0 < request["deadline"] <= CALL_TIMEOUT + 1
        response = responses[request["exchange"]]
        assert response["grpc_status"] == 0, response
        assert response["injected"] is False
        assert (response["messages_up"], response["messages_down"]) == (1, 1), response
    node_grpc.assert_clean_wire()


def test_other_unary_methods_pass_unchanged(node_grpc: NodeGrpc) -> None:
    stub = node_grpc.stub
    about = stub.About(empty_pb2.Empty(), timeout=CALL_TIMEOUT)
    assert (about.service, about.version) == ("calc", 1)
    assert stub.Div(pb.DivRequest(a=7, b=2), timeout=CALL_TIMEOUT).value == 3.5
    value = struct_pb2.Value()
    value.struct_value.update({"list": [1, "two", True, None], "nested": {"x": 2.5}})
    assert stub.Echo(value, timeout=CALL_TIMEOUT) == value
    assert stub.CounterIncr(pb.IncrRequest(amount=5, key="k"), timeout=CALL_TIMEOUT).value == 5
    assert stub.CounterIncr(pb.IncrRequest(amount=5, key="k"), timeout=CALL_TIMEOUT).value == 5
    assert stub.CounterIncr(pb.IncrRequest(), timeout=CALL_TIMEOUT).value == 6
    assert stub.CounterGet(empty_pb2.Empty(), timeout=CALL_TIMEOUT).value == 6
    statuses = [r["grpc_status"] for r in node_grpc.responses().values()]
    assert statuses == [0] * 7
    node_grpc.assert_clean_wire()


def test_a_message_larger_than_the_flow_control_windows_passes(node_grpc: NodeGrpc) -> None:
    text = "".join(chr(0x20 + i % 95) for i in range(3_000_000))  # 3 MB: WINDOW_UPDATEs flow
    reply = node_grpc.stub.Echo(struct_pb2.Value(string_value=text), timeout=STREAM_TIMEOUT)
    assert reply.string_value == text
    (response,) = node_grpc.responses().values()
    assert response["grpc_status"] == 0, response
    assert response["size"] > 3_000_000, response  # the reply's bytes
    node_grpc.assert_clean_wire()


def test_rpc_error_nth_2_fails_only_the_second_call_before_the_server(
    node_grpc: NodeGrpc,
) -> None:
    node_grpc.pair.proxy.add_toxic(
        "rpc_error", stream="upstream", status="UNAVAILABLE", nth=2, method="*/Add"
    )
    outcomes: list[Any] = []
    for i in range(5):
        try:
            reply = node_grpc.stub.Add(pb.AddRequest(a=i, b=100), timeout=CALL_TIMEOUT)
            outcomes.append(reply.value)
        except grpc.RpcError as exc:
            outcomes.append(exc.code())
    assert outcomes == [100.0, grpc.StatusCode.UNAVAILABLE, 102.0, 103.0, 104.0]
    assert node_grpc.calls("Add") == 4, "the injected call reached the Node server"
    faults = [e for e in node_grpc.events("fault") if e.get("decision") == "rpc_error"]
    (fault,) = faults
    assert fault["grpc_status"] == 14, fault
    responses = node_grpc.responses()
    assert [r["grpc_status"] for r in responses.values()] == [0, 14, 0, 0, 0]
    injected = [r for r in responses.values() if r["injected"]]
    (answered,) = injected
    assert answered["messages_down"] == 0, answered
    node_grpc.assert_clean_wire()


def test_invalid_argument_from_the_server_is_an_rpc_error_on_the_wire(
    node_grpc: NodeGrpc,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        node_grpc.stub.Div(pb.DivRequest(a=1, b=0), timeout=CALL_TIMEOUT)
    error: Any = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "division by zero"
    assert node_grpc.calls("Div") == 1
    (response,) = node_grpc.responses().values()
    assert response["injected"] is False
    assert response["grpc_status"] == 3
    assert response["rpc_error"] == "grpc_invalid_argument", response
    assert response["transient"] is False
    assert (response["messages_up"], response["messages_down"]) == (1, 0), response
    node_grpc.assert_clean_wire()


def test_the_journal_reads_grpc_message_as_the_client_does(node_grpc: NodeGrpc) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        node_grpc.stub.Div(pb.DivRequest(a=1, b=0), timeout=CALL_TIMEOUT)
    error: Any = caught.value
    assert error.details() == "division by zero"
    (response,) = node_grpc.responses().values()
    assert response["grpc_message"] == error.details()


@needs_streams
def test_a_server_stream_of_1000_items_passes_unchanged(node_grpc: NodeGrpc) -> None:
    items = list(node_grpc.stub.Count(pb.CountRequest(start=0, n=1000), timeout=STREAM_TIMEOUT))
    assert [(item.index, item.value) for item in items] == [(i, i * i) for i in range(1000)]
    (request,) = node_grpc.events("wire_request", "Count")
    response = node_grpc.responses()[request["exchange"]]
    assert response["grpc_status"] == 0, response
    assert (response["messages_up"], response["messages_down"]) == (1, 1000), response
    node_grpc.assert_clean_wire()


@needs_streams
def test_a_client_stream_of_1000_items_is_summed(node_grpc: NodeGrpc) -> None:
    items = (pb.Item(index=i, value=3 * i) for i in range(1000))
    assert node_grpc.stub.Sum(items, timeout=STREAM_TIMEOUT).value == 3 * 999 * 1000 / 2
    (request,) = node_grpc.events("wire_request", "Sum")
    response = node_grpc.responses()[request["exchange"]]
    assert response["grpc_status"] == 0, response
    assert (response["messages_up"], response["messages_down"]) == (1000, 1), response
    node_grpc.assert_clean_wire()


@needs_streams
def test_a_bidi_stream_of_1000_messages_is_echoed_in_order(node_grpc: NodeGrpc) -> None:
    sent = [pb.Item(index=i, value=7 * i + 1) for i in range(1000)]
    echoed = list(node_grpc.stub.Chat(iter(sent), timeout=STREAM_TIMEOUT))
    assert echoed == sent
    (request,) = node_grpc.events("wire_request", "Chat")
    response = node_grpc.responses()[request["exchange"]]
    assert response["grpc_status"] == 0, response
    assert (response["messages_up"], response["messages_down"]) == (1000, 1000), response
    node_grpc.assert_clean_wire()


def test_closing_the_lab_stops_the_node_server(faultlab_seed: int) -> None:
    node = _node()
    with Lab(seed=faultlab_seed) as lab:
        pair = lab.pair(node_command(node), protocol="grpc", options={"proto": "v1"})
        assert isinstance(pair.server, CommandServer)
        pid, port = pair.server.pid, pair.server.port
        assert pid is not None
        assert _node_processes(port) == [pid]
        assert "node grpc calc listening on" in pair.server.stdout()
    deadline = time.monotonic() + 10
    while _node_processes(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _node_processes(port) == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
