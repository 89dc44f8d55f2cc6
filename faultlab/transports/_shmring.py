"""Single-producer single-consumer message ring in shared memory, woken by eventfd.

The ring is a power-of-two byte area plus a 256-byte header. Records are a u32
length and the payload, padded to 4 bytes so a length never straddles the end.
A record that fits the ring is published at once (one tail store); a larger
one streams through in pieces that the reader reassembles, so any size up to
``max_message`` passes a ring of any size.

Header (u64 fields, 8-byte aligned, little endian). The writer's and the
reader's fields sit 128 bytes apart so the two CPUs do not share a cache line
(or the adjacent line the prefetcher pulls in)::

    +0    tail            written by the writer: bytes ever published | CLOSED
    +16   writer_waiting  written by the writer (cleared by the reader): sleeps for space
    +128  head            written by the reader: bytes ever consumed | CLOSED
    +144  reader_waiting  written by the reader (cleared by the writer): sleeps for data

Head and tail only grow, so ``tail - head`` is the fill level without a
wrap-around ambiguity. Bit 63 says "this side closed": it travels in the same
store as the final position, so the fast path reads one word per message and
a reader that sees the writer's CLOSED bit has seen every byte before it.

Ordering: x86-64 is TSO, so a payload copied before the tail store is visible
before it, and loads are not reordered with loads. TSO does reorder a store
with a later load, which is exactly the "set my waiting flag, then re-check the
ring" vs "publish, then read the waiting flag" pair; both sides put a full
fence between the two (``_fence``: a ``threading.Lock`` acquire and release,
each a locked instruction in glibc) so a wake-up is never lost. As a second
line of defence, sleeps are sliced (``_SLICE``) and re-check the ring, so even
a missed wake-up would cost at most one slice.

Waiting: spin briefly calling ``sched_yield`` (if the peer shares our CPU this
hands it the CPU at once, which a pure spin never would; if it runs on another
CPU we see its write within a microsecond), then set the waiting flag and
``poll`` the eventfd and the liveness fd (a socket that turns readable when the
peer process closes or dies). The other side writes the eventfd only while the
flag is set, so a busy stream makes no system call but ``sched_yield``.
"""

from __future__ import annotations

import mmap
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from faultlab.errors import (
    BrokenResourceError,
    ClosedResourceError,
    EndOfStream,
    MessageTooLarge,
    TransportError,
    TransportTimeout,
)
from faultlab.streams import DEFAULT_TIMEOUT, Deadline

__all__ = [
    "CLOSED",
    "DEFAULT_SPIN",
    "RING_HEADER",
    "RingReader",
    "RingWriter",
    "record_size",
]

RING_HEADER = 256
"""Bytes of header per ring."""

DEFAULT_SPIN = 50e-6
"""Seconds to spin (yielding) before sleeping: about one Python echo turn-around."""

CLOSED = 1 << 63
"""Bit 63 of head or tail: that side closed."""

_POS = CLOSED - 1
_SLICE = 0.1
"""Longest single sleep: bounds the cost of a missed wake-up and of ``math.inf``."""

_WAKE_LOCK_WAIT = 0.05
"""How long a fast path waits for its own lock to wake the peer (see ``_wake_after_release``)."""

_TAIL, _WWAIT, _HEAD, _RWAIT = 0, 16, 128, 144

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_get64 = _U64.unpack_from
_put64 = _U64.pack_into
_get32 = _U32.unpack_from
_put32 = _U32.pack_into
_yield = os.sched_yield
_now = time.perf_counter

Buffer = bytes | bytearray | memoryview


def record_size(n: int) -> int:
    """Ring bytes one message of ``n`` bytes takes (length word plus padded payload)."""
    return 4 + ((n + 3) & ~3)


def _drain(fd: int) -> None:
    try:
        os.eventfd_read(fd)
    except BlockingIOError:
        pass


