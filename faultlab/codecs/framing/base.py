"""The sans-IO framer interface (after h11's ``Connection``) and its receive buffer.

Rules every framer follows:

1. ``receive_data(data)`` only buffers (``b""`` means EOF) and never raises for
   what the peer sent; it raises :class:`LocalProtocolError` for our misuse
   (data after EOF). A framer may stop buffering once it knows the input is
   bad, so an oversize frame's body is never held.
2. ``next_frame()`` returns one whole frame, ``NEED_DATA``, or ``CLOSED`` after a
   clean EOF. Bad input raises a :class:`RemoteProtocolError` subclass; EOF
   inside a frame raises :class:`TruncatedFrame`: a partial frame is never a value.
   Frames that were complete before the bad input are still returned first.
3. After an error the framer is dead: ``next_frame()`` raises it again.
4. ``frame(payload)`` is what to send: the bytes the peer's framer turns back
   into ``payload``. It raises :class:`LocalProtocolError` subclasses only.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import ClassVar, Generic, TypeVar

from faultlab.codecs.errors import TruncatedFrame
from faultlab.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "CLOSED",
    "DEFAULT_MAX_FRAME",
    "NEED_DATA",
    "PAUSED",
    "FrameEvent",
    "Framer",
    "ReceiveBuffer",
]

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
"""16 MiB: larger than any sane RPC message, small enough to refuse a hostile length."""

T = TypeVar("T")


class FrameEvent(enum.Enum):
    """What ``next_frame`` returns when it has no frame to give."""

    NEED_DATA = "NEED_DATA"
    """Feed more bytes with ``receive_data``."""
    PAUSED = "PAUSED"
    """HTTP only: answer the current request before the next one is parsed."""
    CLOSED = "CLOSED"
    """The peer sent EOF between frames; nothing more will come."""


NEED_DATA = FrameEvent.NEED_DATA
PAUSED = FrameEvent.PAUSED
CLOSED = FrameEvent.CLOSED


class ReceiveBuffer:
    """A bytearray consumed from the front in O(1) amortised (compacts lazily)."""

    __slots__ = ("_data", "_start")

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0

    def __len__(self) -> int:
        return len(self._data) - self._start

    def extend(self, data: bytes | memoryview) -> None:
        self._data += data

    def take(self, size: int) -> bytes:
        """Remove and return the first ``size`` bytes (the caller checked ``len``)."""
        end = self._start + size
        chunk = bytes(self._data[self._start : end])
        self._start = end
        if self._start > 65536 and self._start * 2 > len(self._data):
            del self._data[: self._start]
            self._start = 0
        return chunk

    def discard(self, size: int) -> None:
        """Drop the first ``size`` bytes without copying them out."""
        self._start += size
        if self._start > 65536 and self._start * 2 > len(self._data):
            del self._data[: self._start]
            self._start = 0

    def peek(self, size: int) -> bytes:
        """The first ``size`` bytes (fewer if not buffered), left in place."""
        return bytes(self._data[self._start : self._start + size])

    def find(self, needle: bytes, start: int = 0) -> int:
        """Index of ``needle`` relative to the front, or -1."""
        index = self._data.find(needle, self._start + start)
        return -1 if index < 0 else index - self._start

    def clear(self) -> None:
        self._data.clear()
        self._start = 0


class Framer(ABC, Generic[T]):
    """Splits a byte stream into frames and frames payloads for sending; no I/O."""

    name: ClassVar[str]
    sticky_errors: ClassVar[bool] = True
    """Whether one bad frame kills the stream (False for independent datagrams)."""

    def __init__(self, *, max_size: int = DEFAULT_MAX_FRAME) -> None:
        if max_size < 0:
            raise ValueError("max_size must be >= 0")
        self.max_size = max_size
        self._eof = False
        self._error: RemoteProtocolError | None = None
        self._rejected: RemoteProtocolError | None = None

    @property
    def eof(self) -> bool:
        """True once ``receive_data(b"")`` was called."""
        return self._eof

    def receive_data(self, data: bytes) -> None:
        """Buffer ``data`` from the peer; ``b""`` means the peer closed (EOF)."""
        if self._eof:
            if data:
                raise LocalProtocolError("received data after EOF")
            return
        if not data:
            self._eof = True
            self._receive_eof()
            return
        if self._rejected is None:
            self._receive(bytes(data))

    def _reject(self, error: RemoteProtocolError) -> None:
        """Remember bad input seen while buffering; drop everything after it.

        ``next_frame`` raises it once the frames completed before it are taken.
        """
        self._rejected = error

    def _raise_rejected(self) -> None:
        if self._rejected is not None:
            raise self._rejected

    def next_frame(self) -> T | FrameEvent:
        """The next whole frame, ``NEED_DATA``, or ``CLOSED``; see the module rules."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except RemoteProtocolError as exc:
            if self.sticky_errors:
                self._error = exc
            raise

    def frames(self) -> Iterator[T]:
        """Every frame available now (stops at ``NEED_DATA``, ``PAUSED`` or ``CLOSED``)."""
        while True:
            item = self.next_frame()
            if isinstance(item, FrameEvent):
                return
            yield item

    @abstractmethod
    def frame(self, payload: T) -> bytes:
        """The bytes that carry ``payload`` to the peer's framer."""

    @abstractmethod
    def _receive(self, data: bytes) -> None:
        """Buffer non-empty ``data``; record (not raise) errors the peer caused."""

    def _receive_eof(self) -> None:
        """Hook for framers that must tell a parser about EOF (h11)."""

    @abstractmethod
    def _next(self) -> T | FrameEvent: ...

    def _end(self, partial: bool, what: str = "frame") -> FrameEvent:
        """``NEED_DATA`` before EOF; at EOF ``CLOSED``, or an error mid-frame."""
        if not self._eof:
            return NEED_DATA
        if partial:
            raise TruncatedFrame(f"{self.name}: stream ended inside a {what}")
        return CLOSED

    def __repr__(self) -> str:
        return f"<{type(self).__name__} max_size={self.max_size}>"
