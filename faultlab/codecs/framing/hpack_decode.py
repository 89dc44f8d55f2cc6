"""A fast RFC 7541 HPACK decoder for the HTTP/2 relay (decoding only).

Why not ``hpack.Decoder``: the relay decodes every header block it forwards, in order, and
hpack's pure-Python decoder (a memoryview slice, a ``HeaderTuple``, a ``log.debug`` call
and a UTF-8 decode per field, a nibble-at-a-time Huffman walk) was the largest single
cost of reading a gRPC call. This module decodes the same blocks to the same header lists
(a Hypothesis test checks it against ``hpack.Decoder`` block after block) with less work
per field:

- the static and dynamic tables live in one list (index 0 unused, 1-61 static, then the
  dynamic entries newest first), so an indexed field is one bounds check and one
  subscript; each entry is ``((name, value), size, name_octets)`` so the decoder appends
  the shared pair without building a tuple, and sizes are counted in octets of the
  encoded strings as RFC 7541 section 4.1 says (not in characters of the decoded text);
- a string literal (its H bit, length prefix and bytes) is decoded once: a bounded
  module-level cache maps those bytes to ``(text, octets)``, shared by all connections
  since the mapping is pure (method paths, content types and user agents repeat);
- Huffman strings are decoded a byte at a time by a state machine whose 65,536
  transitions are composed once (on first use: ~20 ms, ~2 MB) from the canonical code in
  ``hpack.huffman_constants``; padding longer than 7 bits, padding that is not all ones,
  and EOS inside a string are errors (RFC 7541 section 5.2).

Integers are refused above 2**32 or after 10 continuation octets, so no block can make
the decoder loop or build huge numbers; the header list size (``len(name) + len(value) +
32`` per field, octets) is checked after every field, so an HPACK bomb (one large entry
indexed many times) stops at ``max_header_list_size`` and allocates only list slots.

Measured (CPython 3.11, 2-vCPU shared VM, best of 5 x 20,000 blocks; three runs)::

    .venv/bin/python -m faultlab.codecs.framing.hpack_decode

    (a) fully indexed 10-field gRPC request block (10 bytes, static + dynamic indexes):
        hpack.Decoder 19.3-20.9 us   HpackDecoder 1.6-1.7 us   12.3-12.7x
    (b) the same fields, grpc-timeout a new Huffman literal with incremental indexing
        each call (its name indexed from the dynamic table, its value evicting entries):
        hpack.Decoder 22.7-24.2 us   HpackDecoder 3.6-3.9 us   5.9-6.5x

(b) clears the string cache before each run, so every grpc-timeout is a cache miss.
"""

from __future__ import annotations

from typing import Final

from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

from faultlab.codecs.errors import DecodeError

__all__ = [
    "DEFAULT_MAX_HEADER_LIST_SIZE",
    "DEFAULT_TABLE_SIZE",
    "HpackDecoder",
    "HpackError",
    "huffman_decode",
    "warm",
]

DEFAULT_TABLE_SIZE: Final = 4096
"""SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 7540 section 6.5.2)."""
DEFAULT_MAX_HEADER_LIST_SIZE: Final = 1 << 16
"""hpack's default bound on a decoded header list (64 KiB, counted as RFC 7541 does)."""

_MAX_INT: Final = 1 << 32
"""Larger integers are refused: no valid index, length or size comes near it."""
_MAX_CONTINUATION: Final = 10
"""Continuation octets an integer may use (5 suffice below 2**32; allow some zero padding)."""
_CACHE_MAX: Final = 2048
"""Distinct string literals kept decoded; the cache starts over past it."""
_CACHE_KEY_MAX: Final = 256
"""Longer literals (prefix included) are decoded every time, keeping the cache small."""
_STATIC_COUNT: Final = 61


class HpackError(DecodeError):
    """The header block is not valid HPACK (an HTTP/2 COMPRESSION_ERROR).

    A :class:`~faultlab.codecs.errors.DecodeError`, hence a ``ValueError`` and a
    ``RemoteProtocolError``: the peer sent it. After one, the decoder's dynamic table is
    no longer in step with the encoder's and the connection must end.
    """


Entry = tuple[tuple[str, str], int, int]
"""``((name, value), name_octets + value_octets + 32, name_octets)``."""


def _static_entries() -> list[Entry]:
    entries: list[Entry] = []
    for name, value in HeaderTable.STATIC_TABLE:
        pair = (name.decode("ascii"), value.decode("ascii"))
        entries.append((pair, len(name) + len(value) + 32, len(name)))
    return entries


