"""HTTP/2 frames for a relay that reads both directions (sans-IO, no sockets).

Why not ``h2.H2Connection``: that is an endpoint. A proxy built from two of them terminates
HTTP/2 on each side (Envoy's design), re-encodes every frame and owns flow control, which
costs several times a byte relay's latency and changes what the client and server see. A
relay forwards the peers' own frames unchanged and reads them on the side: it needs only
h2's frame layout, an HPACK decoder (:mod:`faultlab.codecs.framing.hpack_decode`, checked
against the ``hpack`` package and 6-12x faster) and ``hpack``'s encoder for the relay's own
header blocks, and it intervenes only where a fault asks it to
(:mod:`faultlab.proxy.h2relay`).

:class:`H2Splitter` cuts one direction into :class:`H2Unit` s: the client preface, each
frame, and each header block (HEADERS or PUSH_PROMISE with its CONTINUATION frames) as one
unit, decoded with the direction's HPACK state, so every block must pass through it in
order. :class:`FrameBoundary` follows bytes written to a peer so the relay knows when it may
put a frame of its own between the peers' frames. :class:`GrpcMessageCounter` counts gRPC
length-prefixed messages inside a stream's DATA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

import hpack

from faultlab.codecs.errors import MalformedFrame, TruncatedFrame
from faultlab.codecs.framing.base import CLOSED, NEED_DATA, FrameEvent, Framer
from faultlab.codecs.framing.hpack_decode import HpackDecoder, HpackError
from faultlab.errors import LocalProtocolError

__all__ = [
    "CONTINUATION",
    "DATA",
    "GOAWAY",
    "HEADERS",
    "MAX_BLOCK",
    "MIN_MAX_FRAME",
    "PING",
    "PREFACE",
    "PRIORITY",
    "PUSH_PROMISE",
    "RST_STREAM",
    "SETTINGS",
    "WINDOW_UPDATE",
    "FrameBoundary",
    "GrpcMessageCounter",
    "H2Splitter",
    "H2Unit",
    "encode_frame",
    "error_code",
    "goaway_frame",
    "grpc_timeout_seconds",
    "header_block_frames",
    "injected_headers",
    "rst_stream_frame",
    "window_update_frame",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_STREAM = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
PREFACE_UNIT = -1
"""The :attr:`H2Unit.type` of the client's connection preface."""
MIN_MAX_FRAME = 16_384
"""SETTINGS_MAX_FRAME_SIZE's floor: a frame this size every peer accepts."""
MAX_FRAME_LIMIT = (1 << 24) - 1
_BLOCK_TYPES = frozenset((1, 5, 9))
"""HEADERS, PUSH_PROMISE, CONTINUATION: frames of a header block."""
MAX_BLOCK = 1024 * 1024
"""Bytes one header block may take on the wire (HEADERS plus CONTINUATIONs)."""
MAX_HEADER_LIST = 4 * 1024 * 1024
"""Decoded size of one header block past which it is refused (an HPACK bomb)."""
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_MAX_FRAME_SIZE = 0x5
_ERROR_CODES = {
    "NO_ERROR": 0x0,
    "PROTOCOL_ERROR": 0x1,
    "INTERNAL_ERROR": 0x2,
    "FLOW_CONTROL_ERROR": 0x3,
    "SETTINGS_TIMEOUT": 0x4,
    "STREAM_CLOSED": 0x5,
    "FRAME_SIZE_ERROR": 0x6,
    "REFUSED_STREAM": 0x7,
    "CANCEL": 0x8,
    "COMPRESSION_ERROR": 0x9,
    "CONNECT_ERROR": 0xA,
    "ENHANCE_YOUR_CALM": 0xB,
    "INADEQUATE_SECURITY": 0xC,
    "HTTP_1_1_REQUIRED": 0xD,
}
ERROR_NAMES = {code: name for name, code in _ERROR_CODES.items()}
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def error_code(value: str | int) -> int:
    """An HTTP/2 error code from its name (``CANCEL``, case-insensitive) or number."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 0xFFFFFFFF:
            return value
        raise ValueError(f"an HTTP/2 error code is from 0 to 2**32-1, got {value}")
    text = str(value).strip()
    if text.isdigit():
        return error_code(int(text))
    code = _ERROR_CODES.get(text.upper())
    if code is None:
        raise ValueError(
            f"unknown HTTP/2 error code {text!r}: use a number or one of " + ", ".join(_ERROR_CODES)
        )
    return code


@dataclass(slots=True, eq=False)
class H2Unit:
    """One frame, or one whole header block, as it travelled."""

    type: int
    flags: int
    stream: int
    raw: bytes
    """The exact wire bytes (every frame of a header block)."""
    block: int = -1
    """The header block's ordinal in its direction (-1: not a header block)."""
    headers: list[tuple[str, str]] | None = None
    """A header block decoded (pseudo-headers first, as sent)."""
    priority: bytes = b""
    """A HEADERS frame's priority fields (kept when the block is re-encoded)."""
    data: bytes = b""
    """DATA: the data without padding; other frames: the payload."""
    flow: int = 0
    """DATA: bytes it takes from the flow-control windows (payload with padding)."""
    injected: bool = False

    @property
    def end_stream(self) -> bool:
        return bool(self.flags & END_STREAM) and self.type in (DATA, HEADERS)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case) in this block."""
        for key, value in self.headers or ():
            if key == name:
                return value
        return None


def encode_frame(type_: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    if size > MAX_FRAME_LIMIT:
        raise LocalProtocolError(f"an HTTP/2 frame holds at most {MAX_FRAME_LIMIT} bytes")
    return (
        size.to_bytes(3, "big")
        + bytes((type_, flags))
        + (stream & 0x7FFFFFFF).to_bytes(4, "big")
        + payload
    )


def window_update_frame(stream: int, increment: int) -> bytes:
    return encode_frame(WINDOW_UPDATE, 0, stream, (increment & 0x7FFFFFFF).to_bytes(4, "big"))


def rst_stream_frame(stream: int, code: int) -> bytes:
    return encode_frame(RST_STREAM, 0, stream, code.to_bytes(4, "big"))


def goaway_frame(last_stream: int, code: int, debug: bytes = b"") -> bytes:
    payload = (last_stream & 0x7FFFFFFF).to_bytes(4, "big") + code.to_bytes(4, "big") + debug
    return encode_frame(GOAWAY, 0, 0, payload)


def header_block_frames(
    stream: int,
    block: bytes,
    *,
    end_stream: bool,
    priority: bytes = b"",
    max_frame: int = MIN_MAX_FRAME,
) -> bytes:
    """A header block as HEADERS (+ CONTINUATION) frames no larger than ``max_frame``."""
    flags = (END_STREAM if end_stream else 0) | (PRIORITY_FLAG if priority else 0)
    room = max_frame - len(priority)
    first, rest = block[:room], block[room:]
    if not rest:
        return encode_frame(HEADERS, flags | END_HEADERS, stream, priority + first)
    out = [encode_frame(HEADERS, flags, stream, priority + first)]
    while rest:
        piece, rest = rest[:max_frame], rest[max_frame:]
        out.append(encode_frame(CONTINUATION, 0 if rest else END_HEADERS, stream, piece))
    return b"".join(out)


def injected_headers(
    stream: int, headers: list[tuple[str, str]], *, end_stream: bool = True
) -> bytes:
    """A header block the relay adds to a direction without touching the receiver's HPACK
    state: every field is a never-indexed literal (or a static-table reference), so the
    dynamic table the peers share stays exactly as their own frames left it."""
    encoder = hpack.Encoder()
    block = encoder.encode([(k, v, True) for k, v in headers], huffman=False)
    return header_block_frames(stream, block, end_stream=end_stream)


def grpc_message_text(message: str) -> str:
    """``grpc-message`` is percent-encoded UTF-8 (the gRPC over HTTP/2 spec)."""
    return quote(
        message,
        safe=" !\"#$&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        "[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
    )


def grpc_timeout_seconds(text: str | None) -> float | None:
    """``grpc-timeout`` (at most 8 digits and a unit H M S m u n) in seconds, else ``None``."""
    if not text or len(text) < 2 or len(text) > 9:
        return None
    digits, unit = text[:-1], text[-1]
    if not (digits.isascii() and digits.isdigit()) or unit not in _TIMEOUT_UNITS:
        return None
    return int(digits) * _TIMEOUT_UNITS[unit]


class H2Splitter(Framer[Any]):
    """One direction of an HTTP/2 connection cut into :class:`H2Unit` s.

    ``client_side``: the bytes a client sends (they begin with the preface). Every header
    block is decoded here, in order, with this direction's HPACK state: a relay must feed
    every byte the sender sends, whatever it then forwards. Bad framing (a wrong preface,
    a CONTINUATION out of place, an HPACK error, an oversize block) raises
    :class:`MalformedFrame`: the peers would end the connection for it too.
    """

    name: ClassVar[str] = "h2"

    def __init__(self, *, client_side: bool = True, max_block: int = MAX_BLOCK) -> None:
        super().__init__()
        self._buf: bytes | bytearray = b""
        """What is buffered from ``_pos`` on: the read itself while it is the only one (most
        reads hold whole frames: each frame is then one slice of it), else a bytearray."""
        self._pos = 0
        self._want_preface = client_side
        self.max_block = max_block
        self._decoder = HpackDecoder(max_header_list_size=MAX_HEADER_LIST)
        self._blocks = 0
        self._open: list[bytes] = []
        """Frames of a header block still waiting for END_HEADERS."""
        self._open_head: tuple[int, int, int] = (0, 0, 0)

    def _receive(self, data: bytes) -> None:
        buf = self._buf
        if self._pos == len(buf):
            self._buf = data  # nothing held: no copy
            self._pos = 0
        elif isinstance(buf, bytes):
            self._buf = bytearray(buf[self._pos :]) + data
            self._pos = 0
        else:
            buf += data

    def receive_late(self, data: bytes) -> None:
        """Bytes that arrived before an EOF already given (a relay reads what it forwarded
        later than it received it): buffered as if they came before it."""
        if data and self._rejected is None:
            self._receive(data)

    def frame(self, payload: bytes) -> bytes:
        return payload  # units carry their wire bytes

    def allow_table_size(self, size: int) -> None:
        """The receiver advertised SETTINGS_HEADER_TABLE_SIZE ``size``: the sender may use
        up to it (be lenient: the largest seen, the peers enforce the rest)."""
        if size > self._decoder.max_allowed_table_size:
            self._decoder.max_allowed_table_size = min(size, 1 << 24)

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    @property
    def held(self) -> int:
        """Bytes received and not yet returned in a unit (a partial frame or block)."""
        return self.buffered + sum(len(f) for f in self._open) if self._open else self.buffered

    def held_bytes(self) -> tuple[bytes, bool]:
        """What :attr:`held` counts, in order, and whether it is (part of) the preface."""
        return b"".join(self._open) + bytes(self._buf[self._pos :]), self._want_preface

    def _next(self) -> H2Unit | FrameEvent:
        buf, pos = self._buf, self._pos
        end = len(buf)
        while True:
            avail = end - pos
            if self._want_preface:
                if avail < len(PREFACE):
                    if buf[pos:] != PREFACE[:avail]:
                        raise MalformedFrame("h2: the connection does not start with the preface")
                    return self._need()
                if bytes(buf[pos : pos + len(PREFACE)]) != PREFACE:
                    raise MalformedFrame("h2: the connection does not start with the preface")
                self._want_preface = False
                self._consume(len(PREFACE))
                return H2Unit(PREFACE_UNIT, 0, 0, PREFACE)
            if avail < 9:
                return self._need()
            stop = pos + 9 + (buf[pos] << 16 | buf[pos + 1] << 8 | buf[pos + 2])
            if stop > end:
                if self._eof:
                    raise TruncatedFrame(f"h2: EOF inside a frame ({avail} of {stop - pos} bytes)")
                return NEED_DATA
            type_, flags = buf[pos + 3], buf[pos + 4]
            stream = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            raw = buf[pos:stop]
            if type(raw) is not bytes:
                raw = bytes(raw)
            # consume (inline: once per frame)
            if stop == end:
                self._buf = buf = b""
                self._pos = pos = end = 0
            elif stop > 65536 and type(buf) is bytearray:
                del buf[:stop]
                self._pos = pos = 0
                end = len(buf)
            else:
                self._pos = pos = stop
            if self._open or type_ in _BLOCK_TYPES:
                unit = self._unit(type_, flags, stream, raw)
                if unit is not None:
                    return unit
                continue
            if type_ == DATA:
                data = raw[9:]
                flow = len(data)
                if flags & PADDED:
                    if not data or data[0] >= flow:
                        raise MalformedFrame("h2: DATA padding longer than the frame")
                    data = data[1 : flow - data[0]]
                return H2Unit(DATA, flags, stream, raw, -1, None, b"", data, flow)
            return H2Unit(type_, flags, stream, raw, -1, None, b"", raw[9:])

    def _need(self) -> FrameEvent:
        if self._eof:
            if self.buffered == 0 and not self._open:
                return CLOSED
            raise TruncatedFrame("h2: EOF inside a frame")
        return NEED_DATA

    def _consume(self, size: int) -> None:
        self._pos += size
        if self._pos == len(self._buf):
            self._buf = b""
            self._pos = 0
        elif self._pos > 65536 and isinstance(self._buf, bytearray):
            del self._buf[: self._pos]
            self._pos = 0

    def _unit(self, type_: int, flags: int, stream: int, raw: bytes) -> H2Unit | None:
        """A frame of a header block (or one that breaks it off)."""
        if self._open:
            if type_ != CONTINUATION or stream != self._open_head[2]:
                raise MalformedFrame("h2: a header block was interrupted by another frame")
            self._open.append(raw)
            if sum(len(r) for r in self._open) > self.max_block:
                raise MalformedFrame(f"h2: a header block is larger than {self.max_block} bytes")
            if flags & END_HEADERS:
                return self._close_block()
            return None
        if type_ == CONTINUATION:
            raise MalformedFrame("h2: CONTINUATION without a header block")
        if not stream:
            raise MalformedFrame("h2: a header block on stream 0")
        self._open = [raw]
        self._open_head = (type_, flags, stream)
        if len(raw) > self.max_block:
            raise MalformedFrame(f"h2: a header block is larger than {self.max_block} bytes")
        if flags & END_HEADERS:
            return self._close_block()
        return None

    def _close_block(self) -> H2Unit:
        frames, self._open = self._open, []
        type_, flags, stream = self._open_head
        first = frames[0][9:]
        pad = 0
        if flags & PADDED:
            if not first:
                raise MalformedFrame("h2: padded header block without its pad length")
            pad = first[0]
            first = first[1:]
        priority = b""
        if type_ == HEADERS and flags & PRIORITY_FLAG:
            priority, first = first[:5], first[5:]
        elif type_ == PUSH_PROMISE:
            first = first[4:]  # the promised stream id
        if pad:
            if pad > len(first):
                raise MalformedFrame("h2: header padding longer than the frame")
            first = first[: len(first) - pad]
        fragment = first + b"".join(f[9:] for f in frames[1:]) if len(frames) > 1 else first
        try:
            headers = self._decoder.decode(fragment)
        except (
            HpackError,
            ValueError,
            IndexError,
        ) as exc:  # COMPRESSION_ERROR: the peers would end the connection
            raise MalformedFrame(f"h2: header block does not decode: {exc}") from None
        block = self._blocks
        self._blocks += 1
        flags = (flags & ~PADDED) | END_HEADERS
        raw = frames[0] if len(frames) == 1 else b"".join(frames)
        return H2Unit(type_, flags, stream, raw, block, headers, priority)


class FrameBoundary:
    """Follows bytes written to one peer: is the output between two frames (and not inside
    a header block), so that the relay may write a frame of its own there?"""

    __slots__ = ("_head", "_in_block", "_preface", "_rest")

    def __init__(self, *, client_side: bool) -> None:
        self._preface = len(PREFACE) if client_side else 0
        self._head = bytearray()
        self._rest = 0
        self._in_block = False

    @property
    def at_boundary(self) -> bool:
        return not self._preface and not self._head and not self._rest and not self._in_block

    def resync(self, held: bytes, preface: bool) -> None:
        """The output is whatever a splitter has read, ``held`` being the part it has not
        cut into units yet (which starts at a frame boundary): cheaper than feeding every
        forwarded byte, since ``held`` is nearly always empty."""
        self._head.clear()
        self._rest = 0
        self._in_block = False
        self._preface = len(PREFACE) if preface else 0
        if held:
            self.feed(held)

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n:
            if self._preface:
                step = min(self._preface, n - i)
                self._preface -= step
                i += step
                continue
            if self._rest:
                step = min(self._rest, n - i)
                self._rest -= step
                i += step
                continue
            need = 9 - len(self._head)
            if not self._head and n - i >= 9:
                head = view[i : i + 9]
                i += 9
            else:
                self._head += view[i : i + need]
                i += min(need, n - i)
                if len(self._head) < 9:
                    return
                head = memoryview(bytes(self._head))
                self._head.clear()
            self._rest = int.from_bytes(head[:3], "big")
            type_, flags = head[3], head[4]
            if type_ in (HEADERS, PUSH_PROMISE, CONTINUATION):
                self._in_block = not flags & END_HEADERS


class GrpcMessageCounter:
    """Counts whole gRPC length-prefixed messages in one direction of one stream."""

    __slots__ = ("_head", "_rest", "bytes", "count")

    def __init__(self) -> None:
        self._head = bytearray()
        self._rest = 0
        self.count = 0
        self.bytes = 0

    @property
    def inside(self) -> bool:
        """A message has begun and not ended."""
        return bool(self._head) or self._rest > 0

    def feed(self, data: bytes) -> int:
        """Add DATA bytes; the number of messages they completed."""
        n = len(data)
        self.bytes += n
        if (
            not self._rest
            and not self._head
            and n >= 5
            and 5 + int.from_bytes(data[1:5], "big") == n
        ):  # one whole message (a unary call's): no walk
            self.count += 1
            return 1
        done = 0
        i = 0
        while i < n:
            if self._rest:
                step = min(self._rest, n - i)
                self._rest -= step
                i += step
                if not self._rest:
                    done += 1
                continue
            need = 5 - len(self._head)
            self._head += data[i : i + need]
            i += min(need, n - i)
            if len(self._head) == 5:
                self._rest = int.from_bytes(self._head[1:5], "big")
                self._head.clear()
                if not self._rest:
                    done += 1
        self.count += done
        return done

    def boundaries(self, data: bytes) -> list[int]:
        """Offsets in ``data`` where a message ends (without changing the count)."""
        ends: list[int] = []
        head, rest = bytearray(self._head), self._rest
        i, n = 0, len(data)
        while i < n:
            if rest:
                step = min(rest, n - i)
                rest -= step
                i += step
                if not rest:
                    ends.append(i)
                continue
            need = 5 - len(head)
            head += data[i : i + need]
            i += min(need, n - i)
            if len(head) == 5:
                rest = int.from_bytes(head[1:5], "big")
                head.clear()
                if not rest:
                    ends.append(i)
        return ends
