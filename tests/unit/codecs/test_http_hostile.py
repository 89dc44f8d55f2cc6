"""HttpFramer under the hardening issue's input: CONNECT, HEAD, and pipelined floods."""

from __future__ import annotations

import h11
import pytest

from faultlab.codecs import (
    NEED_DATA,
    PAUSED,
    FrameTooLarge,
    HttpFramer,
    HttpMessage,
    MalformedFrame,
)
from faultlab.errors import LocalProtocolError

CONNECT = b"CONNECT example:443 HTTP/1.1\r\nHost: example:443\r\n\r\n"
GET = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def test_one_way_server_framer_passes_connect_and_keeps_parsing_http() -> None:
    framer = HttpFramer("server", one_way=True)  # what the proxy's upstream link uses
    framer.receive_data(CONNECT + GET)
    first, second = framer.next_frame(), framer.next_frame()
    assert isinstance(first, HttpMessage)
    assert isinstance(second, HttpMessage)
    assert first.head.method == b"CONNECT"  # type: ignore[union-attr]
    assert second.head.method == b"GET"  # type: ignore[union-attr]
    assert framer.next_frame() is NEED_DATA


def test_one_way_server_framer_refuses_tunnelled_bytes_with_a_remote_error() -> None:
    framer = HttpFramer("server", one_way=True)
    framer.receive_data(CONNECT + b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # TLS hello
    assert isinstance(framer.next_frame(), HttpMessage)
    with pytest.raises(MalformedFrame):  # the proxy link catches RemoteProtocolError
        framer.next_frame()


def test_two_way_server_framer_answers_connect_with_a_refusal() -> None:
    framer = HttpFramer("server")
    framer.receive_data(CONNECT + GET)
    assert isinstance(framer.next_frame(), HttpMessage)
    assert framer.next_frame() is PAUSED
    refusal = HttpMessage(head=h11.Response(status_code=405, headers=[]), body=b"no")
    assert framer.frame(refusal).startswith(b"HTTP/1.1 405 ")
    assert isinstance(framer.next_frame(), HttpMessage)  # keep-alive goes on


def test_accepting_connect_is_our_misuse_not_an_h11_error() -> None:
    framer = HttpFramer("server")
    framer.receive_data(CONNECT)
    framer.next_frame()
    with pytest.raises(LocalProtocolError):
        framer.frame(HttpMessage(head=h11.Response(status_code=200, headers=[]), body=b"x"))


def test_reply_to_head_has_its_content_length_but_no_body() -> None:
    framer = HttpFramer("server")
    framer.receive_data(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n" + GET)
    framer.next_frame()
    head = h11.Response(status_code=405, headers=[("Content-Length", "9")])
    wire = framer.frame(HttpMessage(head=head, body=b"use POST\n"))
    assert wire.endswith(b"Content-Length: 9\r\n\r\n")
    assert isinstance(framer.next_frame(), HttpMessage)  # the GET after it
    get_reply = framer.frame(HttpMessage(head=h11.Response(status_code=200, headers=[]), body=b"x"))
    assert get_reply.endswith(b"\r\n\r\nx")


def next_or_error(framer: HttpFramer) -> object:
    try:
        return framer.next_frame()
    except FrameTooLarge as exc:
        return exc


def test_pipelined_flood_is_bounded_then_refused_with_a_typed_error() -> None:
    framer = HttpFramer("server", max_size=1024, max_header_size=1024)
    assert framer.max_buffer == 2048
    chunk = GET * (65536 // len(GET))
    for _ in range(65 * 16):  # 65 MiB offered while the first request is unanswered
        framer.receive_data(chunk)
    assert len(framer._backlog) <= framer.max_buffer  # what was buffered, not 65 MiB
    answered = 0
    while isinstance(item := next_or_error(framer), HttpMessage):
        framer.frame(HttpMessage(head=h11.Response(status_code=204, headers=[])))
        answered += 1
    assert isinstance(item, FrameTooLarge)
    assert "max_buffer" in str(item)
    assert answered >= 2048 // len(GET) - 1  # requests received before the limit are served


def test_reading_only_on_need_data_keeps_the_buffer_to_one_read() -> None:
    framer = HttpFramer("server")
    framer.receive_data(GET * 1000)
    for _ in range(1000):
        assert isinstance(framer.next_frame(), HttpMessage)
        framer.frame(HttpMessage(head=h11.Response(status_code=204, headers=[])))
    assert framer.next_frame() is NEED_DATA
    assert len(framer._backlog) == 0
