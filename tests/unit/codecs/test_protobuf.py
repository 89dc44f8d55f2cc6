"""Protobuf codecs: a generic message codec, Struct's int->float loss, lazy import."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faultlab.codecs import (
    CodecUnavailable,
    DecodeError,
    EncodeError,
    ProtobufCodec,
    StructCodec,
    explain_difference,
    get_codec,
    same,
)
from faultlab.errors import LocalProtocolError

from .helpers import FAST

pytest.importorskip("google.protobuf")

from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)

MESSAGE_TYPES = [
    wrappers_pb2.DoubleValue,
    wrappers_pb2.FloatValue,
    wrappers_pb2.Int64Value,
    wrappers_pb2.UInt64Value,
    wrappers_pb2.StringValue,
    wrappers_pb2.BytesValue,
    timestamp_pb2.Timestamp,
    any_pb2.Any,
    struct_pb2.Value,
    descriptor_pb2.FileDescriptorProto,  # proto2: nested, repeated, enums, recursion
]


@pytest.fixture(scope="module", params=MESSAGE_TYPES, ids=lambda t: t.__name__)
def codec(request: pytest.FixtureRequest) -> ProtobufCodec:
    return ProtobufCodec(request.param)


@FAST
@given(data=st.data())
def test_messages_round_trip(codec: ProtobufCodec, data: st.DataObject) -> None:
    message = data.draw(codec.domain())
    decoded = codec.decode(codec.encode(message))
    assert same(decoded, message), explain_difference(decoded, message)


def test_outside_domain(codec: ProtobufCodec) -> None:
    for example in codec.outside_domain_examples():
        with pytest.raises(example.raises):
            codec.encode(example.value)


@FAST
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_decode_error(codec: ProtobufCodec, data: bytes) -> None:
    try:
        codec.decode(data)
    except DecodeError:
        pass


def test_same_sees_signed_zero_and_nan_inside_messages() -> None:
    codec = ProtobufCodec(wrappers_pb2.DoubleValue)
    for value in (-0.0, float("nan"), float("inf")):
        message = wrappers_pb2.DoubleValue(value=value)
        assert same(codec.decode(codec.encode(message)), message)
    assert not same(wrappers_pb2.DoubleValue(value=-0.0), wrappers_pb2.DoubleValue(value=0.0))


def test_deterministic_bytes() -> None:
    codec = ProtobufCodec(struct_pb2.Struct)
    a, b = struct_pb2.Struct(), struct_pb2.Struct()
    a.update({"x": 1.0, "y": 2.0})
    b.update({"y": 2.0, "x": 1.0})
    assert codec.encode(a) == codec.encode(b)


def test_needs_a_message_type() -> None:
    with pytest.raises(LocalProtocolError, match="message_type"):
        get_codec("protobuf")


# -- Struct (JSON-like values through google.protobuf.Value) -------------------------


def test_struct_turns_ints_into_floats_so_strict_refuses_them() -> None:
    with pytest.raises(EncodeError, match="doubles"):
        StructCodec().encode({"n": 1})
    lenient = StructCodec(strict=False)
    back = lenient.decode(lenient.encode({"n": 1, "big": 2**53 + 1}))
    assert back == {"n": 1.0, "big": float(2**53)}
    assert not same(back, {"n": 1, "big": 2**53 + 1})


def test_struct_keeps_nan_inf_and_negative_zero_in_binary() -> None:
    value: Any = [float("nan"), float("-inf"), -0.0, {"a": None, "b": [True, "x"]}, [], {}]
    assert same(StructCodec().decode(StructCodec().encode(value)), value)


def test_struct_depth_asymmetry_is_caught_on_encode() -> None:
    deep: Any = None
    for _ in range(34):
        deep = {"a": deep}
    with pytest.raises(EncodeError, match="deeper"):
        StructCodec().encode(deep)
    wire = StructCodec(strict=False, max_depth=100).encode(deep)  # encodes...
    with pytest.raises(DecodeError):  # ...but upb refuses to decode it
        StructCodec(strict=False, max_depth=100).decode(wire)


def test_value_without_kind_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="no kind"):
        StructCodec().decode(b"")


def test_missing_protobuf_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.protobuf.struct_pb2", None)
    with pytest.raises(CodecUnavailable, match="faultlab\\[grpc\\]"):
        StructCodec()
    assert issubclass(CodecUnavailable, ImportError)
