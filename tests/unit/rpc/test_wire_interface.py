"""The one interface the lab, the proxy and the bench call: each protocol's wire knowledge.

Frames are built with each protocol's own client codec, so the wire view and the codec
must agree: the proxy reads what the client sends and answers what the client reads.
"""

from __future__ import annotations

from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlab.codecs.framing.http import HttpFramer, HttpMessage
from faultlab.errors import LocalProtocolError
from faultlab.examples.calc import Calc
from faultlab.rpc import errors as rpc_errors
from faultlab.rpc.base import (
    RpcProtocol,
    WireProtocol,
    get_protocol,
    get_rpc_protocol,
    protocol_names,
)
from faultlab.rpc.frames import WireMessage
from faultlab.rpc.messages import ErrorInfo, Request
from faultlab.rpc.service import Service
from faultlab.toxics import _rpcwire

READABLE = ["jsonrpc", "xmlrpc", "msgpackrpc", "binrpc", "rest"]
SERVICE = Service(Calc())


def request_frame(name: str, request: Request, *, http: bool) -> bytes:
    """What the protocol's own client puts on the wire for ``request``."""
    protocol = get_rpc_protocol(name)
    if not http:
        return protocol.encode_request(request)
    verb, target, body = protocol.http_request(request)
    head = h11.Request(method=verb, target=target, headers=[("Host", "x"), ("Content-Type", "x")])
    return HttpFramer("client", one_way=True).frame(HttpMessage(head=head, body=body))


def read_reply(name: str, data: bytes, request: Request, *, http: bool) -> Any:
    """What the protocol's own client makes of ``data`` (a reply frame)."""
    protocol = get_rpc_protocol(name)
    if not http:
        return protocol.decode_response(data)
    framer = HttpFramer("client", one_way=True)
    framer.receive_data(data)
    reply = framer.next_frame()
    assert isinstance(reply, HttpMessage)
    assert isinstance(reply.head, h11.Response)
    return protocol.http_response(reply.head.status_code, reply.body, request)


CASES = [(n, False) for n in READABLE if n != "rest"] + [
    (n, True) for n in READABLE if "http" in get_protocol(n).framings
]


def test_every_protocol_is_registered_through_one_interface() -> None:
    assert set(READABLE) | {"grpc"} <= set(protocol_names())
    assert all(isinstance(get_protocol(n), WireProtocol) for n in protocol_names())
    assert set(_rpcwire.protocols()) >= set(READABLE)
    assert "grpc" not in _rpcwire.protocols()  # grpcio's HTTP/2: the proxy sees bytes


def test_grpc_is_a_protocol_served_by_grpcio_not_rpcserver() -> None:
    grpc = get_protocol("grpc")
    assert not isinstance(grpc, RpcProtocol)
    assert grpc.incompatibility("tcp") is None
    assert "grpcio owns its sockets" in (grpc.incompatibility("udp") or "")
    assert grpc.version_options(2) == {"proto": "v2"}
    assert "travels in HTTP/2" in (grpc.frame_reason("length-prefix", False) or "")
    assert grpc.frame_reason("h2", False) is None  # the HTTP/2-aware relay reads it
    with pytest.raises(LocalProtocolError, match="not served by faultlab's RpcServer"):
        get_rpc_protocol("grpc")


@pytest.mark.parametrize(
    ("name", "scheme", "reason"),
    [
        ("rest", "udp", "carried over HTTP"),
        ("rest", "tcp", None),
        ("binrpc", "udp", None),
    ],
)
def test_incompatibility_is_the_protocols_answer(
    name: str, scheme: str, reason: str | None
) -> None:
    got = get_protocol(name).incompatibility(scheme)
    assert (got is None) if reason is None else (reason in (got or ""))


@pytest.mark.parametrize(("name", "http"), CASES)
def test_a_request_frame_names_its_method_id_and_kind(name: str, http: bool) -> None:
    protocol = get_protocol(name)
    request = Request("counter.incr", [4], 42)
    message = protocol.read_frame(request_frame(name, request, http=http), request=True, http=http)
    assert message is not None
    assert message.kind == "request"
    assert message.method == "counter.incr"
    assert message.id in (42, None)  # XML-RPC and REST carry no ids
    assert protocol.read_frame(b"\x00garbage\xff", request=True, http=http) is None


@pytest.mark.parametrize(("name", "http"), CASES)
def test_a_rewritten_request_still_reads_as_the_same_call(name: str, http: bool) -> None:
    protocol = get_rpc_protocol(name)
    request = Request("add", [2, 3], 9)
    message = protocol.read_frame(request_frame(name, request, http=http), request=True, http=http)
    assert message is not None
    again = protocol.read_frame(protocol.write_frame(message), request=True, http=http)
    assert again is not None
    assert (again.method, again.items[0].params, again.id) == ("add", [2, 3], message.id)


