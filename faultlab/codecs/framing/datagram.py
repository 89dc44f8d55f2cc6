"""Datagram framing: the transport keeps boundaries, so a frame is one datagram.

This framer only enforces the size cap and gives datagram transports the same
interface as stream framings. Errors are not sticky: one oversize datagram
is reported and the next is still delivered. Because ``receive_data(b"")``
means EOF, an empty datagram is passed with ``receive_datagram``.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from faultlab.codecs.errors import FrameTooLarge, PayloadTooLarge
from faultlab.codecs.framing.base import CLOSED, NEED_DATA, FrameEvent, Framer
from faultlab.errors import LocalProtocolError

__all__ = ["DatagramFramer"]


class DatagramFramer(Framer[bytes]):
    """One message per datagram, at most ``max_size`` bytes (UDP's practical cap is 65507)."""

    name: ClassVar[str] = "datagram"
    sticky_errors: ClassVar[bool] = False

    def __init__(self, *, max_size: int = 65507) -> None:
        super().__init__(max_size=max_size)
        self._queue: deque[bytes | FrameTooLarge] = deque()

    def receive_datagram(self, datagram: bytes) -> None:
        """Queue one whole datagram, empty ones included."""
        if self.eof:
            raise LocalProtocolError("received a datagram after EOF")
        self._receive(bytes(datagram))

    def _receive(self, data: bytes) -> None:
        if len(data) > self.max_size:
            self._queue.append(
                FrameTooLarge(f"datagram of {len(data)} bytes exceeds max_size {self.max_size}")
            )
        else:
            self._queue.append(data)

    def _next(self) -> bytes | FrameEvent:
        if not self._queue:
            return CLOSED if self.eof else NEED_DATA
        item = self._queue.popleft()
        if isinstance(item, FrameTooLarge):
            raise item
        return item

    def frame(self, payload: bytes) -> bytes:
        if len(payload) > self.max_size:
            raise PayloadTooLarge(
                f"datagram: payload of {len(payload)} bytes exceeds max_size {self.max_size}"
            )
        return bytes(payload)
