"""Codecs on hostile bytes: ``decode`` returns a value or raises ``DecodeError``, nothing else.

Two kinds of input: Hypothesis mutates valid encodings of values drawn from each codec's
own domain (structure-aware), and a seeded mutator supplies the big counts (100,000 per
codec in slow mode). Each input must finish well inside the per-input bound.
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultlab.codecs import Codec, DecodeError, ProtobufCodec, get_codec
from tests.fuzz.budget import budget
from tests.unit.codecs.hostile import fuzz, fuzz_seed

SEED = fuzz_seed()
COUNT = budget(ci=3000, slow=100_000)
EXAMPLES = budget(ci=60, slow=1000)

VALUES: dict[str, list[Any]] = {
    "json": [None, 1, -2.5, "é\n\"x", [1, [2, {"a": None}]], {"k": [True, False, "v"]}],
    "msgpack": [
        None, 2**63, -1.5, "ü", b"\x00\xff", [1, [2, {"a": b"b", 3: None}]],
        {"t": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)}, float("nan"),
    ],
    "xmlrpc": [
        1, -2.5, "a<b&c\r", b"\x00bin", [1, [True, {"a": "b"}]],
        {"d": dt.datetime(2024, 1, 2, 3, 4, 5)}, {"s": {"t": [1.5, "x"]}},
    ],
    "protobuf-struct": [None, 1.5, "x", [1.5, {"a": "b"}], {"k": [True, None, {"n": -0.0}]}],
}  # fmt: skip
CODECS = [*VALUES, "protobuf"]


def make_codec(name: str, strict: bool = True) -> Codec:
    if name == "protobuf":
        descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
        return ProtobufCodec(descriptor_pb2.FileDescriptorProto)
    if name == "protobuf-struct":
        pytest.importorskip("google.protobuf")
    return get_codec(name, strict=strict)


def corpus(name: str, codec: Codec) -> list[bytes]:
    if name == "protobuf":
        descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
        proto = descriptor_pb2.FileDescriptorProto(name="a.proto", package="p", dependency=["b"])
        message = proto.message_type.add(name="M")
        message.field.add(name="f", number=1, type=9, label=1)
        message.nested_type.add(name="N").field.add(name="g", number=2, type=5, label=3)
        return [proto.SerializeToString(), descriptor_pb2.FileDescriptorProto().SerializeToString()]
    return [codec.encode(value) for value in VALUES[name]]


@pytest.mark.parametrize(
    ("name", "strict"),
    # ProtobufCodec has no lenient mode: only its strict decoding is a case.
    [(n, s) for n in CODECS for s in (True, False) if s or n != "protobuf"],
    ids=lambda v: v if isinstance(v, str) else ("strict" if v else "lenient"),
)
def test_decode_raises_only_decode_error(name: str, strict: bool) -> None:
    codec = make_codec(name, strict)
    seed = SEED ^ zlib.crc32(f"codec:{name}:{strict}".encode())
    fuzz(f"codec {name} {'strict' if strict else 'lenient'}", corpus(name, codec), COUNT,
         codec.decode, seed)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few structure-blind edits: Hypothesis shrinks them to the smallest."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(out)))
        edit = draw(st.sampled_from(["flip", "cut", "insert", "delete", "repeat"]))
        if edit == "flip" and out:
            out[min(at, len(out) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif edit == "cut":
            del out[at:]
        elif edit == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del out[at : at + draw(st.integers(1, 8))]
        else:
            out[at:at] = out[at : at + draw(st.integers(1, 4))] * draw(st.integers(2, 300))
    return bytes(out)


@pytest.mark.parametrize("name", list(VALUES))
def test_mutated_domain_values_raise_only_decode_error(name: str) -> None:
    codec = make_codec(name)

    @settings(
        max_examples=EXAMPLES, deadline=None, database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )  # fmt: skip
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        value = data.draw(codec.domain(), label="value")
        wire = data.draw(mutated(codec.encode(value)), label="wire")
        try:
            codec.decode(wire)
        except DecodeError:
            pass

    check()
