"""``shm://name``: two shared-memory rings per connection, eventfd wake-ups, socket liveness.

Rendezvous and liveness use an AF_UNIX SOCK_SEQPACKET socket in the Linux
abstract namespace, ``@faultlab-shm-<name>``: no file to remove, and the
kernel frees the name when the listener dies, however it dies.

Per connection the client creates one memory segment holding a ring for each
direction (1 MiB each by default; see :mod:`faultlab.transports._shmring`)
and four eventfds (data and space, per ring), and passes them to the server
with ``SCM_RIGHTS`` in one hello message. After that the socket carries no
data: it turns readable only when the peer closes it or its process dies, so
waiting on it next to the eventfd detects peer death at once.

An abstract name has no file mode, so both sides check with SO_PEERCRED
that the peer runs as the same user (or root), and refuse it otherwise.

Why ``memfd_create`` instead of a named POSIX segment (``/dev/shm/...``): the
segment never has a name, so there is nothing to unlink, no window in which
a SIGKILL leaves an entry in /dev/shm, no stale-entry sweep, and no
``multiprocessing.resource_tracker`` (which on 3.11 unlinks or warns about
segments it did not create). The kernel frees the memory when the last
mapping and descriptor are gone, including after SIGKILL on both sides.

Why ``connect`` does not wait for an acknowledgement: like a socket
connect, it succeeds once the server's kernel queues the connection, so a
test may connect before it calls ``accept`` in the same thread; messages sent
meanwhile wait in the ring.

Speed: a message costs no system call while both sides are busy; a waiting
side first spins ~50 µs calling ``sched_yield`` (which also hands the CPU to
a peer pinned to the same CPU), then sleeps on its eventfd. Pages are mapped
with MAP_POPULATE (about 2 ms per connect for 2 MiB) so the first lap of a
ring takes no page faults. Options, as keyword arguments or ``?query``:
``ring_size`` (client; power of two, bytes per direction) and ``spin_us``.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import re
import select
import socket
import struct
import sys
import time
import uuid
from typing import Any

from faultlab.errors import (
    AddressError,
    BrokenResourceError,
    ClosedResourceError,
    TransportTimeout,
)
from faultlab.streams import DEFAULT_TIMEOUT, Deadline, Listener, MessageStream
from faultlab.transports import register
from faultlab.transports._fdio import hangup_events
from faultlab.transports._shmring import (
    DEFAULT_SPIN,
    RING_HEADER,
    RingReader,
    RingWriter,
)
from faultlab.transports._sockets import translate_oserror
from faultlab.transports.base import Capabilities, ParsedAddress, Transport

__all__ = ["DEFAULT_RING_SIZE", "MAX_MESSAGE_SIZE", "ShmListener", "ShmStream", "ShmTransport"]

DEFAULT_RING_SIZE = 1 << 20
"""Bytes per direction; a message up to this minus 4 is published in one step."""

MAX_MESSAGE_SIZE = 16 << 20
"""Largest message one ``send`` takes; larger ones stream through the ring in pieces."""

_PREFIX = "faultlab-shm-"
_NAME = re.compile(r"[A-Za-z0-9._-]{1,90}")
_MAGIC = b"FLTSHM01"
_HELLO = struct.Struct("<8sII")  # magic, ring size, max message size
_PAGE = 4096
_C2S_HEADER = 0
_S2C_HEADER = RING_HEADER
_MIN_RING, _MAX_RING = 64, 1 << 30
_N_FDS = 5  # memfd + (c2s data, c2s space, s2c data, s2c space) eventfds


def _segment_size(ring: int) -> int:
    return _PAGE + 2 * ring


def _map(fd: int, ring: int) -> mmap.mmap:
    """Map the segment with its pages populated: otherwise the first lap of each ring
    takes a page fault every 4 KiB on both sides, visible as a latency tail."""
    flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
    return mmap.mmap(fd, _segment_size(ring), flags=flags)


def _name_of(parsed: ParsedAddress, *, allow_empty: bool) -> str:
    """The name after ``shm://``, case kept (``ParsedAddress.host`` is lower-cased)."""
    rest = parsed.uri.split("://", 1)[1].split("?", 1)[0].split("#", 1)[0].strip("/")
    if not rest and allow_empty:
        return ""
    if not _NAME.fullmatch(rest):
        raise AddressError(
            f"{parsed.uri!r}: expected shm://NAME with NAME of 1-90 characters from [A-Za-z0-9._-]"
        )
    return rest


