"""HttpSplitter: whole HTTP/1.1 messages as their exact wire bytes, split as the peer would.

Hand-written cases for each framing rule and each refusal, then Hypothesis: a differential
test against the one-way h11 framer on valid message sequences cut at random points, and
hostile (mutated or random) streams that must end in frames, ``NEED_DATA``/``CLOSED`` or a
:class:`RemoteProtocolError`, with the frames' bytes always a prefix of the input.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultlab.codecs.errors import FrameTooLarge, MalformedFrame, TruncatedFrame
from faultlab.codecs.framing import (
    CLOSED,
    NEED_DATA,
    FrameEvent,
    HttpFrame,
    HttpFramer,
    HttpMessage,
    HttpSplitter,
    http_split,
)
from faultlab.codecs.framing.httpinfo import HttpHeadInfo, parse_head
from faultlab.errors import LocalProtocolError, RemoteProtocolError
from tests.fuzz.budget import budget
from tests.unit.codecs.helpers import chunked

Kind = Literal["requests", "responses"]

GET = b"GET /a?b=1 HTTP/1.1\r\nHost: example\r\nAccept: */*\r\n\r\n"
POST = b"POST /items HTTP/1.1\r\nHost: example\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED_POST = (
    b"POST /up HTTP/1.1\r\nHost: example\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;name=value\r\nhello\r\n"
    b'6 ; q="a b"\r\n world\r\n'
    b"0;last\r\nX-Checksum: abc\r\nX-Other:  two words \r\n\r\n"
)
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def split(
    kind: Kind, *pieces: bytes, eof: bool = True, **options: Any
) -> tuple[list[HttpFrame | bytes], FrameEvent]:
    """Feed each piece and take what is ready; then EOF. The items and the last event."""
    splitter = HttpSplitter(kind, **options)
    items: list[HttpFrame | bytes] = []
    event: FrameEvent = NEED_DATA
    for piece in [*pieces, b""] if eof else pieces:
        splitter.receive_data(piece)
        while not isinstance(item := splitter.next_frame(), FrameEvent):
            items.append(item)
        event = item
    return items, event


def frames(kind: Kind, *pieces: bytes, **options: Any) -> list[HttpFrame]:
    items, event = split(kind, *pieces, **options)
    assert event is CLOSED
    assert all(isinstance(item, HttpFrame) for item in items)
    return items  # type: ignore[return-value]


def _first_error(splitter: HttpSplitter) -> RemoteProtocolError:
    """Take frames (then EOF) until the splitter raises; the error."""
    try:
        while True:
            item = splitter.next_frame()
            if isinstance(item, FrameEvent):
                splitter.receive_data(b"")
                item = splitter.next_frame()
                assert not isinstance(item, FrameEvent), f"no error, ended with {item}"
    except RemoteProtocolError as exc:
        return exc


def refuse(kind: Kind, data: bytes, error: type[RemoteProtocolError], **options: Any) -> None:
    """``data`` whole and byte by byte: the same error; then the splitter stays dead."""
    whole = HttpSplitter(kind, **options)
    whole.receive_data(data)
    assert type(_first_error(whole)) is error
    with pytest.raises(error):  # dead: the same error again
        whole.next_frame()
    with pytest.raises(error):
        split(kind, *[data[i : i + 1] for i in range(len(data))], **options)


# -- framing ------------------------------------------------------------------------


def test_content_length_request_keeps_its_exact_bytes_and_reads_its_head() -> None:
    (frame,) = frames("requests", POST)
    assert frame.raw == POST
    assert frame.body == b"hello"
    assert frame.trailers == ()
    info = frame.info
    assert (info.method, info.target, info.path, info.status) == ("POST", "/items", "/items", None)
    assert info.headers == {"host": "example", "content-length": "5"}
    assert frame.head == POST[: info.head_size] == POST[:-5]
    assert info == parse_head(POST)  # the same object the cheap head reader builds


def test_request_without_framing_headers_has_no_body() -> None:
    (first, second) = frames("requests", GET + GET)
    assert first.raw == second.raw == GET
    assert first.body == b""
    assert first.info.target == "/a?b=1"
    assert first.info.path == "/a"


def test_chunked_body_with_extensions_and_trailers() -> None:
    (frame,) = frames("requests", CHUNKED_POST)
    assert frame.raw == CHUNKED_POST  # chunked encoding kept on the wire
    assert frame.body == b"hello world"  # de-chunked for the application
    assert frame.trailers == ((b"X-Checksum", b"abc"), (b"X-Other", b"two words"))
    assert frame.info.headers["transfer-encoding"] == "chunked"


def test_chunked_without_trailers_and_uppercase_hex() -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"
    (frame,) = frames("responses", data)
    assert frame.body == b"0123456789"
    assert frame.raw == data


def test_pipelined_messages_in_one_buffer() -> None:
    items = frames("requests", POST + CHUNKED_POST + GET + POST)
    assert [f.raw for f in items] == [POST, CHUNKED_POST, GET, POST]
    assert [f.body for f in items] == [b"hello", b"hello world", b"", b"hello"]


@pytest.mark.parametrize("data", [POST + CHUNKED_POST + GET, CHUNKED_POST + POST])
def test_a_stream_fed_byte_by_byte_gives_the_same_frames(data: bytes) -> None:
    splitter = HttpSplitter("requests")
    got = []
    for i in range(len(data)):
        splitter.receive_data(data[i : i + 1])
        while isinstance(item := splitter.next_frame(), HttpFrame):
            got.append(item)
        assert item is NEED_DATA
    assert got == frames("requests", data)
    assert b"".join(f.raw for f in got) == data


def test_response_without_length_runs_until_eof() -> None:
    splitter = HttpSplitter("responses")
    splitter.receive_data(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome ")
    assert splitter.next_frame() is NEED_DATA
    splitter.receive_data(b"body")
    assert splitter.next_frame() is NEED_DATA
    splitter.receive_data(b"")
    frame = splitter.next_frame()
    assert isinstance(frame, HttpFrame)
    assert frame.body == b"some body"
    assert frame.raw.endswith(b"\r\n\r\nsome body")
    assert splitter.next_frame() is CLOSED


def test_response_whose_coding_does_not_end_in_chunked_runs_until_eof() -> None:
    data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b..."
    (frame,) = frames("responses", data)
    assert frame.body == b"\x1f\x8b..."


def test_informational_responses_are_frames_of_their_own() -> None:
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
    cont = b"HTTP/1.1 100 Continue\r\n\r\n"
    items = frames("responses", cont + hints + OK)
    assert [f.raw for f in items] == [cont, hints, OK]
    assert [f.info.status for f in items] == [100, 103, 200]
    assert items[1].info.header("link") == "</s.css>; rel=preload"
    assert items[2].body == b"ok"


@pytest.mark.parametrize("status", [204, 304, 100])
def test_no_body_statuses_ignore_content_length(status: int) -> None:
    head = f"HTTP/1.1 {status} X\r\nContent-Length: 10\r\n\r\n".encode()
    items = frames("responses", head + OK)
    assert [f.raw for f in items] == [head, OK]
    assert items[0].body == b""


def test_identical_repeated_content_lengths_are_one() -> None:
    data = b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc"
    (frame,) = frames("requests", data)
    assert frame.body == b"abc"
    assert frame.info.headers["content-length"] == "3, 3, 3"


def test_bare_lf_ends_head_lines_like_h11() -> None:
    data = b"POST / HTTP/1.1\nHost: a\r\nContent-Length: 2\n\nhi" + GET
    first, second = frames("requests", data)
    assert first.body == b"hi"
    assert first.info.headers == {"host": "a", "content-length": "2"}
    assert second.raw == GET


def test_blank_lines_before_a_message_are_skipped_and_kept_in_its_bytes() -> None:
    first, second = frames("requests", POST + b"\r\n\r\n\n" + GET)
    assert first.raw == POST
    assert second.raw == b"\r\n\r\n\n" + GET
    assert second.body == b""
    assert second.info.method == "GET"


def test_blank_lines_then_eof_is_a_clean_close() -> None:
    assert frames("requests", POST + b"\r\n") == frames("requests", POST)


def test_blank_lines_arriving_byte_by_byte_are_checked_once() -> None:
    splitter = HttpSplitter("requests")
    for i in range(200):
        splitter.receive_data(b"\r\n"[i % 2 : i % 2 + 1])
        assert splitter.next_frame() is NEED_DATA
    assert splitter._skipped >= 198
    splitter.receive_data(GET)
    frame = splitter.next_frame()
    assert isinstance(frame, HttpFrame)
    assert frame.raw == b"\r\n" * 100 + GET
    assert frame.info.head_size == len(frame.raw)


def test_a_request_coding_ending_in_chunked_is_chunked() -> None:
    data = _req(b"Transfer-Encoding: gzip, CHUNKED", body=b"2 ;x=1\r\n\x1f\x8b\r\n0\r\n\r\n")
    (frame,) = frames("requests", data + GET)[:1]
    assert frame.raw == data
    assert frame.body == b"\x1f\x8b"


def test_http10_request_without_length_has_no_body_and_frames_iterates() -> None:
    splitter = HttpSplitter("requests")
    splitter.receive_data(b"GET / HTTP/1.0\r\n\r\n" + POST)
    assert [splitter.frame(f) for f in splitter.frames()] == [b"GET / HTTP/1.0\r\n\r\n", POST]


def test_header_values_are_trimmed_and_repeated_names_joined() -> None:
    data = b"GET / HTTP/1.1\r\nHost:a\r\nX-A:  1 \t\r\nx-a: 2\r\nEmpty:\r\n\r\n"
    (frame,) = frames("requests", data)
    assert frame.info.headers == {"host": "a", "x-a": "1, 2", "empty": ""}


def test_status_line_may_omit_its_reason_and_obs_text_is_kept() -> None:
    data = b"HTTP/1.0 404\r\nX-Name: caf\xe9\r\nContent-Length: 0\r\n\r\n"
    (frame,) = frames("responses", data)
    assert frame.info.status == 404
    assert frame.info.headers["x-name"] == "caf\xe9"


def test_frame_is_the_exact_bytes_and_the_dataclasses_are_what_we_build() -> None:
    (frame,) = frames("requests", POST)
    assert HttpSplitter("requests").frame(frame) == POST
    assert HttpSplitter("requests").frame(b"raw") == b"raw"
    # the fast constructors set every field: a new field would be left unset
    assert tuple(f.name for f in dataclasses.fields(HttpHeadInfo)) == http_split._INFO_FIELDS
    assert tuple(f.name for f in dataclasses.fields(HttpFrame)) == http_split._FRAME_FIELDS
    assert frame == HttpFrame(POST, frame.info, b"hello")
    assert frame.info == HttpHeadInfo(
        method="POST",
        target="/items",
        headers={"host": "example", "content-length": "5"},
        head_size=len(POST) - 5,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.raw = b""  # type: ignore[misc]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="kind"):
        HttpSplitter("server")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_header_size"):
        HttpSplitter("requests", max_header_size=0)


# -- upgrades -----------------------------------------------------------------------


def test_after_101_the_responses_splitter_passes_bytes_through() -> None:
    switch = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    ws = b"\x81\x05hello\x88\x00"
    splitter = HttpSplitter("responses")
    splitter.receive_data(switch + ws[:3])
    head = splitter.next_frame()
    assert isinstance(head, HttpFrame)
    assert head.raw == switch
    assert head.info.status == 101
    assert splitter.passthrough
    assert splitter.next_frame() == ws[:3]
    assert splitter.next_frame() is NEED_DATA
    splitter.receive_data(ws[3:])
    splitter.receive_data(b"HTTP/1.1 nonsense \x00")  # not HTTP any more: never an error
    assert splitter.next_frame() == ws[3:] + b"HTTP/1.1 nonsense \x00"
    assert splitter.frame(ws) == ws
    splitter.receive_data(b"")
    assert splitter.next_frame() is CLOSED


@pytest.mark.parametrize(
    "request_",
    [
        b"CONNECT example:443 HTTP/1.1\r\nHost: example:443\r\n\r\n",
        b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nContent-Length: 2\r\n\r\nhi",
    ],
)
def test_after_connect_or_upgrade_the_requests_splitter_passes_bytes_through(
    request_: bytes,
) -> None:
    tls = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    items, event = split("requests", GET + request_ + tls[:4], tls[4:])
    assert event is CLOSED
    assert [getattr(item, "raw", item) for item in items] == [GET, request_, tls[:4], tls[4:]]


def test_an_ordinary_request_does_not_switch() -> None:
    splitter = HttpSplitter("requests")
    splitter.receive_data(GET)
    splitter.next_frame()
    assert not splitter.passthrough


# -- refusals -----------------------------------------------------------------------


def _req(*headers: bytes, body: bytes = b"", start: bytes = b"POST / HTTP/1.1") -> bytes:
    return start + b"\r\n" + b"".join(h + b"\r\n" for h in (b"Host: a", *headers)) + b"\r\n" + body


CHUNKED = b"Transfer-Encoding: chunked"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_req(b"Content-Length: 3", CHUNKED, body=b"0\r\n\r\n"), id="cl-and-te"),
        pytest.param(_req(CHUNKED, b"Content-Length: 3", body=b"0\r\n\r\n"), id="te-and-cl"),
        pytest.param(
            _req(b"Content-Length: 3", b"Content-Length: 4", body=b"abcd"), id="cl-differ"
        ),
        pytest.param(_req(b"Content-Length: 3, 4", body=b"abcd"), id="cl-list-differ"),
        pytest.param(
            _req(b"Content-Length: 03", b"Content-Length: 3", body=b"abc"), id="cl-spelled"
        ),
        pytest.param(_req(b"Content-Length: +3", body=b"abc"), id="cl-plus"),
        pytest.param(_req(b"Content-Length: -1"), id="cl-negative"),
        pytest.param(_req(b"Content-Length: 0x3", body=b"abc"), id="cl-hex"),
        pytest.param(_req(b"Content-Length: 3 3", body=b"abc"), id="cl-space"),
        pytest.param(_req(b"Content-Length: \xb2", body=b"ab"), id="cl-superscript"),
        pytest.param(_req(b"Content-Length: "), id="cl-empty"),
        pytest.param(_req(b"Content-Length: 3,", body=b"abc"), id="cl-empty-item"),
        pytest.param(_req(b"Content-Length: " + b"0" * 21), id="cl-too-long"),
        pytest.param(_req(b"Transfer-Encoding: gzip", body=b"x"), id="te-not-chunked"),
        pytest.param(_req(b"Transfer-Encoding: chunked, gzip", body=b"0\r\n\r\n"), id="te-after"),
        pytest.param(
            _req(CHUNKED, b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"), id="te-twice"
        ),
        pytest.param(_req(b"Transfer-Encoding: gzip,,chunked", body=b"0\r\n\r\n"), id="te-empty"),
        pytest.param(_req(b'Transfer-Encoding: "chunked"', body=b"0\r\n\r\n"), id="te-quoted"),
        pytest.param(_req(CHUNKED, body=b"0\r\n\r\n", start=b"POST / HTTP/1.0"), id="te-in-http10"),
        pytest.param(_req(CHUNKED, body=b"g\r\n"), id="chunk-size-not-hex"),
        pytest.param(_req(CHUNKED, body=b"-1\r\n"), id="chunk-size-negative"),
        pytest.param(_req(CHUNKED, body=b"0x5\r\nhello\r\n0\r\n\r\n"), id="chunk-size-0x"),
        pytest.param(_req(CHUNKED, body=b" 5\r\nhello\r\n0\r\n\r\n"), id="chunk-size-space"),
        pytest.param(_req(CHUNKED, body=b"\r\nhello\r\n0\r\n\r\n"), id="chunk-size-empty"),
        pytest.param(_req(CHUNKED, body=b"5\nhello\r\n0\r\n\r\n"), id="chunk-line-bare-lf"),
        pytest.param(_req(CHUNKED, body=b"5\r\nhelloXX0\r\n\r\n"), id="chunk-no-crlf"),
        pytest.param(_req(CHUNKED, body=b"5\r\nhello\n0\r\n\r\n"), id="chunk-bare-lf"),
        pytest.param(_req(CHUNKED, body=b"3\r\nabc\r\n0\r\nbad trailer\r\n\r\n"), id="trailer"),
        pytest.param(_req(CHUNKED, body=b"3\r\nabc\r\n0\r\nX: 1\n\r\n\r\n"), id="trailer-lf"),
        pytest.param(_req(b"Transfer_Encoding: chunked", body=b"0\r\n\r\n"), id="te-underscore"),
        pytest.param(_req(b"content_length: 3", body=b"abc"), id="cl-underscore"),
        pytest.param(_req(b"NoColon"), id="no-colon"),
        pytest.param(_req(b"Content-Length : 3", body=b"abc"), id="space-before-colon"),
        pytest.param(_req(b"Content-Length\t: 3", body=b"abc"), id="tab-before-colon"),
        pytest.param(_req(b": empty name"), id="empty-name"),
        pytest.param(_req(b"X-A: 1", b" folded"), id="obs-fold"),
        pytest.param(_req(b"X-A: a\rb"), id="bare-cr"),
        pytest.param(_req(b"X-A: a\x00b"), id="nul"),
        pytest.param(_req(b"X-A: a\x1bb"), id="escape"),
        pytest.param(_req(start=b"POST  / HTTP/1.1"), id="double-space"),
        pytest.param(_req(start=b"POST /a b HTTP/1.1"), id="space-in-target"),
        pytest.param(_req(start=b"POST / HTTP/2.0"), id="version"),
        pytest.param(_req(start=b"POST / http/1.1"), id="version-case"),
        pytest.param(_req(start=b"POST /"), id="http09"),
        pytest.param(_req(start=b"P(ST / HTTP/1.1"), id="method-not-token"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", id="tls-hello"),
        pytest.param(b"\r\x00GET / HTTP/1.1\r\n\r\n", id="bare-cr-before"),
    ],
)
def test_requests_that_would_desync_are_malformed(data: bytes) -> None:
    refuse("requests", GET + data, MalformedFrame)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        pytest.param(b"HTTP/1.1 20 OK\r\n\r\n", id="short-status"),
        pytest.param(b"HTTP/1.1 2000 OK\r\n\r\n", id="long-status"),
        pytest.param(b"HTTP/1.1 OK\r\n\r\n", id="no-status"),
        pytest.param(b"HTTP/1.1 000 OK\r\n\r\n", id="status-000"),
        pytest.param(b"HTTP/1.1 099\r\n\r\n", id="status-099"),
        pytest.param(b"HTTP/1.1 200 O\x00K\r\n\r\n", id="nul-reason"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", id="2x"),
        pytest.param(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="1.0"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="a-request"),
        pytest.param(b"\r\nHTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", id="cl-x"),
    ],
)
def test_responses_that_would_desync_are_malformed(data: bytes) -> None:
    refuse("responses", OK + data, MalformedFrame)


def test_a_head_above_max_header_size_is_too_large_even_before_it_ends() -> None:
    big = _req(b"X-Big: " + b"a" * 200)
    refuse("requests", GET + big, FrameTooLarge, max_header_size=150)
    splitter = HttpSplitter("requests", max_header_size=150)
    splitter.receive_data(big[:160])  # no blank line yet
    with pytest.raises(FrameTooLarge):
        splitter.next_frame()
    refuse("requests", b"\r\n" * 100 + GET, FrameTooLarge, max_header_size=150)


def test_max_header_size_counts_the_whole_head_and_is_inclusive() -> None:
    assert frames("requests", GET, max_header_size=len(GET))[0].raw == GET
    refuse("requests", GET, FrameTooLarge, max_header_size=len(GET) - 1)
    splitter = HttpSplitter("requests", max_header_size=len(GET))
    splitter.receive_data(GET[:-1])
    assert splitter.next_frame() is NEED_DATA  # may still end in time
    splitter.receive_data(b"X")
    with pytest.raises(FrameTooLarge):  # cannot any more
        splitter.next_frame()


def test_a_declared_length_above_max_size_is_refused_before_the_body_arrives() -> None:
    splitter = HttpSplitter("requests", max_size=4)
    splitter.receive_data(_req(b"Content-Length: 5"))  # no body yet
    with pytest.raises(FrameTooLarge):
        splitter.next_frame()
    splitter.receive_data(b"hello")  # a dead splitter buffers nothing more
    with pytest.raises(FrameTooLarge):
        splitter.next_frame()
    assert not splitter._buf
    refuse("requests", _req(b"Content-Length: 4", body=b"abcd"), FrameTooLarge, max_size=3)


def test_chunks_adding_up_above_max_size_are_refused_at_the_chunk_size() -> None:
    splitter = HttpSplitter("requests", max_size=5)
    splitter.receive_data(_req(CHUNKED, body=b"3\r\nabc\r\n3\r\n"))
    with pytest.raises(FrameTooLarge):
        splitter.next_frame()
    refuse("requests", _req(CHUNKED, body=b"ffffffffffffffffffff\r\n"), FrameTooLarge)


def test_a_body_to_eof_above_max_size_is_refused_once_received() -> None:
    refuse("responses", b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 11, FrameTooLarge, max_size=10)
    (frame,) = frames("responses", b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 10, max_size=10)
    assert frame.body == b"x" * 10


def test_a_chunk_line_or_trailers_without_end_are_too_large() -> None:
    refuse("requests", _req(CHUNKED, body=b"5;" + b"e" * 200), FrameTooLarge, max_header_size=100)
    trailers = _req(CHUNKED, body=b"0\r\nX: " + b"t" * 200)
    refuse("requests", trailers, FrameTooLarge, max_header_size=100)


def test_frames_before_bad_input_come_first_then_the_error_stays() -> None:
    splitter = HttpSplitter("requests")
    splitter.receive_data(POST + GET + b"BAD REQUEST LINE\r\n\r\n")
    assert [splitter.next_frame(), splitter.next_frame()] == frames("requests", POST + GET)
    with pytest.raises(MalformedFrame) as first:
        splitter.next_frame()
    with pytest.raises(MalformedFrame) as again:
        splitter.next_frame()
    assert again.value is first.value


# -- EOF ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(POST[:5], id="start-line"),
        pytest.param(POST[:-7], id="head"),
        pytest.param(POST[:-1], id="body"),
        pytest.param(CHUNKED_POST[:80], id="chunk-size"),
        pytest.param(CHUNKED_POST[:-40], id="chunk-data"),
        pytest.param(CHUNKED_POST[:-2], id="trailers"),
        pytest.param(_req(CHUNKED, body=b"5\r\nhello\r"), id="chunk-crlf"),
        pytest.param(_req(CHUNKED, body=b"0\r\nX"), id="trailer-cut"),
        pytest.param(_req(CHUNKED, body=b"0\r\n\r"), id="last-crlf"),
    ],
)
def test_eof_inside_a_message_is_truncated(cut: bytes) -> None:
    splitter = HttpSplitter("requests")
    splitter.receive_data(GET + cut)
    assert isinstance(splitter.next_frame(), HttpFrame)
    assert splitter.next_frame() is NEED_DATA
    splitter.receive_data(b"")
    with pytest.raises(TruncatedFrame):
        splitter.next_frame()
    with pytest.raises(TruncatedFrame):
        splitter.next_frame()


def test_clean_eof_is_closed_and_data_after_eof_is_our_misuse() -> None:
    splitter = HttpSplitter("responses")
    assert splitter.next_frame() is NEED_DATA
    splitter.receive_data(OK)
    splitter.receive_data(b"")
    assert isinstance(splitter.next_frame(), HttpFrame)
    assert splitter.next_frame() is CLOSED
    assert splitter.next_frame() is CLOSED
    splitter.receive_data(b"")  # a second EOF is harmless
    with pytest.raises(LocalProtocolError):
        splitter.receive_data(b"more")
    assert splitter.eof


def test_a_head_arriving_byte_by_byte_is_searched_once() -> None:
    """The head's end is searched only in new bytes (checked through the scan offset)."""
    splitter = HttpSplitter("requests")
    head = _req(b"X-Long: " + b"v" * 4000)
    for i in range(len(head) - 1):
        splitter.receive_data(head[i : i + 1])
        assert splitter.next_frame() is NEED_DATA
        assert splitter._scan >= i - 2
    splitter.receive_data(head[-1:])
    assert isinstance(splitter.next_frame(), HttpFrame)


