"""Third-party peers against faultlab's servers: users' clients are not ours.

- XML-RPC: the standard library's ``xmlrpc.client``.
- JSON-RPC 2.0: tinyrpc's protocol objects over a plain ``urllib`` POST.
- msgpack-RPC: tinyrpc's msgpack protocol over a raw socket (the spec's plain object stream).
- REST: the standard library's ``http.client``.
- binrpc is faultlab's own; no third-party client exists.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import urllib.request
import xmlrpc.client
from collections.abc import Iterator

import msgpack  # type: ignore[import-untyped]
import pytest

from faultlab.examples.calc import Calc
from faultlab.rpc import Client, RpcServer, serve
from faultlab.rpc.errors import InvalidRequest, ParseError


def _host_port(address: str) -> tuple[str, int]:
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[RpcServer]:
    srv = serve(Calc(), protocol=request.param, address="tcp://127.0.0.1:0")
    yield srv
    srv.close()


@pytest.mark.parametrize("server", ["xmlrpc"], indirect=True)
def test_stdlib_xmlrpc_client(server: RpcServer) -> None:
    host, port = _host_port(server.address)
    proxy = xmlrpc.client.ServerProxy(f"http://{host}:{port}/RPC2", allow_none=True)
    assert proxy.add(2, 3) == 5
    assert proxy.echo({"a": [1, "two", None]}) == {"a": [1, "two", None]}
    with pytest.raises(xmlrpc.client.Fault) as fault:
        proxy.div(1, 0)
    assert fault.value.faultCode == -32500
    with pytest.raises(xmlrpc.client.Fault) as missing:
        proxy.no_such_method()
    assert missing.value.faultCode == -32601


@pytest.mark.parametrize("server", ["jsonrpc"], indirect=True)
def test_tinyrpc_jsonrpc_over_http_post(server: RpcServer) -> None:
    from tinyrpc.protocols.jsonrpc import JSONRPCProtocol

    protocol = JSONRPCProtocol()
    host, port = _host_port(server.address)

    def post(body: bytes) -> bytes:
        req = urllib.request.Request(
            f"http://{host}:{port}/", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as reply:
            return reply.read()  # type: ignore[no-any-return]

    request = protocol.create_request("add", [2, 3])
    assert protocol.parse_reply(post(request.serialize())).result == 5
    request = protocol.create_request("div", [1, 0])
    reply = protocol.parse_reply(post(request.serialize()))
    assert reply.error is not None
    assert "division by zero" in str(reply.error)
    batch = protocol.create_batch_request(
        [protocol.create_request("add", [1, 1]), protocol.create_request("add", [2, 2])]
    )
    results = sorted(r.result for r in protocol.parse_reply(post(batch.serialize())))
    assert results == [2, 4]


@pytest.mark.parametrize("server", ["msgpackrpc"], indirect=True)
def test_tinyrpc_msgpackrpc_over_a_raw_socket(server: RpcServer) -> None:
    from tinyrpc.protocols.msgpackrpc import MSGPACKRPCProtocol

    protocol = MSGPACKRPCProtocol()
    with socket.create_connection(_host_port(server.address), timeout=10) as sock:
        unpacker = msgpack.Unpacker(raw=False)
        requests = [protocol.create_request("add", [i, 1]) for i in range(5)]
        sock.sendall(b"".join(r.serialize() for r in requests))  # pipelined
        replies = []
        while len(replies) < len(requests):
            unpacker.feed(sock.recv(65536))
            replies.extend(unpacker)
        parsed = [protocol.parse_reply(msgpack.packb(r)) for r in replies]
        assert sorted(p.result for p in parsed) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("server", ["rest"], indirect=True)
def test_stdlib_http_client_against_rest(server: RpcServer) -> None:
    conn = http.client.HTTPConnection(*_host_port(server.address), timeout=10)
    try:
        for path, body, status, result in [
            ("/add", [2, 3], 200, 5),
            ("/add", {"a": 1, "b": 2}, 200, 3),
            ("/div", [1, 0], 422, None),
            ("/nope", [], 404, None),
            ("/counter/incr", [2], 200, 2),
        ]:
            conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            reply = conn.getresponse()
            payload = json.loads(reply.read())
            assert reply.status == status, (path, payload)
            if status == 200:
                assert payload == result
            else:
                assert payload["error"]["kind"] in ("application_error", "method_not_found")
    finally:
        conn.close()


@pytest.mark.parametrize("server", ["binrpc"], indirect=True)
def test_oversize_frame_gets_a_native_error_and_others_keep_working(server: RpcServer) -> None:
    with Client(server.address, "binrpc") as good:
        assert good.add(1, 2) == 3
        with socket.create_connection(_host_port(server.address), timeout=10) as bad:
            bad.sendall(struct.pack("!I", 0xFFFFFFF0))  # announces ~4 GiB
            data = b""
            while len(data) < 4 or len(data) < 4 + struct.unpack("!I", data[:4])[0]:
                chunk = bad.recv(65536)
                assert chunk, "server closed without an error reply"
                data += chunk
            from faultlab.rpc.binrpc import BinRpc

            with pytest.raises(InvalidRequest, match="announced 4294967280 bytes"):
                BinRpc().decode_response(data[4:]).unwrap()
            assert bad.recv(10) == b""  # then the server closes that connection
        assert good.add(3, 4) == 7


@pytest.mark.parametrize("server", ["jsonrpc"], indirect=True)
def test_malformed_http_gets_400_and_others_keep_working(server: RpcServer) -> None:
    with Client(server.address, "jsonrpc") as good:
        with socket.create_connection(_host_port(server.address), timeout=10) as bad:
            bad.sendall(b"\x00\x01 not http at all\r\n\r\n")
            assert bad.recv(65536).startswith(b"HTTP/1.1 400")
        assert good.add(1, 1) == 2


@pytest.mark.parametrize("server", ["msgpackrpc"], indirect=True)
def test_garbage_msgpack_gets_a_parse_error(server: RpcServer) -> None:
    with socket.create_connection(_host_port(server.address), timeout=10) as sock:
        sock.sendall(msgpack.packb("not an array"))
        reply = msgpack.Unpacker(raw=False)
        reply.feed(sock.recv(65536))
        kind, msgid, error, result = next(reply)
        assert (kind, msgid, result) == (1, 0, None)
        assert error["kind"] == "invalid_request"


def test_client_refuses_to_send_an_oversize_message() -> None:
    from faultlab.errors import MessageTooLarge

    with serve(Calc(), protocol="binrpc", address="tcp://127.0.0.1:0") as srv:
        with Client(srv.address, "binrpc", max_message=1024) as client:
            with pytest.raises(MessageTooLarge):
                client.echo("x" * 4096)
            assert client.add(1, 1) == 2


def test_parse_error_kind_exists() -> None:
    assert ParseError("x").code == -32700