@pytest.mark.parametrize(("name", "http"), CASES)
@pytest.mark.parametrize(
    ("kind", "cls"),
    [("unavailable", rpc_errors.ServiceUnavailable), ("invalid_params", rpc_errors.InvalidParams)],
)
def test_the_native_error_reply_is_what_the_client_raises(
    name: str, http: bool, kind: str, cls: type[rpc_errors.RpcError]
) -> None:
    protocol = get_protocol(name)
    request = Request("add", [1, 2], 5)
    message = protocol.read_frame(request_frame(name, request, http=http), request=True, http=http)
    assert message is not None
    info = _rpcwire.error_info(kind, 0, "")
    reply = protocol.error_reply(message, info)
    assert reply is not None
    response = read_reply(name, reply, request, http=http)
    with pytest.raises(cls):
        response.unwrap()
    # the same reply, read as the proxy reads it: its error and whether it is transient
    seen = protocol.read_frame(reply, request=False, http=http)
    assert seen is not None
    assert seen.kind == "response"
    error = protocol.reply_error(seen)
    assert error is not None
    assert error.kind == kind
    assert protocol.is_transient(error) is (kind == "unavailable")


@pytest.mark.parametrize("name", ["jsonrpc", "msgpackrpc", "binrpc"])
def test_a_result_is_no_error_and_a_notification_gets_no_reply(name: str) -> None:
    protocol = get_rpc_protocol(name)
    reply = protocol.handle(protocol.encode_request(Request("add", [1, 2], 3)), SERVICE.dispatch)
    assert reply is not None
    seen = protocol.read_frame(reply, request=False)
    assert seen is not None
    assert protocol.reply_error(seen) is None
    note = protocol.read_frame(
        protocol.encode_request(Request("add", [1, 2], None, notification=True)), request=True
    )
    assert note is not None
    assert note.kind == "notification"
    assert protocol.error_reply(note, ErrorInfo("unavailable", -32050, "x")) is None


def test_only_binrpc_has_a_version_field_and_rewriting_it_keeps_every_other_byte() -> None:
    binrpc = get_protocol("binrpc")
    data = get_rpc_protocol("binrpc").encode_request(Request("add", [1, 2], 1))
    message = binrpc.read_frame(data, request=True)
    assert message is not None
    assert message.version == 1
    rewritten = binrpc.rewrite_version(data, message, 7)
    assert len(rewritten) == len(data)
    assert [i for i, (a, b) in enumerate(zip(data, rewritten, strict=True)) if a != b] == [2]
    again = binrpc.read_frame(rewritten, request=True)
    assert again is not None
    assert again.version == 7
    for name in protocol_names():
        if name != "binrpc":
            assert get_protocol(name).version_field is None, name
    jsonrpc = get_protocol("jsonrpc")
    with pytest.raises(LocalProtocolError, match="no version field"):
        jsonrpc.rewrite_version(b"{}", WireMessage("jsonrpc", True, []), 2)


@pytest.mark.parametrize(
    ("name", "framing", "message_based", "reason"),
    [
        ("binrpc", "length-prefix", False, None),
        ("binrpc", "lines", False, "binrpc is not framed with 'lines'"),
        ("binrpc", "http", False, "not carried over HTTP"),
        ("rest", "length-prefix", False, "rest needs framing='http'"),
        ("rest", None, True, "needs a byte-stream transport"),
        ("jsonrpc", None, True, None),
        ("jsonrpc", "http", False, None),
    ],
)
def test_frame_reason_says_why_a_proxy_cannot_read_frames(
    name: str, framing: str | None, message_based: bool, reason: str | None
) -> None:
    got = _rpcwire.protocol_reason(name, framing, message_based)
    assert (got is None) if reason is None else (reason in (got or ""))


@settings(max_examples=300, deadline=None)
@given(
    case=st.sampled_from(CASES),
    request=st.booleans(),
    cut=st.integers(0, 200),
    flips=st.lists(st.tuples(st.integers(0, 199), st.integers(1, 255)), max_size=4),
    junk=st.binary(max_size=64),
)
def test_any_bytes_read_as_a_message_or_none_never_an_exception(
    case: tuple[str, bool], request: bool, cut: int, flips: list[tuple[int, int]], junk: bytes
) -> None:
    """A proxy reads whatever a peer sends: mutated frames of every protocol are a message
    (which writes back) or ``None``, never an exception out of the link."""
    name, http = case
    protocol = get_protocol(name)
    data = bytearray(request_frame(name, Request("echo", [{"a": [1, "x"]}], 3), http=http))
    for at, mask in flips:
        if data:
            data[at % len(data)] ^= mask
    frame = bytes(data[:cut]) + junk
    message = protocol.read_frame(frame, request=request, http=http)
    if message is not None:
        assert message.kind in ("request", "notification", "response")
        protocol.write_frame(message)
        protocol.error_reply(message, ErrorInfo("unavailable", -32050, "x"))