_STATIC: Final = _static_entries()
assert len(_STATIC) == _STATIC_COUNT

# --- Huffman (RFC 7541 appendix B) -------------------------------------------------------

_EOS: Final = 256


def _huffman_tree() -> list[list[int]]:
    """The code tree: ``tree[node] = [child0, child1]``; a child >= 0 is an internal node,
    ``~symbol`` a leaf. There are 257 leaves, hence 256 internal nodes (node 0 the root)."""
    tree = [[0, 0]]
    for symbol, (code, length) in enumerate(zip(REQUEST_CODES, REQUEST_CODES_LENGTH, strict=True)):
        node = 0
        for shift in range(length - 1, 0, -1):
            bit = (code >> shift) & 1
            nxt = tree[node][bit]
            if nxt == 0:
                tree.append([0, 0])
                nxt = len(tree) - 1
                tree[node][bit] = nxt
            node = nxt
        tree[node][code & 1] = ~symbol
    return tree


_TREE: Final = _huffman_tree()
assert len(_TREE) == 256


def _accepting() -> list[bool]:
    """States where a string may end: at most 7 bits into a code, all of them ones (the
    most significant bits of EOS). Any other state means bad padding (section 5.2)."""
    accept = [False] * 256
    node = 0
    accept[0] = True
    for _ in range(7):
        node = _TREE[node][1]
        accept[node] = True
    return accept


_ACCEPT: Final = _accepting()

_Step = tuple[int, bytes] | None
"""A nibble transition: ``(next state, emitted octets)``, or None: EOS was decoded."""
_NEXT: list[int] = []
"""``_NEXT[state << 8 | octet]``: the next state, shifted left by 8 (the next row)."""
_EMIT: list[bytes | None] = []
"""``_EMIT[state << 8 | octet]``: the octets that input decodes to, None if it hits EOS.

Two lists rather than one of ``(next, emitted)`` tuples: 65,536 tuples cost ~7 MB, these
~2 MB (256 shared ints, and emitted strings interned; 0- and 1-octet bytes are shared by
CPython anyway), and decoding is as fast."""


def _walk(state: int, bits: int, count: int) -> _Step:
    out = bytearray()
    for shift in range(count - 1, -1, -1):
        child = _TREE[state][(bits >> shift) & 1]
        if child < 0:
            if ~child == _EOS:
                return None
            out.append(~child)
            state = 0
        else:
            state = child
    return state, bytes(out)


def _byte_tables() -> tuple[list[int], list[bytes | None]]:
    """Compose the 256 x 16 nibble transitions into 256 x 256 octet transitions: two
    subscripts per input octet when decoding. Built once, on first use (~20 ms), so that
    importing the relay stays cheap."""
    if _NEXT:
        return _NEXT, _EMIT
    nibble = [_walk(state, value, 4) for state in range(256) for value in range(16)]
    rows = [state << 8 for state in range(256)]
    interned: dict[bytes, bytes] = {}
    nexts: list[int] = []
    emits: list[bytes | None] = []
    for state in range(256):
        for high in range(16):
            first = nibble[state << 4 | high]
            if first is None:
                nexts.extend([0] * 16)
                emits.extend([None] * 16)
                continue
            mid, out = first
            for second in nibble[mid << 4 : (mid << 4) + 16]:
                if second is None:
                    nexts.append(0)
                    emits.append(None)
                else:
                    nexts.append(rows[second[0]])
                    both = out + second[1]
                    emits.append(interned.setdefault(both, both))
    _EMIT[:] = emits
    _NEXT[:] = nexts  # last: a non-empty _NEXT means both are ready
    return _NEXT, _EMIT


def warm() -> None:
    """Build the Huffman tables now (a proxy that will read HTTP/2 calls this when it is
    created, so that no call is the one that pays ~20 ms for them)."""
    _byte_tables()


def huffman_decode(raw: bytes) -> bytes:
    """Decode a Huffman-coded string literal's octets (RFC 7541 section 5.2)."""
    nexts, emits = _byte_tables() if not _NEXT else (_NEXT, _EMIT)
    state = 0
    out = bytearray()
    for octet in raw:
        index = state | octet
        emitted = emits[index]
        if emitted is None:
            raise HpackError("Huffman string contains EOS")
        out += emitted
        state = nexts[index]
    if not _ACCEPT[state >> 8]:
        raise HpackError("Huffman string padding is longer than 7 bits or not all ones")
    return bytes(out)


# --- decoding ----------------------------------------------------------------------------

