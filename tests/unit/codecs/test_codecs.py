"""Every value codec: round trip over its declared domain, typed errors outside it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgpack
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from faultlab.codecs import (
    Codec,
    DecodeError,
    EncodeError,
    JsonCodec,
    MsgpackCodec,
    UnknownCodec,
    ValueCodec,
    XmlRpcCodec,
    codec_names,
    explain_difference,
    get_codec,
    register_codec,
    same,
)
from faultlab.codecs._rules import nested_list
from faultlab.errors import LocalProtocolError, RemoteProtocolError

from .helpers import FAST

CODECS: list[tuple[str, dict[str, Any]]] = [
    ("json", {}),
    ("json", {"strict": False}),
    ("msgpack", {}),
    ("msgpack", {"datetimes": False}),
    ("xmlrpc", {}),
    ("xmlrpc", {"allow_none": True}),
    ("protobuf-struct", {}),
]


def _codec(name: str, options: dict[str, Any]) -> Codec:
    if name.startswith("protobuf"):
        pytest.importorskip("google.protobuf")
    return get_codec(name, **options)


@pytest.fixture(
    scope="module",
    params=CODECS,
    ids=lambda p: p[0] + "".join(f"-{k}={v}" for k, v in p[1].items()),
)
def codec(request: pytest.FixtureRequest) -> Codec:
    name, options = request.param
    return _codec(name, options)


@FAST
@given(data=st.data())
def test_round_trip_over_domain(codec: Codec, data: st.DataObject) -> None:
    value = data.draw(codec.domain())
    decoded = codec.decode(codec.encode(value))
    assert same(decoded, value), explain_difference(decoded, value)


def test_outside_domain_raises_the_documented_error(codec: Codec) -> None:
    if isinstance(codec, ValueCodec) and not codec.strict:
        pytest.skip("strict=False leaves the library's own behaviour")
    examples = codec.outside_domain_examples()
    assert examples
    for example_ in examples:
        with pytest.raises(example_.raises):
            codec.encode(example_.value)


@FAST
@given(data=st.binary(max_size=300))
@example(data=b"")
@example(data=b"\xff")
@example(data=b"[" * 5000)
@example(data=b"NaN")
@example(data=b"1e400")
@example(data=b'"\\ud800"')
@example(data=b"\xdd\xff\xff\xff\xff")
@example(data=b"\x91" * 3000 + b"\xc0")
@example(data=b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>")
def test_arbitrary_bytes_raise_only_decode_error(codec: Codec, data: bytes) -> None:
    try:
        codec.decode(data)
    except DecodeError:
        pass


@FAST
@given(data=st.data())
def test_corrupted_encodings_raise_only_decode_error(codec: Codec, data: st.DataObject) -> None:
    wire = bytearray(codec.encode(data.draw(codec.domain())))
    for _ in range(data.draw(st.integers(1, 3))):
        if wire and data.draw(st.booleans()):
            wire[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
        else:
            del wire[data.draw(st.integers(0, len(wire))) :]
    try:
        codec.decode(bytes(wire))
    except DecodeError:
        pass


def test_decode_error_is_remote_and_encode_error_is_local() -> None:
    assert issubclass(DecodeError, RemoteProtocolError)
    assert issubclass(EncodeError, LocalProtocolError)


def test_depth_limit_both_ways(codec: Codec) -> None:
    assert isinstance(codec, ValueCodec)
    limit = codec.max_depth
    assert same(codec.decode(codec.encode(nested_list(limit))), nested_list(limit))
    if codec.strict:
        with pytest.raises(EncodeError):
            codec.encode(nested_list(limit + 1))


@pytest.mark.parametrize(("name", "options"), CODECS[:-1])
def test_a_peer_cannot_send_deeper_than_we_accept(name: str, options: dict[str, Any]) -> None:
    lenient = _codec(name, {**options, "strict": False, "max_depth": 1000})
    wire = lenient.encode(nested_list(150))
    with pytest.raises(DecodeError, match="deeper"):
        _codec(name, {**options, "strict": True}).decode(wire)


def test_oversize_input_is_refused_before_parsing() -> None:
    with pytest.raises(DecodeError, match="max_size"):
        JsonCodec(max_size=10).decode(b"[" + b"1," * 10 + b"1]")


def test_decode_wants_bytes() -> None:
    with pytest.raises(LocalProtocolError):
        JsonCodec().decode("[]")  # type: ignore[arg-type]


# -- per-codec boundaries (the §5a matrix) ------------------------------------------


@pytest.mark.parametrize("value", [2**63, 2**64 - 1, -(2**63), {1: "a", b"k": None, 2.5: True}])
def test_msgpack_edges_survive(value: Any) -> None:
    codec = MsgpackCodec()
    assert same(codec.decode(codec.encode(value)), value)


def test_msgpack_utc_datetime_keeps_microseconds() -> None:
    value = dt.datetime(1969, 12, 31, 23, 59, 59, 500001, tzinfo=dt.UTC)
    assert same(MsgpackCodec().decode(MsgpackCodec().encode(value)), value)


def test_msgpack_ext_type_round_trips() -> None:
    value = [msgpack.ExtType(5, b"abc")]
    assert same(MsgpackCodec().decode(MsgpackCodec().encode(value)), value)


def test_json_is_compact_utf8_and_rejects_nonstandard_tokens() -> None:
    assert JsonCodec().encode({"é": [1, 2.5]}) == '{"é":[1,2.5]}'.encode()
    for token in (b"NaN", b"Infinity", b"-Infinity", b"[1e400]"):
        with pytest.raises(DecodeError):
            JsonCodec().decode(token)


def test_json_sort_keys_is_canonical() -> None:
    assert JsonCodec(sort_keys=True).encode({"b": 1, "a": 2}) == b'{"a":2,"b":1}'


@pytest.mark.parametrize("value", [2**31 - 1, -(2**31), "a\r\nb", "\t\n", -0.0, b"\x00\xff"])
def test_xmlrpc_edges_survive(value: Any) -> None:
    codec = XmlRpcCodec()
    assert same(codec.decode(codec.encode(value)), value)


def test_xmlrpc_refuses_what_it_could_not_send_back() -> None:
    i8 = (
        b"<methodResponse><params><param><value><i8>4294967296</i8></value>"
        b"</param></params></methodResponse>"
    )
    with pytest.raises(DecodeError, match="outside"):
        XmlRpcCodec().decode(i8)
    assert XmlRpcCodec(strict=False).decode(i8) == 2**32


def test_xmlrpc_refuses_calls_faults_and_dtds() -> None:
    import xmlrpc.client

    for wire in (
        xmlrpc.client.dumps((1,), methodname="f").encode(),
        xmlrpc.client.dumps(xmlrpc.client.Fault(1, "boom"), methodresponse=True).encode(),
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><methodResponse/>",
    ):
        with pytest.raises(DecodeError):
            XmlRpcCodec().decode(wire)


def test_lenient_mode_changes_silently_which_is_why_strict_is_default() -> None:
    lenient = JsonCodec(strict=False)
    assert lenient.decode(lenient.encode((1, 2))) == [1, 2]
    with pytest.raises(EncodeError):
        JsonCodec().encode((1, 2))


# -- registry ------------------------------------------------------------------------


def test_registry_lists_builtins() -> None:
    assert {"json", "msgpack", "xmlrpc", "protobuf", "protobuf-struct"} <= set(codec_names())


def test_unknown_codec() -> None:
    with pytest.raises(UnknownCodec, match="known: "):
        get_codec("no-such-codec")


def test_register_codec() -> None:
    class Upper(JsonCodec):
        name = "json-upper-test"

    register_codec("json-upper-test", Upper)
    assert isinstance(get_codec("json-upper-test", sort_keys=True), Upper)
    with pytest.raises(ValueError, match="already registered"):
        register_codec("json", Upper)
