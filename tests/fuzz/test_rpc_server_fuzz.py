"""RPC protocols on hostile input: sans-IO parsers at full count, real servers over TCP.

Server side, each protocol's ``handle`` (``handle_http`` for REST) must answer every
message with a reply the protocol's own client decodes (or nothing, for notifications),
and the client side's ``decode_response`` must raise only typed errors. Then real
servers on real sockets get hostile bytes, one connection each: the server answers
with well-formed replies or closes cleanly, never logs an untyped error, and keeps
serving a good client.
"""

from __future__ import annotations

import socket
import threading
import zlib
from collections.abc import Callable, Iterator

import h11
import pytest

from faultlab.codecs import CLOSED, HttpFramer, get_framer
from faultlab.errors import FaultlabError, RemoteProtocolError
from faultlab.examples.calc import Calc
from faultlab.rpc import Client, RpcServer, VersionMismatch
from faultlab.rpc.base import RpcProtocol, get_protocol
from faultlab.rpc.jsonrpc import JsonRpc
from faultlab.rpc.messages import Request
from faultlab.rpc.service import Service
from tests.fuzz.budget import budget
from tests.unit.codecs.hostile import fuzz, fuzz_seed

SEED = fuzz_seed()
COUNT = budget(ci=1500, slow=100_000)
SOCKET_COUNT = budget(ci=25, slow=2000)
SERVICE = Service(Calc())
PROTOCOLS = ["jsonrpc", "xmlrpc", "msgpackrpc", "binrpc", "rest"]
REQUESTS = [
    Request("add", [1, 2], 1),
    Request("echo", [{"a": [1, "x", 2.5, True]}], 2),
    Request("div", [1, 0], 3),
    Request("nope", [], 4),
    Request("echo", ["é"], None, notification=True),
    Request("counter.get", [], "s"),
]


def encoded_requests(name: str) -> list[bytes]:
    protocol = get_protocol(name)
    out = []
    for request in REQUESTS:
        if name == "xmlrpc" and isinstance(request.id, str):
            continue
        out.append(protocol.http_request(request)[2] if name == "rest" else b"")
        if name != "rest":
            out[-1] = protocol.encode_request(request)
    if isinstance(protocol, JsonRpc):
        out.append(protocol.encode_batch(REQUESTS[:3]))
    return out


def check_reply(protocol: RpcProtocol, reply: bytes) -> None:
    """The protocol's own client must read the server's reply (version skew is typed)."""
    try:
        if isinstance(protocol, JsonRpc):
            protocol.decode_batch_response(reply)
        else:
            protocol.decode_response(reply)
    except VersionMismatch:
        pass
    except FaultlabError as exc:
        raise AssertionError(f"{protocol.name} cannot read its own reply: {exc}") from exc


def _handle(name: str) -> Callable[[bytes], None]:
    protocol = get_protocol(name)
    if name == "rest":

        def rest(data: bytes) -> None:
            method = ("POST", "GET", "HEAD", "PUT", "BREW")[data[0] % 5] if data else "POST"
            target = "/" + ("echo", "add", "counter/incr", "", "a/../b?x=1")[len(data) % 5]
            reply = protocol.handle_http(method, target, data, SERVICE.dispatch)
            assert 200 <= reply.status <= 599
            if reply.status < 400:
                check_reply(protocol, reply.body)

        return rest

    def handle(data: bytes) -> None:
        reply = protocol.handle(data, SERVICE.dispatch)
        if reply is not None:
            check_reply(protocol, reply)

    return handle


@pytest.mark.parametrize("name", PROTOCOLS)
def test_server_parser_answers_every_message(name: str) -> None:
    seed = SEED ^ zlib.crc32(f"handle:{name}".encode())
    fuzz(f"{name} server handle", encoded_requests(name), COUNT, _handle(name), seed)


@pytest.mark.parametrize("name", PROTOCOLS)
def test_client_decoder_raises_only_typed_errors(name: str) -> None:
    protocol = get_protocol(name)
    if name == "rest":
        replies = [protocol.handle_http("POST", "/echo", b, SERVICE.dispatch).body
                   for b in encoded_requests(name)]  # fmt: skip

        def decode(data: bytes) -> None:
            protocol.http_response(200 + 100 * (len(data) % 4), data, Request("x", [], 1))

    else:
        replies = [r for r in (protocol.handle(b, SERVICE.dispatch)
                   for b in encoded_requests(name)) if r]  # fmt: skip

        def decode(data: bytes) -> None:
            check = protocol.decode_batch_response if isinstance(protocol, JsonRpc) else None
            (check or protocol.decode_response)(data)

    seed = SEED ^ zlib.crc32(f"decode:{name}".encode())
    fuzz(f"{name} client decode", replies, COUNT, decode, seed)


# ---- real servers over TCP -----------------------------------------------------------

SERVERS = [
    ("jsonrpc", "http"), ("jsonrpc", "lines"), ("jsonrpc", "length-prefix"),
    ("xmlrpc", "http"), ("xmlrpc", "length-prefix"), ("rest", "http"),
    ("msgpackrpc", "msgpack-stream"), ("msgpackrpc", "length-prefix"),
    ("binrpc", "length-prefix"),
]  # fmt: skip


@pytest.fixture
def thread_errors() -> Iterator[list[BaseException]]:
    """Exceptions that escape any thread (a server connection dying untyped)."""
    errors: list[BaseException] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value or Exception())  # type: ignore[assignment]
    yield errors
    threading.excepthook = previous