# -- Hypothesis: against h11 --------------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
RESERVED = {"content-length", "transfer-encoding", "connection", "upgrade", "host", "expect"}
RESERVED |= {name.replace("-", "_") for name in RESERVED}
EXAMPLES = budget(ci=80, slow=5000)
HOSTILE = budget(ci=150, slow=20000)
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

names = st.text(TOKEN_CHARS, min_size=1, max_size=12).filter(lambda n: n.lower() not in RESERVED)
vchar = st.sampled_from([bytes([b]) for b in [*range(0x21, 0x7F), 0x80, 0xE9, 0xFF]])
values = st.lists(st.lists(vchar, min_size=1, max_size=6).map(b"".join), max_size=3).map(b" ".join)
fields = st.lists(st.tuples(names.map(str.encode), values), max_size=4)
bodies = st.binary(max_size=300)


@st.composite
def chunked_body(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` in chunks of random sizes, some with extensions, then trailers."""
    out = []
    rest = body
    while rest:
        size = draw(st.integers(1, len(rest)))
        ext = draw(st.sampled_from([b"", b";a=b", b';n="x y"', b";flag"]))
        hex_size = draw(st.sampled_from(["{:x}", "{:X}", "{:04x}"])).format(size).encode()
        out.append(hex_size + ext + b"\r\n" + rest[:size] + b"\r\n")
        rest = rest[size:]
    out.append(b"0" + draw(st.sampled_from([b"", b";end"])) + b"\r\n")
    for name, value in draw(fields):
        out.append(name + b": " + value + b"\r\n")
    return b"".join(out) + b"\r\n"


@st.composite
def message(draw: st.DrawFn, kind: Kind, last: bool) -> bytes:
    """One valid HTTP/1.1 message both framers accept; ``last`` allows a body to EOF."""
    headers = list(draw(fields))
    if kind == "requests":
        method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"X-ONE"]))
        target = b"/" + draw(st.text(TOKEN_CHARS + "/?=&%", max_size=20)).encode()
        start = method + b" " + target + b" HTTP/1.1"
        headers.insert(draw(st.integers(0, len(headers))), (b"Host", b"example"))
        framing = draw(st.sampled_from(["none", "length", "chunked"]))
    else:
        status = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 500, 100, 102, 103]))
        reason = draw(st.sampled_from([b"", b" OK", b" Some Reason", b" "]))
        start = b"HTTP/1.1 %d" % status + reason
        if status < 200 or status in (204, 304):
            framing = "none"
        else:
            framing = draw(
                st.sampled_from(["length", "chunked", "eof"] if last else ["length", "chunked"])
            )
    body = draw(bodies) if framing != "none" else b""
    if framing == "length":
        name = draw(st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-LENGTH"]))
        headers.insert(draw(st.integers(0, len(headers))), (name, str(len(body)).encode()))
    elif framing == "chunked":
        headers.insert(draw(st.integers(0, len(headers))), (b"Transfer-Encoding", b"chunked"))
    sep = draw(st.sampled_from([b": ", b":", b":  ", b":\t"]))
    if draw(st.integers(0, 4)):
        head = start + b"\r\n" + b"".join(n + sep + v + b"\r\n" for n, v in headers) + b"\r\n"
    else:  # bare LF line ends here and there: both framers accept them in the head
        eol = st.sampled_from([b"\r\n", b"\n"])
        lines = [start, *(n + sep + v for n, v in headers), b""]
        head = b"".join(line + draw(eol) for line in lines)
    return head + (draw(chunked_body(body)) if framing == "chunked" else body)


@st.composite
def stream(draw: st.DrawFn, kind: Kind) -> tuple[bytes, list[bytes]]:
    """Valid messages back to back, and the stream cut into receive_data pieces."""
    count = draw(st.integers(1, 4))
    data = b"".join(draw(message(kind, last=i == count - 1)) for i in range(count))
    return data, draw(chunked(data, max_chunks=20))


def _h11_frames(kind: Kind, pieces: list[bytes]) -> list[tuple[bytes, bytes]]:
    framer = HttpFramer("server" if kind == "requests" else "client", one_way=True)
    out = []
    for piece in [*pieces, b""]:
        framer.receive_data(piece)
        while isinstance(item := framer.next_frame(), HttpMessage):
            out.append((item.raw, item.body))
    assert item is CLOSED
    return out


@pytest.mark.parametrize("kind", ["requests", "responses"])
@SETTINGS
@given(data=st.data())
def test_splits_valid_streams_exactly_like_h11(kind: Kind, data: st.DataObject) -> None:
    whole, pieces = data.draw(stream(kind))
    ours = frames(kind, *pieces)
    assert [(f.raw, f.body) for f in ours] == _h11_frames(kind, pieces)
    assert b"".join(f.raw for f in ours) == whole
    for frame in ours:  # the head we read is the one the cheap head reader reads
        if b"\n" not in frame.head.replace(b"\r\n", b""):  # it reads CRLF heads only
            assert frame.info == parse_head(frame.raw)


# -- Hypothesis: hostile input ------------------------------------------------------


ODD_STARTS = [
    b"GET / HTTP/1.1", b"CONNECT a:1 HTTP/1.1", b"POST / HTTP/1.0", b"GET / HTTP/1.2",
    b"GET /  HTTP/1.1", b"HTTP/1.1 200 OK", b"HTTP/1.1 101 Switching", b"HTTP/1.1 000",
    b"HTTP/1.1 100 Continue", b"HTTP/1.1 204 No", b"HTTP/1.1 304", b"HTTP/1.0 200 OK",
    b"HTTP/1.1 999 X", b"HTTP/1.1 1000",
]  # fmt: skip
ODD_FIELDS = st.sampled_from([
    b"Content-Length: 5", b"Content-Length: 0", b"Content-Length: 5, 5", b"Content-Length: 5,6",
    b"Content-Length: -1", b"Content-Length: 0x5", b"Content-Length: ", b"Content-Length:05",
    b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: gzip",
    b"Transfer-Encoding: chunked, gzip", b"Transfer-Encoding: ,chunked", b"Upgrade: websocket",
    b"Transfer-Encoding: CHUNKED", b" Transfer-Encoding: chunked", b"X: y", b"X:\ty \t",
    b"Transfer_Encoding: chunked", b"Content-Length : 5",
])  # fmt: skip
ODD_BODIES = st.sampled_from([
    b"", b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"5;x\r\nhello\r\n0\r\nT: 1\r\n\r\n",
    b"0\r\n\r\n", b"5\nhello\n0\n\n", b"zz\r\n", b"5\r\nhelloXX", b"\r\n",
])  # fmt: skip


@st.composite
def odd_message(draw: st.DrawFn) -> bytes:
    """A message built from framing headers, start lines and bodies good and bad."""
    start = draw(st.sampled_from(ODD_STARTS))
    fields = draw(st.lists(ODD_FIELDS, max_size=4))
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    return start + eol + b"".join(f + eol for f in fields) + eol + draw(ODD_BODIES)


@st.composite
def hostile(draw: st.DrawFn, kind: Kind) -> tuple[bytes, list[bytes]]:
    """A valid stream mutated (bytes flipped, inserted, deleted, CR/LF moved), messages
    made of odd framing headers, or noise."""
    how = draw(st.sampled_from(["mutated", "odd", "noise"]))
    if how == "mutated":
        data = bytearray(draw(stream(kind))[0])
        for _ in range(draw(st.integers(1, 4))):
            where = draw(st.integers(0, len(data)))
            what = draw(st.sampled_from([b"\r", b"\n", b"\r\n", b" ", b":", b"0", b"\x00", b"a"]))
            op = draw(st.sampled_from(["insert", "replace", "delete"]))
            if op == "insert":
                data[where:where] = what
            elif op == "replace":
                data[where : where + len(what)] = what
            else:
                del data[where : where + draw(st.integers(1, 8))]
        raw = bytes(data)
    elif how == "odd":
        raw = b"".join(draw(st.lists(odd_message(), min_size=1, max_size=4)))
    else:
        raw = draw(st.binary(max_size=400))
    return raw, draw(chunked(raw, max_chunks=20))


def _check_hostile(kind: Kind, whole: bytes, pieces: list[bytes], **options: Any) -> None:
    splitter = HttpSplitter(kind, **options)
    consumed = bytearray()
    for piece in [*pieces, b""]:
        splitter.receive_data(piece)
        for _ in range(len(whole) + 2):  # each frame takes at least one byte
            try:
                item = splitter.next_frame()
            except RemoteProtocolError:
                assert whole.startswith(consumed)
                with pytest.raises(RemoteProtocolError):
                    splitter.next_frame()
                return
            if isinstance(item, FrameEvent):
                break
            assert isinstance(item, HttpFrame | bytes)
            chunk = splitter.frame(item)
            assert chunk
            if isinstance(item, HttpFrame):
                assert item.info.head_size <= len(chunk)
                assert len(item.body) <= len(chunk) - item.info.head_size
            consumed += chunk
            assert whole.startswith(consumed)
        else:
            raise AssertionError("next_frame never stopped")
    assert item is CLOSED
    assert whole.startswith(consumed)
    assert whole[len(consumed) :].strip(b"\r\n") == b""  # only blank lines left unframed


@pytest.mark.parametrize("kind", ["requests", "responses"])
@settings(SETTINGS, max_examples=HOSTILE)
@given(data=st.data())
def test_hostile_streams_end_in_frames_or_a_remote_error(kind: Kind, data: st.DataObject) -> None:
    whole, pieces = data.draw(hostile(kind))
    _check_hostile(kind, whole, pieces)
    _check_hostile(kind, whole, pieces, max_size=20, max_header_size=60)