class _End:
    """What the reader and the writer share: the mapping, offsets, wake-up fds, a lock.

    ``lock`` serialises the calls of one end (one direction of a stream), so
    threads may share a stream; :meth:`abort` wakes a thread of ours that sleeps.
    """

    default_timeout: float = DEFAULT_TIMEOUT
    """Used when a call passes ``timeout=None`` (the owning stream keeps it in step)."""

    _is_writer: ClassVar[bool]

    def __init__(
        self,
        mm: mmap.mmap,
        header: int,
        data: int,
        size: int,
        *,
        data_efd: int,
        space_efd: int,
        liveness_fd: int = -1,
        spin: float = DEFAULT_SPIN,
        max_message: int = 16 << 20,
    ) -> None:
        if size < 16 or size & (size - 1):
            raise ValueError(f"ring size must be a power of two >= 16, got {size}")
        self._mm = mm
        self._size = size
        self._mask = size - 1
        self._data = data
        self._o_tail = header + _TAIL
        self._o_wwait = header + _WWAIT
        self._o_head = header + _HEAD
        self._o_rwait = header + _RWAIT
        self.data_efd = data_efd
        self.space_efd = space_efd
        self.liveness_fd = liveness_fd
        self.spin = spin
        self.max_message = max_message
        self.closing = False
        self.peer_gone = False
        self.lock = threading.Lock()
        self._acquire = self.lock.acquire
        self._release = self.lock.release
        fence = threading.Lock()
        self._facquire = fence.acquire
        self._frelease = fence.release
        # Which flag and eventfd are ours (we sleep on them) and which are the peer's.
        if self._is_writer:
            self._own_wait_off, self._own_efd = self._o_wwait, space_efd
            self._peer_wait_off, self._peer_efd = self._o_rwait, data_efd
        else:
            self._own_wait_off, self._own_efd = self._o_rwait, data_efd
            self._peer_wait_off, self._peer_efd = self._o_wwait, space_efd
        self._poll = select.poll()
        self._poll.register(self._own_efd, select.POLLIN)
        if liveness_fd >= 0:
            self._poll.register(liveness_fd, select.POLLIN)

    def _fence(self) -> None:
        """Full memory barrier (see module docstring): a locked instruction each way."""
        self._facquire()
        self._frelease()

    def _deadline(self, timeout: float | None) -> Deadline:
        return Deadline.after(self.default_timeout if timeout is None else timeout)

    def _lock_slow(self, timeout: float | None, what: str) -> None:
        """Wait for another thread's call on this end, within the caller's timeout."""
        wait = self._deadline(timeout).remaining_or_zero()
        if not self._acquire(timeout=min(wait, threading.TIMEOUT_MAX)):
            raise TransportTimeout(f"{what} timed out waiting for another thread's {what}")

    def _wake_peer(self) -> None:
        """Wake the other side if its flag says it sleeps (caller holds ``lock``, fenced)."""
        mm = self._mm
        if _get64(mm, self._peer_wait_off)[0]:
            _put64(mm, self._peer_wait_off, 0)
            os.eventfd_write(self._peer_efd, 1)

    def _wake_after_release(self) -> None:
        """The fast path saw the peer's flag after releasing ``lock``: wake it under the lock.

        If another thread of ours holds the lock for long, it is sleeping in
        :meth:`_block`, which wakes the peer before it sleeps, so giving up is safe.
        """
        if self._acquire(True, _WAKE_LOCK_WAIT):
            try:
                if not self.closing:
                    self._wake_peer()
            finally:
                self._release()

    def _block(self, ready: Callable[[], bool], deadline: Deadline, what: str, spin: bool) -> None:
        """Return once ``ready()`` or the peer is gone; raise on timeout or local close.

        Before sleeping, wake the peer if it sleeps too: with several threads per
        end that is what keeps both sides from sleeping on each other.
        """
        mm = self._mm
        wait_off = self._own_wait_off
        efd = self._own_efd
        poller = self._poll
        if spin and self.spin > 0:
            end = _now() + min(self.spin, deadline.remaining_or_zero())
            while True:
                _yield()
                if ready():
                    return
                if _now() >= end:
                    break
        while True:
            if self.closing:
                raise ClosedResourceError(f"{what}: stream is closed")
            _put64(mm, wait_off, 1)
            self._fence()
            if ready():
                _put64(mm, wait_off, 0)
                return
            self._wake_peer()
            left = deadline.remaining_or_zero()
            events = poller.poll(min(left, _SLICE) * 1000.0)
            _put64(mm, wait_off, 0)
            for fd, _ in events:
                if fd == efd:
                    _drain(efd)
                else:
                    self.peer_gone = True
            if self.closing:
                raise ClosedResourceError(f"{what}: stream is closed")
            if self.peer_gone or ready():
                return
            if left <= 0 or deadline.remaining_or_zero() <= 0:
                raise TransportTimeout(f"{what} timed out")

    def _wake_own(self, efd: int) -> None:
        self.closing = True
        try:
            os.eventfd_write(efd, 1)
        except OSError:
            pass


