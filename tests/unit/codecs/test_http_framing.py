"""HTTP/1.1 via h11: a client/server pair (h11's ConnectionPair idea) and one-way observers."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from faultlab.codecs import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    FrameTooLarge,
    HttpFramer,
    HttpMessage,
    MalformedFrame,
    TruncatedFrame,
)
from faultlab.errors import LocalProtocolError, RemoteProtocolError

from .helpers import FAST, chunked, feed_all

bodies = st.binary(max_size=200)


def request(body: bytes = b"", target: str = "/rpc", method: str = "POST") -> HttpMessage:
    return HttpMessage(
        head=h11.Request(method=method, target=target, headers=[("Host", "example")]), body=body
    )


def response(body: bytes = b"", status: int = 200) -> HttpMessage:
    return HttpMessage(head=h11.Response(status_code=status, headers=[]), body=body)


def transfer(sender: HttpFramer, receiver: HttpFramer, message: HttpMessage) -> HttpMessage:
    receiver.receive_data(sender.frame(message))
    got = receiver.next_frame()
    assert isinstance(got, HttpMessage)
    return got


@FAST
@given(data=st.data(), exchanges=st.lists(st.tuples(bodies, bodies), min_size=1, max_size=4))
def test_keep_alive_exchanges_in_arbitrary_chunks(
    data: st.DataObject, exchanges: list[tuple[bytes, bytes]]
) -> None:
    client, server = HttpFramer("client"), HttpFramer("server")
    for request_body, response_body in exchanges:
        server_got = feed_all(server, data.draw(chunked(client.frame(request(request_body)))),
                              eof=False)  # fmt: skip
        assert [m.body for m in server_got] == [request_body]
        assert isinstance(server_got[0].head, h11.Request)
        assert server_got[0].head.target == b"/rpc"
        client_got = feed_all(client, data.draw(chunked(server.frame(response(response_body)))),
                              eof=False)  # fmt: skip
        assert [m.body for m in client_got] == [response_body]
    client.receive_data(b"")
    assert client.next_frame() is CLOSED


def test_head_response_has_no_body() -> None:
    client, server = HttpFramer("client"), HttpFramer("server")
    transfer(client, server, request(method="HEAD"))
    wire = server.frame(
        HttpMessage(head=h11.Response(status_code=200, headers=[("Content-Length", "5")]))
    )
    client.receive_data(wire)
    got = client.next_frame()
    assert isinstance(got, HttpMessage)
    assert got.body == b""


def test_chunked_body_and_trailers() -> None:
    client, server = HttpFramer("client"), HttpFramer("server")
    head = h11.Request(
        method="POST", target="/", headers=[("Host", "x"), ("Transfer-Encoding", "chunked")]
    )
    got = transfer(client, server, HttpMessage(head=head, body=b"abc", trailers=((b"X-T", b"1"),)))
    assert got.body == b"abc"
    assert got.trailers == ((b"X-T", b"1"),)


def test_pipelined_request_waits_for_our_response() -> None:
    client, server = HttpFramer("client"), HttpFramer("server")
    wire = client.frame(request(b"1"))
    server.receive_data(wire + wire)  # a second request before we answered the first
    assert isinstance(server.next_frame(), HttpMessage)
    assert server.next_frame() is PAUSED
    server.frame(response())
    assert isinstance(server.next_frame(), HttpMessage)


def test_content_length_over_max_is_refused_at_the_head() -> None:
    server = HttpFramer("server", max_size=10)
    server.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4294967296\r\n\r\n")
    with pytest.raises(FrameTooLarge):
        server.next_frame()


def test_chunked_body_over_max_is_refused() -> None:
    server = HttpFramer("server", max_size=10)
    server.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    server.receive_data(b"b\r\n" + b"x" * 11 + b"\r\n")
    with pytest.raises(FrameTooLarge):
        server.next_frame()


def test_truncated_body_is_an_error_not_a_message() -> None:
    server = HttpFramer("server")
    server.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    assert server.next_frame() is NEED_DATA
    server.receive_data(b"")
    with pytest.raises(TruncatedFrame):
        server.next_frame()


def test_garbage_is_malformed() -> None:
    server = HttpFramer("server")
    server.receive_data(b"NOT HTTP AT ALL\r\n\r\n")
    with pytest.raises(MalformedFrame):
        server.next_frame()


def test_sending_out_of_turn_is_our_misuse() -> None:
    client = HttpFramer("client")
    client.frame(request())
    with pytest.raises(LocalProtocolError):  # h11 does not pipeline requests
        client.frame(request())


@pytest.mark.parametrize("role", ["client", "server"])
@FAST
@given(data=st.binary(max_size=300), eof=st.booleans())
def test_arbitrary_bytes_raise_only_remote_errors(role: str, data: bytes, eof: bool) -> None:
    framer = HttpFramer(role, one_way=True)  # type: ignore[arg-type]
    try:
        feed_all(framer, [data] if data else [], eof=eof)
    except RemoteProtocolError:
        pass


# -- one-way observers (a proxy link sees one direction) -----------------------------


@FAST
@given(data=st.data(), request_bodies=st.lists(bodies, max_size=4))
def test_one_way_server_parses_a_request_stream(
    data: st.DataObject, request_bodies: list[bytes]
) -> None:
    wire = b"".join(HttpFramer("server", one_way=True).frame(request(b)) for b in request_bodies)
    observer = HttpFramer("server", one_way=True)
    got = feed_all(observer, data.draw(chunked(wire)))
    assert [m.body for m in got] == request_bodies


@FAST
@given(data=st.data(), response_bodies=st.lists(bodies, max_size=4))
def test_one_way_client_parses_a_response_stream(
    data: st.DataObject, response_bodies: list[bytes]
) -> None:
    wire = b"".join(HttpFramer("client", one_way=True).frame(response(b)) for b in response_bodies)
    observer = HttpFramer("client", one_way=True)
    got = feed_all(observer, data.draw(chunked(wire)))
    assert [m.body for m in got] == response_bodies
    assert all(isinstance(m.head, h11.Response) for m in got)


def test_informational_responses_are_their_own_frames() -> None:
    observer = HttpFramer("client", one_way=True)
    observer.receive_data(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
    )
    first, second = list(observer.frames())
    assert isinstance(first.head, h11.InformationalResponse)
    assert second.body == b"x"
