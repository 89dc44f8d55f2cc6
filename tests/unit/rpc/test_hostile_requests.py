"""The hostile requests of the hardening issue, one test each: typed errors or proper replies."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import h11
import pytest

from faultlab.examples.calc import Calc
from faultlab.rpc import Client, RpcServer
from faultlab.rpc.base import get_protocol
from faultlab.rpc.binrpc import MAX_MISMATCHES, BinRpc
from faultlab.rpc.messages import Request
from faultlab.rpc.msgpackrpc import packb
from faultlab.rpc.service import Service
from faultlab.rpc.wire import WireError

SERVICE = Service(Calc())
HTTP_PROTOCOLS = ["jsonrpc", "xmlrpc", "rest"]


@pytest.fixture(params=HTTP_PROTOCOLS)
def http_server(request: pytest.FixtureRequest) -> Iterator[RpcServer]:
    with RpcServer(Calc(), protocol=request.param) as server:
        yield server
        assert not server.internal_errors


def connect(server: RpcServer) -> socket.socket:
    host, port = server.address.removeprefix("tcp://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def responses(sock: socket.socket, methods: list[bytes]) -> list[tuple[h11.Response, bytes]]:
    """Read one response per request method, as an h11 client that sent them."""
    conn = h11.Connection(h11.CLIENT)
    out = []
    for method in methods:
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
        conn.send(h11.EndOfMessage())
        head, body = None, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"unexpected {event!r}")
        assert head is not None
        out.append((head, body))
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
    return out


def post(server: RpcServer) -> bytes:
    protocol = get_protocol(server.protocol.name)
    verb, target, body = protocol.http_request(Request("add", [1, 2], 1))
    head = f"{verb} {target} HTTP/1.1\r\nHost: a\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def test_head_gets_headers_without_body_and_the_connection_survives(
    http_server: RpcServer,
) -> None:
    with connect(http_server) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n" + post(http_server))
        (head, body), (ok, reply) = responses(sock, [b"HEAD", b"POST"])
    assert head.status_code == 405
    assert (b"allow", b"POST, GET" if http_server.protocol.name == "rest" else b"POST") in list(
        head.headers
    )
    assert body == b""  # h11 would read a body sent anyway as a broken next response
    assert ok.status_code == 200
    assert b"3" in reply


@pytest.mark.parametrize(("method", "status"), [(b"PUT", 405), (b"BREW", 501), (b"CONNECT", 405)])
def test_other_methods_get_405_or_501_and_the_connection_survives(
    http_server: RpcServer, method: bytes, status: int
) -> None:
    target = b"a:1" if method == b"CONNECT" else b"/"
    with connect(http_server) as sock:
        sock.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n" + post(http_server))
        (refused, _), (ok, _) = responses(sock, [method, b"POST"])
    assert refused.status_code == status
    assert ok.status_code == 200


def test_garbage_gets_400_before_the_close(http_server: RpcServer) -> None:
    with connect(http_server) as sock:
        sock.sendall(b"\x00\xff NOT HTTP\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in data
    with Client(http_server.address, http_server.protocol) as client:
        assert client.call("add", 1, 2) == 3


def test_lone_surrogate_id_gets_an_error_object_not_a_dead_connection() -> None:
    request = b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":"\\ud800"}'
    reply = json.loads(get_protocol("jsonrpc").handle(request, SERVICE.dispatch) or b"")
    assert reply["id"] is None
    assert reply["error"]["code"] == -32600
    assert "surrogate" in reply["error"]["message"]
    with RpcServer(Calc(), protocol="jsonrpc", framing="lines") as server, connect(server) as sock:
        sock.sendall(request + b"\n" + b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":2}\n')
        lines = b""
        while lines.count(b"\n") < 2:
            lines += sock.recv(65536)
        first, second = (json.loads(line) for line in lines.splitlines())
        assert first["error"]["code"] == -32600
        assert second == {"jsonrpc": "2.0", "result": 3, "id": 2}


def test_a_result_json_cannot_carry_becomes_an_internal_error_for_that_id() -> None:
    request = b'{"jsonrpc":"2.0","method":"echo","params":["\\udc00"],"id":5}'
    reply = json.loads(get_protocol("jsonrpc").handle(request, SERVICE.dispatch) or b"")
    assert reply["id"] == 5
    assert reply["error"]["code"] == -32603


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_nesting_is_a_parse_error(opener: bytes) -> None:
    deep = opener * 1000
    rest = get_protocol("rest").handle_http("POST", "/echo", deep, SERVICE.dispatch)
    assert rest.status == 400
    assert json.loads(rest.body)["error"]["kind"] == "parse_error"
    jsonrpc = json.loads(get_protocol("jsonrpc").handle(deep, SERVICE.dispatch) or b"")
    assert jsonrpc["error"]["code"] == -32700
    # parses, but deeper than MAX_DEPTH: refused before dispatch (echo would return it)
    valid = b'{"jsonrpc":"2.0","method":"echo","params":' + b"[" * 150 + b"]" * 150 + b',"id":1}'
    assert b"-32700" in (get_protocol("jsonrpc").handle(valid, SERVICE.dispatch) or b"")


def test_xmlrpc_struct_member_without_value_is_a_parse_error_fault() -> None:
    call = (
        b"<methodCall><methodName>echo</methodName><params><param><value><struct>"
        b"<member><name>a</name></member></struct></value></param></params></methodCall>"
    )
    reply = get_protocol("xmlrpc").handle(call, SERVICE.dispatch) or b""
    response = get_protocol("xmlrpc").decode_response(reply)
    assert response.error is not None
    assert response.error.kind == "parse_error"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_xmlrpc_refuses_dtds_whatever_the_encoding(encoding: str) -> None:
    call = (
        f'<?xml version="1.0" encoding="{encoding}"?>'
        '<!DOCTYPE m [<!ENTITY e "x">]><methodCall><methodName>echo</methodName>'
        "<params><param><value>&e;</value></param></params></methodCall>"
    ).encode(encoding)
    reply = get_protocol("xmlrpc").handle(call, SERVICE.dispatch) or b""
    error = get_protocol("xmlrpc").decode_response(reply).error
    assert error is not None
    assert "DTD" in error.message


def test_msgpack_timestamp_beyond_datetime_is_a_parse_error() -> None:
    timestamp = b"\xd7\xff" + b"\xff" * 8  # 64-bit Timestamp: year far beyond 9999
    request = packb([0, 1, "echo", []])[:-1] + b"\x91" + timestamp
    protocol = get_protocol("msgpackrpc")
    error = protocol.decode_response(protocol.handle(request, SERVICE.dispatch) or b"").error
    assert error is not None
    assert error.kind == "parse_error"
    with pytest.raises(WireError):
        protocol.decode_response(packb([1, 1, None, None])[:-1] + timestamp)


def test_binrpc_keeps_a_bounded_record_of_version_mismatches() -> None:
    server, client = BinRpc(2), BinRpc(1)
    request = client.encode_request(Request("add", [1, 2], 1))
    for _ in range(MAX_MISMATCHES + 5):
        server.handle(request, SERVICE.dispatch)
    assert len(server.mismatches) == MAX_MISMATCHES


def test_pipelined_requests_are_answered_in_order_over_one_connection() -> None:
    with RpcServer(Calc(), protocol="jsonrpc") as server, connect(server) as sock:
        body = b'{"jsonrpc":"2.0","method":"add","params":[1,%d],"id":%d}'
        requests = [body % (n, n) for n in range(300)]
        sock.sendall(
            b"".join(
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s" % (len(r), r)
                for r in requests
            )
        )
        replies = responses(sock, [b"POST"] * len(requests))
    assert [json.loads(body)["result"] for _, body in replies] == [1 + n for n in range(300)]


def test_a_peer_that_only_sends_unreadable_messages_is_disconnected() -> None:
    """Thousands of one-byte msgpack objects: 64 error replies, then the server hangs up."""
    from faultlab.codecs.framing import get_framer
    from faultlab.rpc.server import MAX_BAD_IN_A_ROW

    with RpcServer(Calc(), protocol="msgpackrpc", framing="msgpack-stream") as server:
        with connect(server) as sock:
            sock.sendall(b"\x01" * 10_000)  # each byte is a msgpack int, none is a request
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        framer = get_framer("msgpack-stream")
        framer.receive_data(received)
        framer.receive_data(b"")
        replies = list(framer.frames())
        assert len(replies) == MAX_BAD_IN_A_ROW
        with Client(server.address, "msgpackrpc", framing="msgpack-stream", timeout=10) as client:
            assert client.call("add", 1, 2) == 3  # others are still served
        assert not server.internal_errors
