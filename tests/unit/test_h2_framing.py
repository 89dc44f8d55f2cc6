"""The sans-IO HTTP/2 pieces the relay is built on: units, boundaries, message counts.

Frames are built with ``hyperframe`` and headers with ``hpack`` (the h2 project's own
layers), so these tests check our reading against an independent writer.
"""

from __future__ import annotations

import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlab.codecs.errors import MalformedFrame, TruncatedFrame
from faultlab.codecs.framing.base import CLOSED, NEED_DATA
from faultlab.codecs.framing.h2 import (
    DATA,
    HEADERS,
    PREFACE,
    FrameBoundary,
    GrpcMessageCounter,
    H2Splitter,
    H2Unit,
    error_code,
    grpc_timeout_seconds,
    header_block_frames,
    injected_headers,
)
from faultlab.proxy.h2relay import parse_units

REQUEST = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/pkg.Svc/Method"),
    (":authority", "localhost"),
    ("content-type", "application/grpc"),
    ("grpc-timeout", "250m"),
]


def grpc_message(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def headers_frame(encoder: hpack.Encoder, stream: int, headers: list[tuple[str, str]]) -> bytes:
    frame = HeadersFrame(stream)
    frame.data = encoder.encode(headers)
    frame.flags.add("END_HEADERS")
    return bytes(frame.serialize())


def client_bytes() -> bytes:
    encoder = hpack.Encoder()
    data = DataFrame(1)
    data.data = grpc_message(b"hello")
    data.flags.add("END_STREAM")
    return b"".join(
        [
            PREFACE,
            bytes(SettingsFrame(0).serialize()),
            headers_frame(encoder, 1, REQUEST),
            bytes(data.serialize()),
            headers_frame(encoder, 3, REQUEST),  # indexed from the dynamic table now
            bytes(WindowUpdateFrame(0, window_increment=1000).serialize()),
            bytes(PingFrame(0, opaque_data=b"12345678").serialize()),
        ]
    )


def drain(splitter: H2Splitter) -> None:
    while isinstance(splitter.next_frame(), H2Unit):
        pass


def _open_block_then_ping() -> bytes:
    headers = HeadersFrame(1)
    headers.data = hpack.Encoder().encode(REQUEST)  # no END_HEADERS: a CONTINUATION must follow
    return bytes(headers.serialize()) + bytes(PingFrame(0).serialize())


def units_of(data: bytes, *, pieces: list[int] | None = None) -> list[H2Unit]:
    splitter = H2Splitter(client_side=True)
    cuts = sorted(set(pieces or []))
    start = 0
    out: list[H2Unit] = []
    for cut in [*cuts, len(data)]:
        if cut > start:  # b"" would mean EOF
            splitter.receive_data(data[start:cut])
        start = max(start, cut)
        while isinstance(unit := splitter.next_frame(), H2Unit):
            out.append(unit)
    splitter.receive_data(b"")
    assert splitter.next_frame() is CLOSED
    return out


def test_a_client_stream_is_cut_into_units_and_header_blocks_decode_in_order() -> None:
    units = units_of(client_bytes())
    assert [u.type for u in units] == [-1, 4, HEADERS, DATA, HEADERS, 8, 6]
    first, second = units[2], units[4]
    assert first.headers == REQUEST
    assert second.headers == REQUEST  # the second block only decodes with the first's table
    assert (first.block, second.block) == (0, 1)
    assert units[3].data == grpc_message(b"hello")
    assert units[3].end_stream
    assert b"".join(u.raw for u in units) == client_bytes()  # exact wire bytes


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(client_bytes())), max_size=12))
def test_any_split_of_the_bytes_gives_the_same_units(cuts: list[int]) -> None:
    whole = units_of(client_bytes())
    split = units_of(client_bytes(), pieces=cuts)
    assert [(u.type, u.stream, u.raw, u.headers) for u in split] == [
        (u.type, u.stream, u.raw, u.headers) for u in whole
    ]


def test_continuation_frames_join_their_headers_frame_into_one_unit() -> None:
    encoder = hpack.Encoder()
    block = encoder.encode([*REQUEST, ("x-big", "v" * 40_000)])
    wire = PREFACE + header_block_frames(1, block, end_stream=True)
    units = units_of(wire)
    assert len(units) == 2
    assert units[1].header("x-big") == "v" * 40_000
    assert units[1].end_stream
    assert units[1].raw.count(b"\x09") >= 1  # CONTINUATION frames present on the wire


def test_padded_data_and_priority_headers_are_read() -> None:
    encoder = hpack.Encoder()
    headers = HeadersFrame(1)
    headers.data = encoder.encode(REQUEST)
    for flag in ("END_HEADERS", "PRIORITY", "PADDED"):
        headers.flags.add(flag)
    headers.pad_length = 7
    headers.depends_on, headers.stream_weight = 0, 15
    data = DataFrame(1)
    data.data = b"abc"
    data.flags.add("PADDED")
    data.pad_length = 4
    units = units_of(PREFACE + bytes(headers.serialize()) + bytes(data.serialize()))
    assert units[1].headers == REQUEST
    assert len(units[1].priority) == 5
    assert units[2].data == b"abc"
    assert units[2].flow == 3 + 4 + 1  # padding counts against flow control


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (b"GET / HTTP/1.1\r\n\r\n" + b"x" * 20, "preface"),
        (PREFACE + bytes(ContinuationFrame(1).serialize()), "CONTINUATION without"),
        (PREFACE + _open_block_then_ping(), "interrupted"),
        (PREFACE + b"\x00\x00\x03\x01\x04\x00\x00\x00\x01\xff\xff\xff", "does not decode"),
    ],
)
def test_bad_framing_is_a_typed_error(wire: bytes, error: str) -> None:
    splitter = H2Splitter(client_side=True)
    splitter.receive_data(wire)
    with pytest.raises(MalformedFrame, match=error):
        drain(splitter)
    with pytest.raises(MalformedFrame):  # dead after an error
        splitter.next_frame()