class RingWriter(_End):
    """The producing end: ``send`` whole messages, ``send_eof`` to end the stream."""

    _is_writer = True

    def __init__(self, mm: mmap.mmap, header: int, data: int, size: int, **kw: Any) -> None:
        super().__init__(mm, header, data, size, **kw)
        self._tail = _get64(mm, self._o_tail)[0] & _POS
        self._want = 0
        self._stop: TransportError | None = None
        self.eof_sent = False

    def send(self, message: Buffer, *, timeout: float | None = None) -> None:
        """Publish one message; wait (up to ``timeout`` s) for space if the ring is full."""
        if not self._acquire(False):
            self._lock_slow(timeout, "send")
        try:
            if self._stop is not None:
                raise type(self._stop)(*self._stop.args)
            n = len(message)
            if n > self.max_message:
                raise MessageTooLarge(
                    f"message of {n} bytes exceeds the maximum {self.max_message}"
                )
            need = 4 + ((n + 3) & ~3)
            mm = self._mm
            size = self._size
            tail = self._tail
            if not 0 <= tail - _get64(mm, self._o_head)[0] <= size - need:
                if need > size:
                    self._send_streamed(message, self._deadline(timeout))
                    return
                self._wait(need, self._deadline(timeout))
            data = self._data
            off = tail & self._mask
            _put32(mm, data + off, n)
            start = off + 4
            if start == size:
                start = 0
            end = start + n
            if end <= size:
                mm[data + start : data + end] = message
            else:
                first = size - start
                view = memoryview(message)
                mm[data + start : data + size] = view[:first]
                mm[data : data + n - first] = view[first:]
            tail += need
            self._tail = tail
            _put64(mm, self._o_tail, tail)
        finally:
            self._release()
        # That release is a locked instruction, hence also the fence between the tail
        # store and this load of the reader's flag (module docstring).
        try:
            if _get64(mm, self._o_rwait)[0]:
                self._wake_after_release()
        except ValueError:  # a concurrent close() unmapped the ring after we published
            pass

    def _publish(self, tail: int) -> None:
        self._tail = tail
        _put64(self._mm, self._o_tail, tail)
        self._fence()
        self._wake_peer()

    def _ready(self) -> bool:
        head = _get64(self._mm, self._o_head)[0]
        return bool(head & CLOSED) or self._size - (self._tail - head) >= self._want

    def _wait(self, want: int, deadline: Deadline) -> None:
        self._want = want
        spin = True
        while not self._ready():
            self._block(self._ready, deadline, "send", spin)
            spin = False
            if self.peer_gone and not self._ready():
                raise BrokenResourceError("send: peer process is gone")
        if _get64(self._mm, self._o_head)[0] & CLOSED:
            raise BrokenResourceError("send: peer closed the stream")

    def _send_streamed(self, message: Buffer, deadline: Deadline) -> None:
        """A message larger than the ring: length first, then the payload piece by piece."""
        mm = self._mm
        size = self._size
        data = self._data
        n = len(message)
        view = memoryview(message)
        self._wait(4, deadline)  # failing here leaves no trace: nothing is published yet
        sent = 0
        left = (n + 3) & ~3
        try:
            _put32(mm, data + (self._tail & self._mask), n)
            self._publish(self._tail + 4)
            while left:
                self._wait(4, deadline)
                free = size - (self._tail - _get64(mm, self._o_head)[0])
                k = min(free, left)
                copy = min(k, n - sent)
                off = self._tail & self._mask
                first = min(copy, size - off)
                mm[data + off : data + off + first] = view[sent : sent + first]
                if copy > first:
                    mm[data : data + copy - first] = view[sent + first : sent + copy]
                sent += copy
                left -= k
                self._publish(self._tail + k)
        except TransportError as exc:
            # The reader holds part of a message: nothing sent later could be framed.
            self._stop = BrokenResourceError(
                f"send: an earlier send failed after {sent} of {n} bytes ({exc})"
            )
            raise

    def send_eof(self, timeout: float | None = None) -> None:
        """The reader gets the messages already sent, then :class:`EndOfStream`."""
        if not self._acquire(False):
            self._lock_slow(timeout, "send_eof")
        try:
            if self.closing:
                raise ClosedResourceError("send_eof: stream is closed")
            self.mark_closed()
        finally:
            self._release()

    def mark_closed(self) -> None:
        """Set CLOSED on the tail and wake the reader (caller holds ``lock``)."""
        if self.eof_sent:
            return
        self.eof_sent = True
        if self._stop is None:
            self._stop = ClosedResourceError("send: send_eof() was called on this stream")
        _put64(self._mm, self._o_tail, self._tail | CLOSED)
        self._fence()
        os.eventfd_write(self.data_efd, 1)

    def abort(self) -> None:
        """Local close: refuse further sends; wake our thread that waits for space."""
        self._stop = ClosedResourceError("send: stream is closed")
        self._wake_own(self.space_efd)


