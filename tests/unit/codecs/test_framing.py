"""Stream framings: any chunking gives back the same frames; bad input only typed errors."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from faultlab.codecs import (
    CLOSED,
    NEED_DATA,
    DatagramFramer,
    Framer,
    FrameTooLarge,
    GrpcFramer,
    LengthPrefixFramer,
    LinesFramer,
    MalformedFrame,
    MsgpackCodec,
    MsgpackStreamFramer,
    PayloadTooLarge,
    TruncatedFrame,
    framer_names,
    get_framer,
    same,
)
from faultlab.errors import LocalProtocolError, RemoteProtocolError

from .helpers import FAST, chunked, drain, feed_all

Make = Callable[[], Framer[bytes]]

STREAM_FRAMERS: dict[str, tuple[Make, st.SearchStrategy[bytes]]] = {
    "length-prefix": (LengthPrefixFramer, st.binary(max_size=64)),
    "grpc": (GrpcFramer, st.binary(max_size=64)),
    "grpc-gzip": (lambda: GrpcFramer(encoding="gzip"), st.binary(max_size=64)),
    "lines": (LinesFramer, st.binary(max_size=64).map(lambda b: b.replace(b"\n", b""))),
    "msgpack-stream": (
        MsgpackStreamFramer,
        MsgpackCodec().domain().map(MsgpackCodec().encode),
    ),
}
IDS = list(STREAM_FRAMERS)


@pytest.mark.parametrize("kind", IDS)
@FAST
@given(data=st.data())
def test_any_chunking_gives_back_the_same_frames(kind: str, data: st.DataObject) -> None:
    make, payloads = STREAM_FRAMERS[kind]
    messages = data.draw(st.lists(payloads, max_size=6))
    sender, receiver = make(), make()
    wire = b"".join(sender.frame(message) for message in messages)
    assert feed_all(receiver, data.draw(chunked(wire))) == messages
    assert receiver.next_frame() is CLOSED


@pytest.mark.parametrize("kind", IDS)
@FAST
@given(data=st.data())
def test_arbitrary_bytes_raise_only_remote_errors(kind: str, data: st.DataObject) -> None:
    make, _ = STREAM_FRAMERS[kind]
    framer = make()
    wire = data.draw(st.binary(max_size=200))
    try:
        feed_all(framer, data.draw(chunked(wire)), eof=data.draw(st.booleans()))
    except RemoteProtocolError:
        with pytest.raises(RemoteProtocolError):  # errors are sticky
            framer.next_frame()


@pytest.mark.parametrize("kind", IDS)
@FAST
@given(data=st.data())
def test_eof_inside_a_frame_is_truncation_never_a_value(kind: str, data: st.DataObject) -> None:
    make, payloads = STREAM_FRAMERS[kind]
    messages = data.draw(st.lists(payloads, min_size=1, max_size=4))
    frames = [make().frame(message) for message in messages]
    wire = b"".join(frames)
    boundaries = {sum(map(len, frames[:i])) for i in range(len(frames) + 1)}
    cut = data.draw(st.integers(0, len(wire) - 1))
    framer = make()
    framer.receive_data(wire[:cut])
    framer.receive_data(b"")
    got: list[bytes] = []
    if cut in boundaries:
        got.extend(framer.frames())
        assert framer.next_frame() is CLOSED
    else:
        with pytest.raises(TruncatedFrame):
            got.extend(framer.frames())
    assert got == messages[: len(got)]


def test_registry() -> None:
    assert set(framer_names()) >= {
        "length-prefix", "lines", "msgpack-stream", "grpc", "datagram", "http"
    }  # fmt: skip
    framer = get_framer("length-prefix", max_size=10)
    assert isinstance(framer, LengthPrefixFramer)
    assert framer.max_size == 10


def test_data_after_eof_is_our_misuse() -> None:
    framer = LengthPrefixFramer()
    framer.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        framer.receive_data(b"x")


# -- length prefix -------------------------------------------------------------------


def test_oversize_length_is_refused_from_the_header_alone() -> None:
    framer = LengthPrefixFramer()
    framer.receive_data(struct.pack(">I", 2**32 - 1))  # claims 4 GiB; only 4 bytes fed
    with pytest.raises(FrameTooLarge, match="4294967295"):
        framer.next_frame()


def test_oversize_body_is_never_buffered() -> None:
    framer = LengthPrefixFramer(max_size=16)
    framer.receive_data(framer.frame(b"ok") + struct.pack(">I", 17))
    for _ in range(100):
        framer.receive_data(b"\x00" * 65536)  # dropped, not held
    assert framer.next_frame() == b"ok"  # frames before the bad header still arrive
    with pytest.raises(FrameTooLarge):
        framer.next_frame()
    with pytest.raises(FrameTooLarge):
        framer.next_frame()


def test_frame_refuses_oversize_payload() -> None:
    with pytest.raises(PayloadTooLarge):
        LengthPrefixFramer(max_size=3).frame(b"abcd")
    assert issubclass(PayloadTooLarge, LocalProtocolError)
    assert issubclass(FrameTooLarge, RemoteProtocolError)


def test_many_small_frames_in_one_chunk() -> None:
    framer = LengthPrefixFramer()
    messages = [str(i).encode() for i in range(10000)]
    framer.receive_data(b"".join(framer.frame(m) for m in messages))
    assert list(framer.frames()) == messages
    assert framer.next_frame() is NEED_DATA


# -- gRPC ----------------------------------------------------------------------------


def test_grpc_prefix_layout() -> None:
    assert GrpcFramer().frame(b"abc") == b"\x00\x00\x00\x00\x03abc"


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (b"\x02\x00\x00\x00\x00", MalformedFrame),  # flag must be 0 or 1
        (b"\x01\x00\x00\x00\x00", MalformedFrame),  # compressed under identity
        (b"\x00\xff\xff\xff\xff", FrameTooLarge),
    ],
)
def test_grpc_bad_headers(wire: bytes, error: type[Exception]) -> None:
    framer = GrpcFramer()
    framer.receive_data(wire)
    with pytest.raises(error):
        framer.next_frame()


def test_grpc_gzip_bomb_is_bounded() -> None:
    deflater = zlib.compressobj(wbits=31)
    bomb = deflater.compress(b"\x00" * 10_000_000) + deflater.flush()
    framer = GrpcFramer(encoding="gzip", max_size=1_000_000)
    framer.receive_data(b"\x01" + struct.pack(">I", len(bomb)) + bomb)
    with pytest.raises(FrameTooLarge, match="inflates"):
        framer.next_frame()


# -- lines ---------------------------------------------------------------------------


def test_lines_payload_with_newline_is_our_misuse() -> None:
    with pytest.raises(LocalProtocolError, match="newline"):
        LinesFramer().frame(b"a\nb")


def test_lines_too_long_is_refused_before_the_newline() -> None:
    framer = LinesFramer(max_size=8)
    framer.receive_data(b"short\n" + b"x" * 9)
    assert framer.next_frame() == b"short"
    with pytest.raises(FrameTooLarge):
        framer.next_frame()


def test_lines_keeps_carriage_returns() -> None:
    framer = LinesFramer()
    framer.receive_data(b"a\r\n\n")
    assert list(framer.frames()) == [b"a\r", b""]


# -- msgpack stream ------------------------------------------------------------------


def test_msgpack_stream_refuses_announced_oversize_from_the_header() -> None:
    framer = MsgpackStreamFramer(max_size=1024)
    framer.receive_data(b"\xdb\xff\xff\xff\xff")  # str32 claiming 4 GiB
    with pytest.raises(FrameTooLarge):
        framer.next_frame()


def test_msgpack_stream_refuses_unannounced_oversize_with_bounded_memory() -> None:
    framer = MsgpackStreamFramer(max_size=1000)
    framer.receive_data(b"\x9f" + b"\x9f" * 5000)  # nested fixarrays, no size header
    with pytest.raises(FrameTooLarge):
        framer.next_frame()


def test_msgpack_stream_objects() -> None:
    values: list[Any] = [1, "é", [1, {"k": b"v"}], None, {1: 2}]
    sender, receiver = MsgpackStreamFramer(), MsgpackStreamFramer()
    receiver.receive_data(b"".join(sender.frame_object(v) for v in values))
    got = []
    while (item := receiver.next_object()) is not NEED_DATA:
        got.append(item)
    assert same(got, values)


@pytest.mark.parametrize("payload", [b"", b"\x01\x02", b"\xc1", b"\x92\x01"])
def test_msgpack_stream_frame_wants_exactly_one_object(payload: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        MsgpackStreamFramer().frame(payload)


def test_msgpack_stream_bad_utf8_is_remote() -> None:
    framer = MsgpackStreamFramer()
    framer.receive_data(msgpack.packb(b"\xff", use_bin_type=False))
    with pytest.raises(RemoteProtocolError):
        framer.next_object()


# -- datagram ------------------------------------------------------------------------


def test_datagrams_are_frames_and_errors_do_not_stick() -> None:
    framer = DatagramFramer(max_size=4)
    framer.receive_data(b"ab")
    framer.receive_data(b"toolong")
    framer.receive_datagram(b"")
    assert framer.next_frame() == b"ab"
    with pytest.raises(FrameTooLarge):
        framer.next_frame()
    assert framer.next_frame() == b""
    assert framer.next_frame() is NEED_DATA
    framer.receive_data(b"")
    assert drain(framer) is CLOSED
    with pytest.raises(PayloadTooLarge):
        framer.frame(b"12345")
    assert framer.frame(b"1234") == b"1234"