def _sockaddr(name: str) -> bytes:
    return b"\0" + (_PREFIX + name).encode()


_CREDS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def _check_peer_user(sock: socket.socket, what: str) -> None:
    """Refuse a peer of another user (root excepted: it can read our memory anyway).

    An abstract name has no file, so no mode keeps other users out: any local
    process could connect to our listener, or listen first under the name and
    receive a client's segment. The kernel's SO_PEERCRED says who is on the
    other side (for a listener, who called ``listen``).
    """
    _, uid, _ = _CREDS.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CREDS.size))
    if uid not in (os.geteuid(), 0):
        raise BrokenResourceError(f"{what}: the peer runs as uid {uid}, not as us; refused")


def _int_option(options: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    raw = options.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise AddressError(f"option {key}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise AddressError(f"option {key}={value} is outside {lo}..{hi}")
    return value


def _spin_of(options: dict[str, Any]) -> float:
    return _int_option(options, "spin_us", round(DEFAULT_SPIN * 1e6), 0, 100_000) / 1e6


def _close_fds(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class ShmStream(MessageStream):
    """One end of a connection: a writer on the outgoing ring, a reader on the incoming one.

    Each ring end has its own lock, so one thread may send while another
    receives; the socket is kept only to notice the peer closing or dying.
    """

    max_message_size = MAX_MESSAGE_SIZE

    def __init__(
        self,
        sock: socket.socket,
        mm: mmap.mmap,
        ring_size: int,
        efds: list[int],
        *,
        is_client: bool,
        spin: float = DEFAULT_SPIN,
    ) -> None:
        c2s_data, c2s_space, s2c_data, s2c_space = efds
        live = sock.fileno()
        c2s = (mm, _C2S_HEADER, _PAGE, ring_size)
        s2c = (mm, _S2C_HEADER, _PAGE + ring_size, ring_size)
        out, inc = (c2s, s2c) if is_client else (s2c, c2s)
        out_fds, in_fds = ((c2s_data, c2s_space), (s2c_data, s2c_space))
        if not is_client:
            out_fds, in_fds = in_fds, out_fds
        kw: dict[str, Any] = {"liveness_fd": live, "spin": spin, "max_message": MAX_MESSAGE_SIZE}
        self._writer = RingWriter(*out, data_efd=out_fds[0], space_efd=out_fds[1], **kw)
        self._reader = RingReader(*inc, data_efd=in_fds[0], space_efd=in_fds[1], **kw)
        self._sock = sock
        self._mm = mm
        self._efds = efds
        self._closed = False
        self.ring_size = ring_size

        # The ring ends' own methods serve the calls: a wrapper frame would cost about
        # a fifth of a message's Python time. The class methods below document them.
        self.send = self._writer.send  # type: ignore[method-assign]
        self.receive = self._reader.receive  # type: ignore[method-assign]

    @property
    def default_timeout(self) -> float:
        return self._writer.default_timeout

    @default_timeout.setter
    def default_timeout(self, value: float) -> None:
        self._writer.default_timeout = self._reader.default_timeout = value

    def send(self, message: bytes, *, timeout: float | None = None) -> None:
        self._writer.send(message, timeout=timeout)

    def receive(self, *, timeout: float | None = None) -> bytes:
        return self._reader.receive(timeout=timeout)

    def peer_gone(self) -> bool:
        """True once the peer closed or died, seen on the liveness socket without reading.

        Why: a proxy that stopped reading (backpressure) must still notice a peer
        that went away; the rings say nothing until read, the socket does.
        """
        if self._closed:
            return True
        try:
            return bool(hangup_events(self._sock.fileno()))
        except (OSError, ValueError):
            return True

    def send_eof(self) -> None:
        """Half-close: the peer receives what was sent, then :class:`EndOfStream`."""
        self._writer.send_eof(self.default_timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        reader, writer = self._reader, self._writer
        reader.abort()
        writer.abort()
        # Threads of ours blocked in send/receive wake on abort() and leave within a
        # poll slice; only then is it safe to unmap and to close the fds they poll.
        got_send = writer.lock.acquire(timeout=5.0)
        got_recv = reader.lock.acquire(timeout=5.0)
        try:
            for end in (writer, reader):  # flags first: the peer then sees a clean close
                try:
                    end.mark_closed()
                except OSError:
                    pass
        finally:
            self._sock.close()
            _close_fds(self._efds)
            try:
                self._mm.close()
            except BufferError:  # pragma: no cover - only if a thread is still copying
                pass
            if got_send:
                writer.lock.release()
            if got_recv:
                reader.lock.release()


HELLO_TIMEOUT = 5.0
"""How long an accepted client may take to send its hello (across accept calls)."""


class ShmListener(Listener[MessageStream]):
    """Accepts one :class:`ShmStream` per client on the abstract rendezvous socket."""

    def __init__(self, sock: socket.socket, address: str, spin: float) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.address = address
        self._spin = spin
        self._closed = False
        self._pending: list[tuple[socket.socket, float]] = []
        """Accepted connections whose hello has not arrived yet, with when they expire.

        Why: a client connected just before an accept call's deadline must not be
        dropped because *that call* ran out of time; its hello is awaited across calls
        (at most HELLO_TIMEOUT), and a silent client never holds up the others."""

    def accept(self, *, timeout: float | None = None) -> MessageStream:
        deadline = self._deadline(timeout)
        while True:
            if self._closed:
                raise ClosedResourceError("accept: listener is closed")
            stream = self._next_hello()
            if stream is not None:
                return stream
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                self._wait(deadline)
                continue
            except OSError as exc:
                if self._closed:
                    raise ClosedResourceError("accept: listener is closed") from exc
                raise translate_oserror(exc, "accept") from exc
            try:
                _check_peer_user(conn, "accept")
                conn.setblocking(False)
            except BaseException:
                conn.close()
                raise
            self._pending.append((conn, time.monotonic() + HELLO_TIMEOUT))

    def _wait(self, deadline: Deadline) -> None:
        """Until a connection or a hello arrives, a pending hello expires, or the deadline."""
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        left = deadline.remaining_or_zero()
        for conn, expires in self._pending:
            poller.register(conn.fileno(), select.POLLIN)
            left = min(left, max(0.0, expires - time.monotonic()))
        if not poller.poll(left * 1000.0) and deadline.remaining_or_zero() <= 0:
            raise TransportTimeout("accept timed out")

    def _next_hello(self) -> ShmStream | None:
        """The first pending connection whose hello has arrived, as a stream."""
        now = time.monotonic()
        for entry in list(self._pending):
            conn, expires = entry
            try:
                data, fds, _, _ = socket.recv_fds(conn, 64, _N_FDS + 1, socket.MSG_CMSG_CLOEXEC)
            except BlockingIOError:
                if now > expires:  # connected, never said hello: drop it, serve the others
                    self._pending.remove(entry)
                    conn.close()
                continue
            except OSError as exc:
                self._pending.remove(entry)
                conn.close()
                raise translate_oserror(exc, "accept (hello)") from exc
            self._pending.remove(entry)
            try:
                return self._from_hello(conn, data, fds)
            except BaseException:
                conn.close()
                raise
        return None

    def _from_hello(self, conn: socket.socket, data: bytes, fds: list[int]) -> ShmStream:
        """Check the client's hello (ring size, the memfd and the four eventfds) and map it."""
        try:
            if not data and not fds:
                raise BrokenResourceError("accept: client went away before its hello")
            if len(data) != _HELLO.size or len(fds) != _N_FDS:
                raise BrokenResourceError("accept: malformed hello from client")
            magic, ring, _ = _HELLO.unpack(data)
            if magic != _MAGIC or ring & (ring - 1) or not _MIN_RING <= ring <= _MAX_RING:
                raise BrokenResourceError("accept: client speaks another shm protocol")
            if os.fstat(fds[0]).st_size != _segment_size(ring):
                raise BrokenResourceError("accept: client's segment has the wrong size")
            mm = _map(fds[0], ring)
        except BaseException:
            _close_fds(fds)
            raise
        os.close(fds[0])
        return ShmStream(conn, mm, ring, list(fds[1:]), is_client=False, spin=self._spin)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for conn, _ in self._pending:
            conn.close()
        self._pending.clear()
        with contextlib.suppress(OSError):  # wakes a thread polling in accept at once
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _client(sock: socket.socket, ring: int, spin: float) -> ShmStream:
    """Create the segment and eventfds, hand them to the server, keep our own copies."""
    memfd = os.memfd_create("faultlab-shm", os.MFD_CLOEXEC)
    efds: list[int] = []
    mm: mmap.mmap | None = None
    try:
        os.ftruncate(memfd, _segment_size(ring))
        mm = _map(memfd, ring)
        for _ in range(4):
            efds.append(os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK))
        hello = _HELLO.pack(_MAGIC, ring, MAX_MESSAGE_SIZE)
        socket.send_fds(sock, [hello], [memfd, *efds])
    except BaseException as exc:
        _close_fds(efds)
        if mm is not None:
            mm.close()
        if isinstance(exc, OSError):
            raise translate_oserror(exc, "connect (hello)") from exc
        raise
    finally:
        os.close(memfd)  # the mapping and the fd in flight keep the memory alive
    sock.setblocking(False)
    return ShmStream(sock, mm, ring, efds, is_client=True, spin=spin)


class ShmTransport(Transport):
    scheme = "shm"
    description = "shared-memory rings (memfd) with eventfd wake-ups, abstract-socket rendezvous"
    capabilities = Capabilities.messages(
        "memfd shared-memory ring + eventfd",
        max_message_size=MAX_MESSAGE_SIZE,
        native_max=DEFAULT_RING_SIZE - 4,
    )

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        if reason is None and not (hasattr(os, "memfd_create") and hasattr(os, "eventfd")):
            reason = f"shm:// needs memfd_create and eventfd (Linux; Python {sys.version[:4]})"
        return reason

    def listen(self, address: str, **options: Any) -> Listener[MessageStream]:
        """Listen on ``shm://NAME``; ``shm://`` alone picks a fresh name."""
        parsed = self._parse(address)
        opts = {**parsed.options, **options}
        spin = _spin_of(opts)
        name = _name_of(parsed, allow_empty=True) or f"auto-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.bind(_sockaddr(name))
            sock.listen(512)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise AddressError(f"address in use: shm://{name}") from exc
            raise AddressError(f"cannot listen on shm://{name}: {exc}") from exc
        return ShmListener(sock, f"shm://{name}", spin)

    def connect(
        self, address: str, *, timeout: float | None = None, **options: Any
    ) -> MessageStream:
        """Connect; options (or ``?query``): ``ring_size`` bytes per direction, ``spin_us``."""
        parsed = self._parse(address)
        opts = {**parsed.options, **options}
        name = _name_of(parsed, allow_empty=False)
        ring = _int_option(opts, "ring_size", DEFAULT_RING_SIZE, _MIN_RING, _MAX_RING)
        if ring & (ring - 1):
            raise AddressError(f"option ring_size={ring} is not a power of two")
        spin = _spin_of(opts)
        deadline = Deadline.after(DEFAULT_TIMEOUT if timeout is None else timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            sock.settimeout(deadline.remaining())
            sock.connect(_sockaddr(name))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                raise BrokenResourceError(f"connect to {address}: nobody listens there") from exc
            raise translate_oserror(exc, f"connect to {address}") from exc
        try:
            _check_peer_user(sock, f"connect to {address}")  # before our segment is sent
            return _client(sock, ring, spin)
        except BaseException:
            sock.close()
            raise

    def example_address(self, tag: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]", "-", tag)[:40] or "x"
        return f"shm://{safe}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


register(ShmTransport())
