"""Every protocol, sans-IO: calls round-trip through a service, garbage never escapes typed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlab.errors import LocalProtocolError, RemoteProtocolError
from faultlab.examples.calc import Calc, CalcV2
from faultlab.rpc import errors as rpc_errors
from faultlab.rpc.base import get_protocol, protocol_names
from faultlab.rpc.binrpc import BinRpc
from faultlab.rpc.messages import Request, Response
from faultlab.rpc.service import Service

SERVICE = Service(Calc())
MESSAGE_PROTOCOLS = ["jsonrpc", "xmlrpc", "msgpackrpc", "binrpc"]


def call(name: str, method: str, params: list[Any] | dict[str, Any], rid: int = 7) -> Response:
    protocol = get_protocol(name)
    if name == "rest":
        verb, target, body = protocol.http_request(Request(method, params, rid))
        reply = protocol.handle_http(verb, target, body, SERVICE.dispatch)
        return protocol.http_response(reply.status, reply.body, Request(method, params, rid))
    data = protocol.handle(protocol.encode_request(Request(method, params, rid)), SERVICE.dispatch)
    assert data is not None
    return protocol.decode_response(data)


def test_every_builtin_protocol_is_registered() -> None:
    assert {"jsonrpc", "xmlrpc", "msgpackrpc", "binrpc", "rest"} <= set(protocol_names())


@pytest.mark.parametrize("name", [*MESSAGE_PROTOCOLS, "rest"])
def test_calls_and_errors_map_to_the_same_kinds(name: str) -> None:
    assert call(name, "add", [2, 3]).unwrap() == 5
    assert call(name, "counter.incr", [4]).unwrap() >= 4
    with pytest.raises(rpc_errors.ApplicationError, match="division by zero"):
        call(name, "div", [1, 0]).unwrap()
    with pytest.raises(rpc_errors.MethodNotFound):
        call(name, "nope", []).unwrap()
    with pytest.raises(rpc_errors.InvalidParams):
        call(name, "add", ["x", 1]).unwrap()


@pytest.mark.parametrize("name", MESSAGE_PROTOCOLS)
def test_replies_carry_the_request_id(name: str) -> None:
    response = call(name, "add", [1, 1], rid=42)
    assert response.id in (42, None)  # XML-RPC has no ids (replies come in order)


@pytest.mark.parametrize("name", ["jsonrpc", "msgpackrpc", "binrpc"])
def test_notifications_get_no_reply(name: str) -> None:
    protocol = get_protocol(name)
    before = SERVICE.obj.counter.get()  # type: ignore[attr-defined]
    out = protocol.handle(
        protocol.encode_request(Request("counter.incr", [1], None, notification=True)),
        SERVICE.dispatch,
    )
    assert out is None
    assert SERVICE.obj.counter.get() == before + 1  # type: ignore[attr-defined]


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=512), name=st.sampled_from(MESSAGE_PROTOCOLS))
def test_garbage_to_a_server_gets_an_error_reply_never_a_crash(data: bytes, name: str) -> None:
    protocol = get_protocol(name)
    reply = protocol.handle(data, SERVICE.dispatch)
    if reply is not None:
        response = protocol.decode_response(reply)
        assert response.error is not None or name == "msgpackrpc"


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=512), name=st.sampled_from([*MESSAGE_PROTOCOLS, "rest"]))
def test_garbage_to_a_client_is_a_typed_error(data: bytes, name: str) -> None:
    protocol = get_protocol(name)
    try:
        response = protocol.decode_response(data)
    except (RemoteProtocolError, rpc_errors.RpcError):
        return
    assert isinstance(response, Response)


def test_xmlrpc_refuses_big_ints_instead_of_changing_them() -> None:
    with pytest.raises(LocalProtocolError):
        get_protocol("xmlrpc").encode_request(Request("echo", [2**31]))
    response = call("xmlrpc", "add", [2**30, 2**30])
    with pytest.raises(rpc_errors.RpcError, match="cannot be carried"):
        response.unwrap()


def test_binrpc_version_mismatch_is_typed_on_both_sides() -> None:
    server = BinRpc(version=2)
    client = BinRpc(version=1)
    service = Service(CalcV2())
    reply = server.handle(client.encode_request(Request("add", [1, 2], 5)), service.dispatch)
    assert reply is not None
    with pytest.raises(rpc_errors.VersionMismatch) as caught:
        client.decode_response(reply)
    assert (caught.value.ours, caught.value.theirs) == (1, 2)
    assert "1" in str(caught.value)
    assert "2" in str(caught.value)
    assert len(server.mismatches) == 1
    assert (server.mismatches[0].ours, server.mismatches[0].theirs) == (2, 1)


def test_binrpc_server_accepting_both_versions_answers_in_its_own() -> None:
    server = BinRpc(version=2, accepts=frozenset({1, 2}))
    client = BinRpc(version=1)
    reply = server.handle(client.encode_request(Request("add", [1, 2], 5)), SERVICE.dispatch)
    assert reply is not None
    with pytest.raises(rpc_errors.VersionMismatch):  # never a silent misreading
        client.decode_response(reply)
    assert BinRpc(version=2).decode_response(reply).unwrap() == 3


def test_binrpc_bad_magic_is_a_parse_error() -> None:
    reply = BinRpc().handle(b"XX\x01\x00\x00\x00\x00\x01\x00\x00", SERVICE.dispatch)
    assert reply is not None
    with pytest.raises(rpc_errors.ParseError):
        BinRpc().decode_response(reply).unwrap()


def test_msgpackrpc_wire_format_is_the_spec() -> None:
    import msgpack  # type: ignore[import-untyped]

    protocol = get_protocol("msgpackrpc")
    assert msgpack.unpackb(protocol.encode_request(Request("add", [1, 2], 9))) == [
        0,
        9,
        "add",
        [1, 2],
    ]
    reply = protocol.handle(msgpack.packb([0, 9, "add", [1, 2]]), SERVICE.dispatch)
    assert msgpack.unpackb(reply) == [1, 9, None, 3]


def test_rest_uses_status_codes() -> None:
    rest = get_protocol("rest")
    assert rest.handle_http("POST", "/add", b"[1,2]", SERVICE.dispatch).status == 200
    assert rest.handle_http("POST", "/nope", b"[]", SERVICE.dispatch).status == 404
    assert rest.handle_http("POST", "/add", b'["x",2]', SERVICE.dispatch).status == 400
    assert rest.handle_http("POST", "/div", b"[1,0]", SERVICE.dispatch).status == 422
    assert rest.handle_http("POST", "/add", b"{not json", SERVICE.dispatch).status == 400
    assert rest.handle_http("DELETE", "/add", b"", SERVICE.dispatch).status == 405
    assert rest.handle_http("POST", "/add", b'{"a":1,"b":2}', SERVICE.dispatch).status == 200