class RingReader(_End):
    """The consuming end: ``receive`` whole messages; ``mark_closed`` makes sends fail."""

    _is_writer = False

    def __init__(self, mm: mmap.mmap, header: int, data: int, size: int, **kw: Any) -> None:
        super().__init__(mm, header, data, size, **kw)
        self._head = _get64(mm, self._o_head)[0] & _POS
        self._part: bytearray | None = None
        self._got = 0
        self._left = 0
        self._closed_marked = False

    def receive(self, *, timeout: float | None = None) -> bytes:
        """The next whole message; wait up to ``timeout`` s for it."""
        if not self._acquire(False):
            self._lock_slow(timeout, "receive")
        try:
            msg = None
            mm = self._mm
            if self._part is None and not self.closing:
                head = self._head
                avail = _get64(mm, self._o_tail)[0] - head
                if not avail and self.spin:
                    # Inline spin: no deadline object, no call, while traffic flows.
                    o_tail = self._o_tail
                    end = 0.0
                    while True:
                        _yield()
                        avail = _get64(mm, o_tail)[0] - head
                        if avail:
                            break
                        if not end:
                            t = self.default_timeout if timeout is None else timeout
                            end = _now() + (self.spin if self.spin < t else t)
                        elif _now() >= end:
                            break
                if 0 < avail <= self._size:
                    size = self._size
                    data = self._data
                    off = head & self._mask
                    n = _get32(mm, data + off)[0]
                    need = 4 + ((n + 3) & ~3)
                    if need <= avail:
                        start = off + 4
                        if start == size:
                            start = 0
                        end_ = start + n
                        if end_ <= size:
                            msg = mm[data + start : data + end_]
                        else:
                            msg = mm[data + start : data + size] + mm[data : data + end_ - size]
                        head += need
                        self._head = head
                        _put64(mm, self._o_head, head)
            if msg is None:
                return self._receive_slow(self._deadline(timeout))
        finally:
            self._release()
        # That release is a locked instruction, hence also the fence between the head
        # store and this load of the writer's flag (module docstring).
        try:
            if _get64(mm, self._o_wwait)[0]:
                self._wake_after_release()
        except ValueError:  # a concurrent close() unmapped the ring after we consumed
            pass
        return msg

    def _advance(self, head: int) -> None:
        self._head = head
        _put64(self._mm, self._o_head, head)
        self._fence()
        self._wake_peer()

    def _ready(self) -> bool:
        return bool(_get64(self._mm, self._o_tail)[0] != self._head)

    def _receive_slow(self, deadline: Deadline) -> bytes:
        spin = self._part is not None  # the fast path already spun for a new message
        while True:
            if self.closing:
                raise ClosedResourceError("receive: stream is closed")
            tail = _get64(self._mm, self._o_tail)[0]
            msg = self._try_read(tail & _POS)
            if msg is not None:
                return msg
            if tail & CLOSED and self._head == tail & _POS:
                if self._part is not None:
                    raise BrokenResourceError("receive: peer closed in the middle of a message")
                raise EndOfStream("peer closed the stream")
            if self.peer_gone:
                raise BrokenResourceError("receive: peer process is gone")
            self._block(self._ready, deadline, "receive", spin)
            spin = True

    def _try_read(self, tail: int) -> bytes | None:
        """Consume what is there: a whole message, or the next piece of a streamed one."""
        mm = self._mm
        size = self._size
        data = self._data
        head = self._head
        avail = tail - head
        if not avail:
            return None
        part = self._part
        if part is None:
            off = head & self._mask
            n = _get32(mm, data + off)[0]
            need = 4 + ((n + 3) & ~3)
            if need <= avail:
                start = off + 4
                if start == size:
                    start = 0
                end = start + n
                if end <= size:
                    msg = mm[data + start : data + end]
                else:
                    msg = mm[data + start : data + size] + mm[data : data + end - size]
                self._advance(head + need)
                return msg
            if need <= size or n > self.max_message:
                # A record that fits is published in one store, so it is never partial.
                raise BrokenResourceError(f"receive: corrupt ring (length {n}, {avail} there)")
            part = self._part = bytearray(n)
            self._got = 0
            self._left = need - 4
            head += 4
            avail -= 4
            self._advance(head)
            if not avail:
                return None
        n = len(part)
        k = min(avail, self._left)
        copy = min(k, n - self._got)
        off = head & self._mask
        first = min(copy, size - off)
        got = self._got
        part[got : got + first] = mm[data + off : data + off + first]
        if copy > first:
            part[got + first : got + copy] = mm[data : data + copy - first]
        self._got = got + copy
        self._left -= k
        self._advance(head + k)
        if self._left:
            return None
        self._part = None
        return bytes(part)

    def mark_closed(self) -> None:
        """Set CLOSED on the head (the writer's sends fail) and wake the writer."""
        if self._closed_marked:
            return
        self._closed_marked = True
        _put64(self._mm, self._o_head, self._head | CLOSED)
        self._fence()
        os.eventfd_write(self.space_efd, 1)

    def abort(self) -> None:
        """Local close: wake our thread that waits for data so it sees ``closing``."""
        self._wake_own(self.data_efd)
