"""A stream of concatenated msgpack objects: the msgpack-RPC wire format.

msgpack is self-delimiting, so there is no prefix: ``msgpack.Unpacker`` is fed
incrementally and each object's raw bytes are cut out by ``tell()``. The
framer feeds the unpacker at most ``max_size`` bytes of one object, so an
object larger than that is refused (``FrameTooLarge``) with bounded memory;
a top-level str/bin/ext/array/map header that announces more is refused
before its body is fed. ``next_object()`` decodes instead of cutting.
"""

from __future__ import annotations

import struct
from typing import Any, ClassVar

import msgpack  # type: ignore[import-untyped]

from faultlab.codecs.errors import DecodeError, FrameTooLarge, MalformedFrame, PayloadTooLarge
from faultlab.codecs.framing.base import DEFAULT_MAX_FRAME, FrameEvent, Framer, ReceiveBuffer
from faultlab.codecs.msgpack import MsgpackCodec, unpacker_options
from faultlab.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["MsgpackStreamFramer", "announced_size"]

# first byte -> (length field format, header size, bytes per announced unit)
_SIZED: dict[int, tuple[str, int, int]] = {
    0xC4: (">B", 2, 1), 0xC5: (">H", 3, 1), 0xC6: (">I", 5, 1),  # bin
    0xD9: (">B", 2, 1), 0xDA: (">H", 3, 1), 0xDB: (">I", 5, 1),  # str
    0xC7: (">B", 3, 1), 0xC8: (">H", 4, 1), 0xC9: (">I", 6, 1),  # ext (+ type byte)
    0xDC: (">H", 3, 1), 0xDD: (">I", 5, 1),  # array: each element >= 1 byte
    0xDE: (">H", 3, 2), 0xDF: (">I", 5, 2),  # map: each pair >= 2 bytes
}  # fmt: skip


def announced_size(head: bytes) -> int | None:
    """The least total size the object starting with ``head`` must have, if known yet."""
    if not head or head[0] not in _SIZED:
        return None
    fmt, header, unit = _SIZED[head[0]]
    width = struct.calcsize(fmt)
    if len(head) < 1 + width:
        return None
    (count,) = struct.unpack_from(fmt, head, 1)
    return header + int(count) * unit


class MsgpackStreamFramer(Framer[bytes]):
    """Whole msgpack objects out of a byte stream, each as its raw bytes."""

    name: ClassVar[str] = "msgpack-stream"

    def __init__(self, *, max_size: int = DEFAULT_MAX_FRAME, datetimes: bool = True) -> None:
        super().__init__(max_size=max_size)
        self._codec = MsgpackCodec(datetimes=datetimes, max_size=max(max_size, 1))
        self._unpacker = msgpack.Unpacker(
            max_buffer_size=max(max_size, 1), **unpacker_options(datetimes=datetimes)
        )
        self._backlog = ReceiveBuffer()  # received, not yet fed to the unpacker
        self._window = ReceiveBuffer()  # fed, not yet returned as a frame
        self._offset = 0  # unpacker.tell() at the end of the last object

    def _receive(self, data: bytes) -> None:
        self._backlog.extend(data)

    def _next(self) -> bytes | FrameEvent:
        # Kept flat on purpose: a stream of one-byte objects (every ASCII byte is a
        # msgpack int) runs this once per input byte.
        unpacker = self._unpacker
        while True:
            try:
                unpacker.skip()
            except msgpack.OutOfData:
                if self._feed():
                    continue
                self._raise_rejected()
                return self._end(partial=len(self._window) > 0 or len(self._backlog) > 0)
            except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
                raise MalformedFrame(f"msgpack-stream: malformed object: {exc!r}") from exc
            position = unpacker.tell()
            raw = self._window.take(position - self._offset)
            self._offset = position
            return raw

    def next_object(self) -> Any:
        """The next decoded object, or a :class:`FrameEvent` (same rules as ``next_frame``)."""
        if self._error is not None:
            raise self._error
        try:
            return self._next_object()
        except RemoteProtocolError as exc:
            self._error = exc
            raise

    def _next_object(self) -> Any:
        unpacker = self._unpacker
        while True:
            try:
                value = unpacker.unpack()
            except msgpack.OutOfData:
                if self._feed():
                    continue
                self._raise_rejected()
                return self._end(partial=len(self._window) > 0 or len(self._backlog) > 0)
            except UnicodeDecodeError as exc:
                raise DecodeError(f"msgpack-stream: bad UTF-8 in a str: {exc}") from exc
            except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
                raise MalformedFrame(f"msgpack-stream: malformed object: {exc!r}") from exc
            position = unpacker.tell()
            self._window.discard(position - self._offset)  # decoded: its bytes are not needed
            self._offset = position
            return value

    def _feed(self) -> bool:
        """Feed the unpacker more of the backlog; False if there is none."""
        if not len(self._backlog):
            return False
        if not len(self._window):
            size = announced_size(self._backlog.peek(5))
            if size is not None and size > self.max_size:
                raise FrameTooLarge(
                    f"msgpack-stream: object announces {size} bytes, max_size {self.max_size}"
                )
        room = self.max_size - len(self._window)
        if room <= 0:
            raise FrameTooLarge(f"msgpack-stream: object exceeds max_size {self.max_size}")
        chunk = self._backlog.take(min(room, len(self._backlog)))
        self._unpacker.feed(chunk)
        self._window.extend(chunk)
        return True

    def frame(self, payload: bytes) -> bytes:
        """Checks that ``payload`` is exactly one msgpack object, then sends it as is."""
        if len(payload) > self.max_size:
            raise PayloadTooLarge(f"msgpack-stream: {len(payload)} bytes exceed max_size")
        checker = msgpack.Unpacker(max_buffer_size=max(len(payload), 1))
        checker.feed(payload)
        try:
            checker.skip()
        except (ValueError, msgpack.UnpackException) as exc:
            raise LocalProtocolError(
                f"msgpack-stream: payload is not one msgpack object: {exc!r}"
            ) from exc
        if checker.tell() != len(payload):
            raise LocalProtocolError("msgpack-stream: payload holds more than one msgpack object")
        return bytes(payload)

    def frame_object(self, value: Any) -> bytes:
        """Pack ``value`` (checked against the msgpack codec's lossless domain)."""
        packed = self._codec.encode(value)
        if len(packed) > self.max_size:
            raise PayloadTooLarge(f"msgpack-stream: {len(packed)} bytes exceed max_size")
        return packed