def test_an_oversize_header_block_is_refused_before_it_is_held() -> None:
    splitter = H2Splitter(client_side=True, max_block=1000)
    splitter.receive_data(PREFACE + header_block_frames(1, b"\x00" * 5000, end_stream=False))
    assert isinstance(splitter.next_frame(), H2Unit)  # the preface
    with pytest.raises(MalformedFrame, match="larger than 1000"):
        splitter.next_frame()


def test_eof_inside_a_frame_is_truncation() -> None:
    splitter = H2Splitter(client_side=False)
    splitter.receive_data(bytes(PingFrame(0).serialize())[:12])
    assert splitter.next_frame() is NEED_DATA
    splitter.receive_data(b"")
    with pytest.raises(TruncatedFrame):
        splitter.next_frame()


def test_injected_headers_leave_the_receivers_hpack_table_untouched() -> None:
    """A reply the relay writes between the server's frames must not shift the dynamic table
    the client decodes the server's next block with."""
    server = hpack.Encoder()
    client = hpack.Decoder()
    response = [(":status", "200"), ("content-type", "application/grpc"), ("x-a", "1")]
    client.decode(server.encode(response))
    injected = injected_headers(5, [(":status", "200"), ("grpc-status", "14"), ("x-b", "2")])
    unit = parse_units(injected)[0]
    client.decode(unit.raw[9:])  # the client reads our reply with its own table
    assert client.decode(server.encode(response)) == response  # still in sync


def test_frame_boundary_follows_frames_and_open_header_blocks() -> None:
    boundary = FrameBoundary(client_side=True)
    assert not boundary.at_boundary
    boundary.feed(PREFACE[:10])
    assert not boundary.at_boundary
    boundary.feed(PREFACE[10:])
    assert boundary.at_boundary
    ping = bytes(PingFrame(0).serialize())
    boundary.feed(ping[:5])
    assert not boundary.at_boundary
    boundary.feed(ping[5:])
    assert boundary.at_boundary
    open_block = _open_block_then_ping()[: -len(ping)]
    boundary.feed(open_block)
    assert not boundary.at_boundary  # a frame of ours here would split the header block
    last = ContinuationFrame(1)
    last.flags.add("END_HEADERS")
    boundary.feed(bytes(last.serialize()))
    assert boundary.at_boundary


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.binary(max_size=40), max_size=8),
    st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_grpc_messages_are_counted_across_any_data_split(
    messages: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(grpc_message(m) for m in messages)
    counter = GrpcMessageCounter()
    start = 0
    ends: list[int] = []
    for cut in [*sorted(c for c in set(cuts) if c <= len(stream)), len(stream)]:
        piece = stream[start:cut]
        ends += [start + e for e in counter.boundaries(piece)]
        counter.feed(piece)
        start = cut
    assert counter.count == len(messages)
    expected, offset = [], 0
    for m in messages:
        offset += 5 + len(m)
        expected.append(offset)
    assert ends == expected
    assert not counter.inside


def test_grpc_timeout_and_error_codes_parse_strictly() -> None:
    assert grpc_timeout_seconds("250m") == pytest.approx(0.25)
    assert grpc_timeout_seconds("3S") == 3.0
    assert grpc_timeout_seconds("123456789S") is None  # more than 8 digits
    assert grpc_timeout_seconds("5x") is None
    assert grpc_timeout_seconds(None) is None
    assert error_code("cancel") == 8
    assert error_code("7") == 7
    with pytest.raises(ValueError, match="unknown HTTP/2 error code"):
        error_code("NOPE")


def test_goaway_frames_are_read_as_units() -> None:
    frame = GoAwayFrame(0, last_stream_id=5, error_code=0)
    units = units_of(PREFACE + bytes(frame.serialize()))
    assert units[1].type == 7
    assert int.from_bytes(units[1].data[:4], "big") == 5


def test_frame_boundary_resyncs_from_what_a_splitter_still_holds() -> None:
    wire = client_bytes()
    cut = len(wire) - 5  # inside the last frame (a PING)
    splitter = H2Splitter(client_side=True)
    splitter.receive_data(wire[:cut])
    drain(splitter)
    boundary = FrameBoundary(client_side=True)
    boundary.resync(*splitter.held_bytes())
    assert not boundary.at_boundary
    boundary.feed(wire[cut:])
    assert boundary.at_boundary
    fresh = H2Splitter(client_side=True)
    fresh.receive_data(PREFACE[:7])
    drain(fresh)
    boundary.resync(*fresh.held_bytes())
    boundary.feed(PREFACE[7:])
    assert boundary.at_boundary


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(client_bytes()) - 1), max_size=6))
def test_reads_handed_over_late_after_the_eof_give_the_same_units(cuts: list[int]) -> None:
    """The relay reads forwarded client bytes after the fact (receive_late), possibly after
    the EOF was given: the units are those of the bytes read in time."""
    data = client_bytes()
    splitter = H2Splitter(client_side=True)
    splitter.receive_data(b"")
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        splitter.receive_late(data[start:cut])
        start = cut
    late = []
    while isinstance(unit := splitter.next_frame(), H2Unit):
        late.append(unit)
    assert splitter.next_frame() is CLOSED
    assert [(u.type, u.raw, u.headers) for u in late] == [
        (u.type, u.raw, u.headers) for u in units_of(data)
    ]
