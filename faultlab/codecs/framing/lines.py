"""Newline-delimited framing (NDJSON and friends): one payload per ``\\n``-ended line.

Lines are measured as bytes arrive, so a line that grows past ``max_size``
without a newline is refused before more of it is buffered. A last line
without its newline at EOF is a truncated frame, not a message.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from faultlab.codecs.errors import FrameTooLarge, PayloadTooLarge
from faultlab.codecs.framing.base import DEFAULT_MAX_FRAME, FrameEvent, Framer, ReceiveBuffer
from faultlab.errors import LocalProtocolError

__all__ = ["LinesFramer"]

NEWLINE = b"\n"


class LinesFramer(Framer[bytes]):
    """Payloads must not contain ``\\n``; ``max_size`` bounds a line without its newline."""

    name: ClassVar[str] = "lines"

    def __init__(self, *, max_size: int = DEFAULT_MAX_FRAME) -> None:
        super().__init__(max_size=max_size)
        self._buffer = ReceiveBuffer()
        self._partial = 0  # length of the line still missing its newline
        self._lines: deque[int] = deque()  # lengths of complete lines, without newline

    def _receive(self, data: bytes) -> None:
        start = 0  # where the current line starts within ``data``
        while (index := data.find(NEWLINE, start)) >= 0:
            length = self._partial + index - start
            if length > self.max_size:
                self._buffer.extend(data[:start])  # keep the lines before it
                self._reject(self._too_long(length))
                return
            self._lines.append(length)
            self._partial = 0
            start = index + 1
        self._partial += len(data) - start
        if self._partial > self.max_size:
            self._buffer.extend(data[:start])
            self._reject(self._too_long(self._partial))
            return
        self._buffer.extend(data)

    def _too_long(self, length: int) -> FrameTooLarge:
        return FrameTooLarge(f"lines: line of {length}+ bytes exceeds max_size {self.max_size}")

    def _next(self) -> bytes | FrameEvent:
        if self._lines:
            line = self._buffer.take(self._lines.popleft() + 1)
            return line[:-1]
        self._raise_rejected()
        return self._end(partial=self._partial > 0, what="line")

    def frame(self, payload: bytes) -> bytes:
        if NEWLINE in payload:
            raise LocalProtocolError("lines: payload contains a newline; it would split in two")
        if len(payload) > self.max_size:
            raise PayloadTooLarge(
                f"lines: payload of {len(payload)} bytes exceeds max_size {self.max_size}"
            )
        return payload + NEWLINE
