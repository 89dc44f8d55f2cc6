"""The relay's HPACK decoder against ``hpack.Decoder``, RFC 7541 appendix C, and bad input.

``hpack`` (the h2 project's codec) is the independent reference: blocks its encoder writes,
with or without Huffman, never-indexed fields and table size changes, must decode to the
same header lists and leave the same dynamic table, block after block.
"""

from __future__ import annotations

from typing import cast

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlab.codecs.errors import DecodeError
from faultlab.codecs.framing.hpack_decode import HpackDecoder, HpackError, huffman_decode

MAX_TABLE = 8192


def _ref(decoder: hpack.Decoder, block: bytes) -> list[tuple[str, str]]:
    """hpack's answer as plain tuples (it returns str pairs, typed as bytes)."""
    return cast("list[tuple[str, str]]", [tuple(h) for h in decoder.decode(block)])


def _same_table(ours: HpackDecoder, ref: hpack.Decoder) -> None:
    assert [(n.encode(), v.encode()) for n, v in ours.dynamic_table] == list(
        ref.header_table.dynamic_entries
    )
    assert ours.table_size == ref.header_table._current_size
    assert ours.header_table_size == ref.header_table_size


# --- equivalence with hpack ------------------------------------------------------------

_COMMON_NAMES = [
    ":method",
    ":scheme",
    ":path",
    ":authority",
    ":status",
    "content-type",
    "grpc-timeout",
    "te",
    "user-agent",
    "cookie",
    "set-cookie",
    "www-authenticate",
]
names = st.sampled_from(_COMMON_NAMES) | st.from_regex(
    r"[a-z0-9!#$%&'*+.^_`|~-]{1,24}", fullmatch=True
)
values = st.sampled_from(
    ["", "GET", "POST", "http", "/", "200", "trailers", "gzip, deflate"]
) | st.text(max_size=60)
fields = st.tuples(names, values, st.booleans())
blocks = st.tuples(
    st.none() | st.integers(0, MAX_TABLE),  # encoder.header_table_size before the block
    st.booleans(),  # huffman
    st.lists(fields, max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(blocks, min_size=1, max_size=8))
def test_decodes_what_hpack_decodes_block_after_block(
    sequence: list[tuple[int | None, bool, list[tuple[str, str, bool]]]],
) -> None:
    encoder = hpack.Encoder()
    ref = hpack.Decoder()
    ours = HpackDecoder()
    ref.max_allowed_table_size = ours.max_allowed_table_size = MAX_TABLE
    for table_size, huffman, headers in sequence:
        if table_size is not None:
            encoder.header_table_size = table_size
        block = encoder.encode(headers, huffman=huffman)
        expected = _ref(ref, block)
        got = ours.decode(block)
        assert got == expected
        assert got == [(n, v) for n, v, _ in headers]
        _same_table(ours, ref)


@settings(max_examples=500, deadline=None)
@given(st.lists(fields, max_size=6), st.binary(max_size=48))
def test_arbitrary_bytes_fail_where_hpack_fails(
    headers: list[tuple[str, str, bool]], junk: bytes
) -> None:
    """After a valid block (some dynamic entries), random bytes decode the same or both fail."""
    encoder = hpack.Encoder()
    ref = hpack.Decoder()
    ours = HpackDecoder()
    first = encoder.encode(headers)
    assert ours.decode(first) == _ref(ref, first)
    try:
        expected = _ref(ref, junk)
    except hpack.HPACKError:
        with pytest.raises(HpackError):
            ours.decode(junk)
        return
    assert ours.decode(junk) == expected
    _same_table(ours, ref)


def test_accepts_bytearray_and_memoryview() -> None:
    block = hpack.Encoder().encode([(":method", "GET"), ("x-a", "é")])
    assert HpackDecoder().decode(bytearray(block)) == [(":method", "GET"), ("x-a", "é")]
    assert HpackDecoder().decode(memoryview(block)) == [(":method", "GET"), ("x-a", "é")]


def test_sizes_count_octets_not_characters() -> None:
    ours = HpackDecoder()
    ours.decode(hpack.Encoder().encode([("x", "ééé")]))  # 1 + 6 octets
    assert ours.table_size == 1 + 6 + 32


# --- RFC 7541 appendix C ---------------------------------------------------------------

_C3_LISTS = [
    [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")],
    [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        (":authority", "www.example.com"),
        ("cache-control", "no-cache"),
    ],
    [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        (":authority", "www.example.com"),
        ("custom-key", "custom-value"),
    ],
]
_C5_LISTS = [
    [
        (":status", "302"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ],
    [
        (":status", "307"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ],
    [
        (":status", "200"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:22 GMT"),
        ("location", "https://www.example.com"),
        ("content-encoding", "gzip"),
        ("set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"),
    ],
]
APPENDIX_C = {
    "C.3": (
        4096,
        [
            "828684410f7777772e6578616d706c652e636f6d",
            "828684be58086e6f2d6361636865",
            "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
        ],
        _C3_LISTS,
        [57, 110, 164],
    ),
    "C.4": (
        4096,
        [
            "828684418cf1e3c2e5f23a6ba0ab90f4ff",
            "828684be5886a8eb10649cbf",
            "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
        ],
        _C3_LISTS,
        [57, 110, 164],
    ),
    "C.5": (
        256,
        [
            "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a3231"
            "20474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
            "4803333037c1c0bf",
            "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a6970"
            "7738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d61"
            "67653d333630303b2076657273696f6e3d31",
        ],
        _C5_LISTS,
        [222, 222, 215],
    ),
    "C.6": (
        256,
        [
            "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad"
            "171863c78f0b97c8e9ae82ae43d3",
            "4883640effc1c0bf",
            "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2"
            "e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
        ],
        _C5_LISTS,
        [222, 222, 215],
    ),
}


@pytest.mark.parametrize(
    ("hex_block", "expected", "table_size"),
    [
        (
            "400a637573746f6d2d6b65790d637573746f6d2d686561646572",
            [("custom-key", "custom-header")],
            55,
        ),
        ("040c2f73616d706c652f70617468", [(":path", "/sample/path")], 0),
        ("100870617373776f726406736563726574", [("password", "secret")], 0),
        ("82", [(":method", "GET")], 0),
    ],
    ids=["C.2.1", "C.2.2", "C.2.3", "C.2.4"],
)
def test_appendix_c2(hex_block: str, expected: list[tuple[str, str]], table_size: int) -> None:
    ours = HpackDecoder()
    assert ours.decode(bytes.fromhex(hex_block)) == expected
    assert ours.table_size == table_size


@pytest.mark.parametrize("example", sorted(APPENDIX_C))
def test_appendix_c3_to_c6(example: str) -> None:
    max_size, hex_blocks, lists, sizes = APPENDIX_C[example]
    ours = HpackDecoder()
    ours.header_table_size = ours.max_allowed_table_size = max_size
    ref = hpack.Decoder()
    ref.header_table_size = ref.max_allowed_table_size = max_size
    for hex_block, expected, size in zip(hex_blocks, lists, sizes, strict=True):
        block = bytes.fromhex(hex_block)
        assert ours.decode(block) == expected
        assert _ref(ref, block) == expected  # the vectors are right
        assert ours.table_size == size
        _same_table(ours, ref)


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"\x80", "index 0"),
        (b"\xbe", "index 62 is beyond the table"),
        (b"\xff\x80\x01", "index 255 is beyond the table"),
        (b"\x7e\x01a", "name index 62 is beyond the table"),
        (b"\x3f\xe2\x1f", "size update to 4097 is above the allowed 4096"),
        (b"\x82\x20", "size update after a header field"),
        (b"\xff", "truncated integer"),
        (b"\xff\x80", "truncated integer"),
        (b"\xff\xff\xff\xff\xff\xff\x7f", "larger than 2**32"),
        (b"\xff" + b"\x80" * 11 + b"\x00", "continuation octets"),
        (b"\x00", "truncated string"),
        (b"\x04", "truncated string"),
        (b"\x40\x05ab", "5 octets is truncated"),
        (b"\x00\x7f\x80", "truncated integer"),
        (b"\x00\x01a\x81\x18", "not all ones"),  # 'a' (00011) + 000 padding
        (b"\x00\x01a\x82\x1f\xff", "longer than 7 bits"),  # 'a' + 11 one bits
        (b"\x00\x01a\x84\xff\xff\xff\xff", "EOS"),
        (b"\x00\x01a\x01\xff", "not UTF-8"),
    ],
)
def test_bad_blocks_raise_typed_errors(block: bytes, message: str) -> None:
    with pytest.raises(HpackError, match=message.replace("*", r"\*")) as info:
        HpackDecoder().decode(block)
    assert isinstance(info.value, DecodeError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(hpack.HPACKError):  # hpack agrees these are invalid
        hpack.Decoder().decode(block)


def test_header_list_bound_stops_an_hpack_bomb() -> None:
    ours = HpackDecoder(max_header_list_size=65536)
    ours.decode(hpack.Encoder().encode([("x-big", "a" * 4000)]))
    with pytest.raises(HpackError, match="header list larger than 65536"):
        ours.decode(b"\xbe" * 100_000)  # 100,000 references to a 4 KB entry


def test_header_list_bound_counts_every_field() -> None:
    ours = HpackDecoder(max_header_list_size=100)
    assert ours.decode(b"\x82\x86") == [(":method", "GET"), (":scheme", "http")]  # 42 + 43
    with pytest.raises(HpackError, match="larger than 100"):
        ours.decode(b"\x82\x86\x84")


def test_table_must_shrink_when_the_allowed_size_drops() -> None:
    ours = HpackDecoder()
    ours.max_allowed_table_size = 100
    with pytest.raises(HpackError, match="not shrunk"):
        ours.decode(b"\x82")
    ours = HpackDecoder()
    ours.max_allowed_table_size = 100
    assert ours.decode(b"\x3f\x45\x82") == [(":method", "GET")]  # size update to 100
    assert ours.header_table_size == 100


def test_size_updates_evict_and_entries_larger_than_the_table_empty_it() -> None:
    ours = HpackDecoder()
    ours.decode(hpack.Encoder().encode([("a", "1"), ("b", "2")]))
    assert ours.dynamic_table == [("b", "2"), ("a", "1")]
    ours.decode(b"\x3f\x03")  # size update to 34: only the newest fits
    assert ours.dynamic_table == [("b", "2")]
    assert ours.table_size == 34
    ours.decode(b"\x20")  # size update to 0
    assert ours.dynamic_table == []
    ours.decode(b"\x3f\xe1\x1f")  # size update to 4096
    ours.decode(b"\x40\x01x" + b"\x7f\x81\x1f" + b"y" * 4096)  # a 4129-octet entry
    assert ours.dynamic_table == []
    assert ours.table_size == 0


def test_huffman_round_trip_of_every_octet() -> None:
    raw = bytes(range(256)) * 2
    encoded = hpack.huffman.HuffmanEncoder(
        hpack.huffman_constants.REQUEST_CODES, hpack.huffman_constants.REQUEST_CODES_LENGTH
    ).encode(raw)
    assert huffman_decode(encoded) == raw
    assert huffman_decode(b"") == b""
