"""The one stream interface every transport implements (after anyio's ``abc``).

A transport's connector and listener yield either a :class:`ByteStream`
(ordered bytes, no boundaries: tcp, tls, unix, fifo) or a :class:`MessageStream`
(whole messages: udp, unixgram, mq, shm). Both are synchronous with a timeout on
every blocking call; :func:`to_async` gives the asyncio twin.

Timeouts: ``timeout=None`` means "the stream's default" (never "forever"),
so nothing blocks without bound unless a caller asks for ``math.inf``.
"""

from __future__ import annotations

import asyncio
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Self, TypeVar

from faultlab.errors import EndOfStream, TransportTimeout

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncListener",
    "AsyncStream",
    "ByteStream",
    "Deadline",
    "Listener",
    "MessageStream",
    "Stream",
    "receive_exactly",
    "to_async",
]

DEFAULT_TIMEOUT = 10.0
"""Seconds a blocking call waits when neither the call nor the stream says."""


@dataclass(slots=True)
class Deadline:
    """An absolute point in time, so loops of partial operations share one budget."""

    at: float

    @classmethod
    def after(cls, timeout: float) -> Deadline:
        if timeout < 0 or math.isnan(timeout):
            raise ValueError(f"timeout must be >= 0, got {timeout!r}")
        return cls(time.monotonic() + timeout)

    def remaining(self) -> float:
        """Seconds left (>= 0); :class:`TransportTimeout` once nothing is left."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TransportTimeout("operation timed out")
        return left

    def remaining_or_zero(self) -> float:
        return max(0.0, self.at - time.monotonic())


class _Closeable(ABC):
    default_timeout: float = DEFAULT_TIMEOUT

    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline.after(self.default_timeout if timeout is None else timeout)

    @abstractmethod
    def close(self) -> None:
        """Release every OS resource; idempotent; never blocks for long."""

    def peer_gone(self) -> bool:
        """True once the peer closed or died, seen without reading (``False``: cannot tell).

        Why: a reader paused for backpressure (the proxy) must still notice a peer that
        left. Transports that can see it (fifo, unixgram, shm) override this.
        """
        return False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ByteStream(_Closeable):
    """An ordered, reliable, bidirectional byte stream without boundaries."""

    kind = "stream"

    @abstractmethod
    def send(self, data: bytes, *, timeout: float | None = None) -> None:
        """Send all of ``data`` or raise (partial sends are not reported)."""

    @abstractmethod
    def receive(self, max_bytes: int = 65536, *, timeout: float | None = None) -> bytes:
        """Return 1..max_bytes bytes; raise :class:`EndOfStream` at EOF."""

    @abstractmethod
    def send_eof(self) -> None:
        """Half-close: the peer sees EOF, we can still receive."""


class MessageStream(_Closeable):
    """A bidirectional stream of whole messages (boundaries preserved)."""

    kind = "message"
    max_message_size: int = 1 << 20

    @abstractmethod
    def send(self, message: bytes, *, timeout: float | None = None) -> None:
        """Send one message (0..max_message_size bytes)."""

    @abstractmethod
    def receive(self, *, timeout: float | None = None) -> bytes:
        """Return the next whole message; raise :class:`EndOfStream` once the peer closed."""

    def send_eof(self) -> None:
        """Tell the peer no more messages follow (default: close)."""
        self.close()


Stream = ByteStream | MessageStream
S = TypeVar("S", ByteStream, MessageStream)


class Listener(_Closeable, Generic[S]):
    """Server side of a transport: accepts one stream per connecting client."""

    address: str
    """The real address as a URI (port 0 resolved, abstract names kept)."""

    @abstractmethod
    def accept(self, *, timeout: float | None = None) -> S:
        """Wait for the next client."""


def receive_exactly(stream: ByteStream, n: int, *, timeout: float | None = None) -> bytes:
    """Read exactly ``n`` bytes, or raise :class:`EndOfStream` if the peer stops short."""
    deadline = Deadline.after(stream.default_timeout if timeout is None else timeout)
    chunks: list[bytes] = []
    got = 0
    while got < n:
        try:
            chunk = stream.receive(min(n - got, 1 << 20), timeout=deadline.remaining())
        except EndOfStream as exc:
            raise EndOfStream(f"stream ended after {got} of {n} bytes") from exc
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


T = TypeVar("T")


class AsyncStream:
    """asyncio twin of a stream: each blocking call runs in a worker thread.

    Every call still carries the underlying stream's timeout, so a cancelled
    task never leaves a thread blocked for longer than that.
    """

    def __init__(self, stream: Stream) -> None:
        self.sync = stream
        self.kind = stream.kind

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    async def send(self, data: bytes, *, timeout: float | None = None) -> None:
        await self._run(lambda: self.sync.send(data, timeout=timeout))

    async def receive(self, max_bytes: int = 65536, *, timeout: float | None = None) -> bytes:
        s = self.sync
        if isinstance(s, ByteStream):
            return await self._run(lambda: s.receive(max_bytes, timeout=timeout))
        return await self._run(lambda: s.receive(timeout=timeout))

    async def send_eof(self) -> None:
        await self._run(self.sync.send_eof)

    async def aclose(self) -> None:
        await self._run(self.sync.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncListener:
    """asyncio twin of a :class:`Listener`."""

    def __init__(self, listener: Listener[ByteStream] | Listener[MessageStream]) -> None:
        self.sync = listener
        self.address = listener.address

    async def accept(self, *, timeout: float | None = None) -> AsyncStream:
        stream: Stream = await asyncio.to_thread(lambda: self.sync.accept(timeout=timeout))
        return AsyncStream(stream)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def to_async(stream: Stream) -> AsyncStream:
    """Wrap a synchronous stream for use from asyncio code."""
    return AsyncStream(stream)