def wire_corpus(name: str, framing: str) -> list[bytes]:
    protocol = get_protocol(name)
    if framing != "http":
        framer = get_framer(framing)
        frames = [framer.frame(data) for data in encoded_requests(name)]
        return [*frames, b"".join(frames)]
    out = []
    for request in REQUESTS:
        verb, target, body = protocol.http_request(request)
        head = f"{verb} {target} HTTP/1.1\r\nHost: a\r\nContent-Length: {len(body)}\r\n\r\n"
        out.append(head.encode() + body)
    out += [b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n", b"".join(out)]  # fmt: skip
    return out


def exchange(address: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data``, half-close, and read until the server closes."""
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close on bad input before reading it all
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break  # it closed with our bytes unread: a clean close all the same
            except TimeoutError:
                raise AssertionError(f"no reply and no close within {timeout}s") from None
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def request_methods(data: bytes) -> list[bytes]:
    """Methods of the complete requests a server can read at the start of ``data``."""
    framer = HttpFramer("server", one_way=True)
    framer.receive_data(data)
    framer.receive_data(b"")
    methods = []
    try:
        for message in framer.frames():
            assert isinstance(message.head, h11.Request)
            methods.append(message.head.method)
    except RemoteProtocolError:
        pass
    return methods


def check_http_replies(sent: bytes, reply: bytes) -> None:
    """``reply`` is whole HTTP responses to the requests readable in ``sent``, plus at most
    one error reply. h11 reads them as a client that sent those requests, so a reply to
    HEAD with a body, or a truncated or malformed reply, raises."""
    methods = request_methods(sent)
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(reply)
    conn.receive_data(b"")
    answered = 0
    for index, method in enumerate([*methods, b"GET"]):  # GET: the request it could not read
        if index == len(methods) and not conn.trailing_data[0]:
            break  # no error reply
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
        conn.send(h11.EndOfMessage())
        event = conn.next_event()
        while not isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            assert event is not h11.PAUSED, "the server switched protocols"
            event = conn.next_event()
        if isinstance(event, h11.ConnectionClosed):
            break
        answered += 1
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            break  # the server said it closes
        conn.start_next_cycle()
    assert answered >= min(len(methods), 1), f"{len(methods)} requests, no reply: {reply!r}"


def check_framed_replies(protocol: RpcProtocol, framing: str, reply: bytes) -> None:
    framer = get_framer(framing)
    framer.receive_data(reply)
    framer.receive_data(b"")
    while (frame := framer.next_frame()) is not CLOSED:
        assert isinstance(frame, bytes), frame
        check_reply(protocol, frame)


@pytest.mark.parametrize(("name", "framing"), SERVERS, ids=[f"{n}-{f}" for n, f in SERVERS])
def test_server_survives_hostile_connections(
    name: str, framing: str, thread_errors: list[BaseException]
) -> None:
    protocol = get_protocol(name)
    with RpcServer(Calc(), protocol=name, framing=framing) as server:

        def good_call() -> None:
            with Client(server.address, name, framing=framing, timeout=10) as client:
                assert client.call("add", 1, 2) == 3

        def attack(data: bytes) -> bytes:
            return exchange(server.address, data)

        def check(data: bytes, reply: bytes) -> None:
            if framing == "http":
                check_http_replies(data, reply)
            else:
                check_framed_replies(protocol, framing, reply)

        good_call()
        seed = SEED ^ zlib.crc32(f"socket:{name}:{framing}".encode())
        for start in range(0, SOCKET_COUNT, 25):
            fuzz(f"{name}/{framing} server over tcp", wire_corpus(name, framing),
                 min(25, SOCKET_COUNT - start), attack, seed + start, check=check)  # fmt: skip
            good_call()  # still serving
        assert not server.internal_errors, list(server.internal_errors)
    assert not thread_errors, thread_errors


def test_grpc_request_parsing_raises_only_what_the_handler_maps() -> None:
    """gRPC's HTTP/2 is grpcio's; faultlab parses the request message and its params. The
    server maps ``DecodeError`` to INVALID_ARGUMENT-style parse errors and conversion errors
    to invalid params (``GrpcServer._handle``); nothing else may escape."""
    grpc = pytest.importorskip("faultlab.rpc.grpc")
    from google.protobuf import message

    from faultlab.examples.protos import calc_v1_pb2

    schema = grpc.load_schema(calc_v1_pb2)
    methods = list(schema.methods.values())
    corpus = []
    for rpc in methods:
        fields = {f.name: f for f in rpc.request.DESCRIPTOR.fields}
        sample = rpc.request()
        for name, field in fields.items():
            if field.type in (1, 2):  # double, float
                setattr(sample, name, 2.5)
            elif field.type in (3, 4, 5, 13):
                setattr(sample, name, 7)
            elif field.type == 9:
                setattr(sample, name, "é")
        if rpc.name == "Echo":
            sample.struct_value.update({"a": [1.0, "x", {"b": True, "c": None}]})
        corpus.append(sample.SerializeToString())

    def parse(data: bytes) -> None:
        rpc = methods[len(data) % len(methods)]
        try:
            grpc.request_to_params(rpc.request.FromString(data))
        except (message.DecodeError, *grpc._CONVERSION_ERRORS):
            pass

    seed = SEED ^ zlib.crc32(b"grpc")
    fuzz("grpc request parsing", [c for c in corpus if c] or [b"\x08\x01"], COUNT, parse, seed)