_CACHE: dict[bytes, tuple[str, int]] = {}
"""Encoded string literal (H bit, length, octets) -> (text, octets). Pure, so shared."""


def _integer(data: bytes, pos: int, value: int, what: str) -> tuple[int, int]:
    """Finish an integer whose prefix was all ones (``value`` = the prefix's maximum);
    ``pos`` is the first continuation octet. Returns ``(integer, next position)``."""
    shift = 0
    end = len(data)
    for _ in range(_MAX_CONTINUATION):
        if pos >= end:
            raise HpackError(f"{what}: truncated integer")
        octet = data[pos]
        pos += 1
        value += (octet & 0x7F) << shift
        if value > _MAX_INT:
            raise HpackError(f"{what}: integer larger than 2**32")
        if octet < 0x80:
            return value, pos
        shift += 7
    raise HpackError(f"{what}: integer longer than {_MAX_CONTINUATION} continuation octets")


def _string(data: bytes, pos: int, what: str) -> tuple[str, int, int]:
    """Decode the string literal at ``pos``: ``(text, octets, next position)``."""
    end = len(data)
    if pos >= end:
        raise HpackError(f"{what}: truncated string")
    first = data[pos]
    length = first & 0x7F
    start = pos + 1
    if length == 0x7F:
        length, start = _integer(data, start, 0x7F, what)
    stop = start + length
    if stop > end:
        raise HpackError(f"{what}: string of {length} octets is truncated")
    key = data[pos:stop]
    hit = _CACHE.get(key)
    if hit is not None:
        return hit[0], hit[1], stop
    raw = data[start:stop]
    if first & 0x80:
        raw = huffman_decode(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HpackError(f"{what}: string is not UTF-8") from None
    if stop - pos <= _CACHE_KEY_MAX:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()  # O(1) amortized; FIFO via next(iter()) scans deleted slots
        _CACHE[key] = (text, len(raw))
    return text, len(raw), stop


class HpackDecoder:
    """One direction's HPACK decoding context (RFC 7541): the dynamic table and limits.

    ``max_allowed_table_size``: the largest dynamic table size the encoder may set (the
    SETTINGS_HEADER_TABLE_SIZE we advertised); a size update above it, or a block that
    ends with the table still above it, is an error. ``max_header_list_size``: the bound
    on a decoded block's size (``len(name) + len(value) + 32`` octets per field).
    """

    __slots__ = ("_size", "_table", "_table_max", "max_allowed_table_size", "max_header_list_size")

    def __init__(self, max_header_list_size: int = DEFAULT_MAX_HEADER_LIST_SIZE) -> None:
        self.max_header_list_size = max_header_list_size
        self.max_allowed_table_size = DEFAULT_TABLE_SIZE
        self._table_max = DEFAULT_TABLE_SIZE
        self._size = 0
        self._table: list[Entry] = [(("", ""), 0, 0), *_STATIC]
        """Index 0 is a placeholder (refused), 1-61 static, 62+ dynamic, newest first."""

    @property
    def header_table_size(self) -> int:
        """The dynamic table's current maximum size (the last size update's)."""
        return self._table_max

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self._table_max = value
        self._evict()

    @property
    def table_size(self) -> int:
        """The dynamic table's current size (section 4.1), for tests and diagnostics."""
        return self._size

    @property
    def dynamic_table(self) -> list[tuple[str, str]]:
        """The dynamic entries, newest first (index 62 first)."""
        return [entry[0] for entry in self._table[_STATIC_COUNT + 1 :]]

    def _evict(self) -> None:
        table = self._table
        while self._size > self._table_max:
            self._size -= table.pop()[1]

    def _add(self, pair: tuple[str, str], size: int, name_octets: int) -> None:
        """Section 4.4: evict from the oldest until the new entry fits; an entry larger
        than the whole table empties it and is not added."""
        table = self._table
        if size > self._table_max:
            del table[_STATIC_COUNT + 1 :]
            self._size = 0
            return
        table.insert(_STATIC_COUNT + 1, (pair, size, name_octets))
        self._size += size
        limit = self._table_max
        while self._size > limit:
            self._size -= table.pop()[1]

    def decode(self, data: bytes | bytearray | memoryview) -> list[tuple[str, str]]:
        """Decode one complete header block; the dynamic table carries to the next."""
        if not isinstance(data, bytes):
            data = bytes(data)
        table = self._table
        out: list[tuple[str, str]] = []
        append = out.append
        listed = 0
        limit = self.max_header_list_size
        pos = 0
        end = len(data)
        while pos < end:
            octet = data[pos]
            pos += 1
            if octet & 0x80:  # indexed field (section 6.1)
                index = octet & 0x7F
                if index == 0x7F:
                    index, pos = _integer(data, pos, 0x7F, "indexed field")
                elif index == 0:
                    raise HpackError("indexed field with index 0")
                if index >= len(table):
                    raise HpackError(
                        f"indexed field: index {index} is beyond the table of {len(table) - 1}"
                    )
                entry = table[index]
                append(entry[0])
                listed += entry[1]
                if listed > limit:
                    raise HpackError(f"header list larger than {limit} octets")
                continue
            if octet & 0x40:  # literal with incremental indexing (section 6.2.1)
                index = octet & 0x3F
                if index == 0x3F:
                    index, pos = _integer(data, pos, 0x3F, "literal with incremental indexing")
                what = "literal with incremental indexing"
                index_it = True
            elif octet & 0x20:  # dynamic table size update (section 6.3)
                if out:
                    raise HpackError("dynamic table size update after a header field")
                size = octet & 0x1F
                if size == 0x1F:
                    size, pos = _integer(data, pos, 0x1F, "dynamic table size update")
                if size > self.max_allowed_table_size:
                    raise HpackError(
                        f"dynamic table size update to {size} is above the allowed "
                        f"{self.max_allowed_table_size}"
                    )
                self._table_max = size
                self._evict()
                continue
            else:  # literal without indexing / never indexed (sections 6.2.2, 6.2.3)
                what = "never-indexed literal" if octet & 0x10 else "literal without indexing"
                index = octet & 0x0F
                if index == 0x0F:
                    index, pos = _integer(data, pos, 0x0F, what)
                index_it = False
            if index:
                if index >= len(table):
                    raise HpackError(
                        f"{what}: name index {index} is beyond the table of {len(table) - 1}"
                    )
                name_entry = table[index]
                name = name_entry[0][0]
                name_octets = name_entry[2]
            else:
                name, name_octets, pos = _string(data, pos, what)
            value, value_octets, pos = _string(data, pos, what)
            pair = (name, value)
            size = name_octets + value_octets + 32
            append(pair)
            listed += size
            if listed > limit:
                raise HpackError(f"header list larger than {limit} octets")
            if index_it:
                self._add(pair, size, name_octets)
        if self._table_max > self.max_allowed_table_size:
            raise HpackError(
                f"the dynamic table ({self._table_max}) was not shrunk to the allowed "
                f"{self.max_allowed_table_size}"
            )
        return out


def _bench() -> None:  # pragma: no cover - a measurement, run by hand
    """Time both decoders on a gRPC request block; see the module docstring."""
    import timeit

    import hpack

    request = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/faultlab.bench.Echo/Unary"),
        (":authority", "127.0.0.1:50051"),
        ("content-type", "application/grpc"),
        ("user-agent", "grpc-python/1.66.0 grpc-c/43.0.0 (linux; chttp2)"),
        ("te", "trailers"),
        ("grpc-accept-encoding", "identity,deflate,gzip"),
        ("accept-encoding", "identity,gzip"),
        ("grpc-timeout", "4999881u"),
    ]
    encoder = hpack.Encoder()
    encoder.encode(request)
    indexed = encoder.encode(request)
    print(f"(a) block of {len(indexed)} bytes: {indexed.hex()}")

    def fresh(count: int) -> list[bytes]:
        enc = hpack.Encoder()
        enc.encode(request)
        return [
            enc.encode([*request[:-1], ("grpc-timeout", f"{4999000 - i}u")]) for i in range(count)
        ]

    def run(label: str, make: object, blocks: list[bytes]) -> float:
        best = float("inf")
        for _ in range(5):
            _CACHE.clear()  # every literal of `blocks` is new to a connection's decoder
            dec = make()  # type: ignore[operator]
            dec.decode(hpack.Encoder().encode(request))  # fills the table as `blocks` expect
            start = timeit.default_timer()
            for block in blocks:
                dec.decode(block)
            best = min(best, (timeit.default_timer() - start) / len(blocks))
        print(f"    {label:15} {best * 1e6:6.1f} us")
        return best

    for title, blocks in (
        ("(a) fully indexed", [indexed] * 20000),
        ("(b) new Huffman literal", fresh(20000)),
    ):
        print(title)
        old = run("hpack.Decoder", hpack.Decoder, blocks)
        new = run("HpackDecoder", HpackDecoder, blocks)
        print(f"    speedup {old / new:.1f}x")


if __name__ == "__main__":  # pragma: no cover
    _bench()
