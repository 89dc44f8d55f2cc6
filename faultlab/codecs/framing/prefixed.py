"""Length-prefixed framings: plain u32 big-endian, and gRPC's 5-byte message prefix.

Headers are parsed as bytes arrive, so an oversize length is rejected the
moment its header is complete: the body is never buffered, nor allocated.
Only payload bytes are buffered; complete frames wait in a queue of sizes.
"""

from __future__ import annotations

import struct
import zlib
from abc import abstractmethod
from collections import deque
from typing import Any, ClassVar, Literal

from faultlab.codecs.errors import FrameTooLarge, MalformedFrame, PayloadTooLarge
from faultlab.codecs.framing.base import DEFAULT_MAX_FRAME, FrameEvent, Framer, ReceiveBuffer
from faultlab.errors import LocalProtocolError

__all__ = ["GrpcFramer", "LengthPrefixFramer"]


class _PrefixedFramer(Framer[bytes]):
    """A fixed-size header announcing the payload size; subclasses parse the header."""

    header_size: ClassVar[int]

    def __init__(self, *, max_size: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(max_size=max_size)
        self._header = bytearray()
        self._remaining: int | None = None  # payload bytes still to come, None: in a header
        self._size = 0
        self._meta: Any = None
        self._body = ReceiveBuffer()
        self._ready: deque[tuple[int, Any]] = deque()

    @abstractmethod
    def _parse_header(self, header: bytes) -> tuple[int, Any]:
        """(payload size, metadata) or a RemoteProtocolError subclass raised."""

    def _receive(self, data: bytes) -> None:
        view = memoryview(data)  # slices without copying; the buffer copies once
        position, end = 0, len(data)
        while position < end:
            if self._remaining is None:
                need = self.header_size - len(self._header)
                self._header += view[position : position + need]
                position += need
                if len(self._header) < self.header_size:
                    return
                try:
                    self._size, self._meta = self._parse_header(bytes(self._header))
                except (FrameTooLarge, MalformedFrame) as exc:
                    self._reject(exc)
                    return
                self._header.clear()
                self._remaining = self._size
            take = min(self._remaining, end - position)
            if take:
                self._body.extend(view[position : position + take])
                position += take
                self._remaining -= take
            if self._remaining == 0:
                self._ready.append((self._size, self._meta))
                self._remaining = None

    def _next(self) -> bytes | FrameEvent:
        if self._ready:
            size, meta = self._ready.popleft()
            return self._finish(self._body.take(size), meta)
        self._raise_rejected()
        return self._end(partial=bool(self._header) or self._remaining is not None)

    def _finish(self, payload: bytes, meta: Any) -> bytes:
        return payload

    def _check_size(self, payload: bytes) -> None:
        if len(payload) > self.max_size:
            raise PayloadTooLarge(
                f"{self.name}: payload of {len(payload)} bytes exceeds max_size {self.max_size}"
            )

    def _too_large(self, size: int) -> FrameTooLarge:
        return FrameTooLarge(f"{self.name}: peer announced {size} bytes, max_size {self.max_size}")


class LengthPrefixFramer(_PrefixedFramer):
    """``u32 big-endian length + payload``: the common custom-protocol framing."""

    name: ClassVar[str] = "length-prefix"
    header_size: ClassVar[int] = 4
    _HEADER: ClassVar[struct.Struct] = struct.Struct(">I")

    def __init__(self, *, max_size: int = DEFAULT_MAX_FRAME) -> None:
        if max_size > 2**32 - 1:
            raise ValueError("a u32 length prefix cannot announce more than 2**32-1 bytes")
        super().__init__(max_size=max_size)

    def _parse_header(self, header: bytes) -> tuple[int, Any]:
        (size,) = self._HEADER.unpack(header)
        if size > self.max_size:
            raise self._too_large(size)
        return size, None

    def frame(self, payload: bytes) -> bytes:
        self._check_size(payload)
        return self._HEADER.pack(len(payload)) + payload


class GrpcFramer(_PrefixedFramer):
    """gRPC Length-Prefixed-Message: compressed flag (0/1), u32 length, message.

    ``encoding`` is the negotiated ``grpc-encoding``; a compressed message
    under ``identity`` is a protocol error, as the gRPC spec says. ``gzip``
    payloads are inflated with the output bounded by ``max_size``.
    """

    name: ClassVar[str] = "grpc"
    header_size: ClassVar[int] = 5
    _HEADER: ClassVar[struct.Struct] = struct.Struct(">BI")

    def __init__(
        self,
        *,
        max_size: int = DEFAULT_MAX_FRAME,
        encoding: Literal["identity", "gzip"] = "identity",
    ) -> None:
        if encoding not in ("identity", "gzip"):
            raise ValueError(f"unsupported grpc-encoding {encoding!r}")
        super().__init__(max_size=max_size)
        self.encoding = encoding

    def _parse_header(self, header: bytes) -> tuple[int, Any]:
        flag, size = self._HEADER.unpack(header)
        if flag not in (0, 1):
            raise MalformedFrame(f"grpc: compressed flag must be 0 or 1, got {flag}")
        if flag and self.encoding == "identity":
            raise MalformedFrame("grpc: compressed message but grpc-encoding is identity")
        if size > self.max_size:
            raise self._too_large(size)
        return size, bool(flag)

    def _finish(self, payload: bytes, meta: Any) -> bytes:
        if not meta:
            return payload
        inflater = zlib.decompressobj(wbits=31)
        try:
            message = inflater.decompress(payload, self.max_size + 1)
        except zlib.error as exc:
            raise MalformedFrame(f"grpc: bad gzip payload: {exc}") from exc
        if len(message) > self.max_size:
            raise FrameTooLarge(f"grpc: message inflates beyond max_size {self.max_size}")
        if not inflater.eof or inflater.unused_data:
            raise MalformedFrame("grpc: gzip payload is truncated or has trailing data")
        return message

    def frame(self, payload: bytes, *, compress: bool | None = None) -> bytes:
        """``compress`` defaults to whether the encoding is gzip."""
        self._check_size(payload)
        if compress is None:
            compress = self.encoding == "gzip"
        if compress:
            if self.encoding == "identity":
                raise LocalProtocolError("grpc: cannot compress under grpc-encoding identity")
            deflater = zlib.compressobj(wbits=31)
            payload = deflater.compress(payload) + deflater.flush()
            self._check_size(payload)
        return self._HEADER.pack(int(compress), len(payload)) + payload
