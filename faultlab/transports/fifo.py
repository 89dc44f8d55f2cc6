"""``fifo:///dir/name``: POSIX named pipes, one FIFO pair per connection.

Rendezvous: the listener owns the FIFO ``/dir/name`` and ``/dir/name.lock``
(flock-held, naming its pid). A client creates ``name.<pid>.<token>.c2s`` and
``.s2c``, opens its ends and writes a one-line request (< PIPE_BUF, so atomic)
into the rendezvous FIFO. ``accept`` opens the other ends, unlinks the pair and
writes a 4-byte ack (its pid) into ``s2c`` ahead of any data.

Until that ack the client writes ``c2s`` through an O_RDWR fd, which Linux opens
without a reader, so ``connect`` never waits for ``accept`` (like a socket
backlog). The ack swaps it, under the same fd number, for a write-only fd, so a
dead reader gives EPIPE. A dead writer gives EOF; both sides also look at the
peer's pidfd between bounded poll slices, so even a pipe end leaked into a
forked child cannot hang a wait.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import re
import secrets
import select
import stat
import struct
import threading
import time
import uuid
from typing import Any

from faultlab._cleanup import Owner, chmod_nofollow, pid_alive, runtime_dir
from faultlab.errors import (
    AddressError,
    BrokenResourceError,
    ClosedResourceError,
    EndOfStream,
    TransportError,
)
from faultlab.streams import DEFAULT_TIMEOUT, ByteStream, Listener
from faultlab.transports import register
from faultlab.transports._fdio import (
    SLICE,
    PeerWatch,
    PidLock,
    close_quietly,
    end_time,
    hangup_events,
    lock_holder,
    poll_until,
    sweep_stale_lock,
    wait_ready,
)
from faultlab.transports._sockets import translate_oserror
from faultlab.transports.base import Capabilities, ParsedAddress, Transport

__all__ = ["FifoListener", "FifoStream", "FifoTransport"]

_F_SETPIPE_SZ = 1031
_PIPE_SIZE = 1 << 20  # measured: 1 MiB pipes keep bulk transfer fast across CPUs
_REQUEST = re.compile(rb"FLFIFO1 ([1-9][0-9]{0,9}) ([0-9a-f]{16})")
_ACK = struct.Struct("<i")
_READ_MAX = 1 << 16  # a larger read buffer is mmap'd per call: 19 us for a 1 MiB read
_SLICE_MS = SLICE * 1000.0
_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT


def _fifo_path(parsed: ParsedAddress) -> str:
    path = parsed.path
    if parsed.host or not path.startswith("/") or path.endswith("/"):
        raise AddressError(f"{parsed.uri!r}: use fifo:///absolute/path/name")
    if "\0" in path or len(os.path.basename(path).encode()) > 200:
        raise AddressError(f"{parsed.uri!r}: bad or too long file name")
    if not os.path.isdir(os.path.dirname(path)):
        raise AddressError(f"{parsed.uri!r}: directory {os.path.dirname(path)!r} does not exist")
    return path


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _open_fifo(path: str, flags: int) -> int:
    """Open a FIFO non-blocking; refuse anything that is not one."""
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOFOLLOW)
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{path!r} is not a FIFO")
    return fd


def _grow_pipe(fd: int) -> None:
    with contextlib.suppress(OSError):  # over the per-user pipe quota: keep the default
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)


def _pair_names(path: str, pid: int, token: str) -> tuple[str, str]:
    base = f"{path}.{pid}.{token}"
    return base + ".c2s", base + ".s2c"


class _Pending:
    """Client state until the server's ack: the pair names are still ours to remove."""

    def __init__(self, owner: Owner, rfd: int) -> None:
        self.lock = threading.Lock()
        self.owner = owner
        # A FIFO no writer has opened yet reads as EOF, so ask poll first: it
        # reports nothing until the server opened s2c (ack) or came and went (reject).
        self.ack_poll = select.poll()
        self.ack_poll.register(rfd, _POLLIN)
        self.wrote = False
        self.eof_wanted = False


class FifoStream(ByteStream):
    """One connection: read ``rfd``, write ``wfd``, watch the peer process."""

    def __init__(
        self, rfd: int, wfd: int, peer: PeerWatch, pending: _Pending | None = None
    ) -> None:
        self._rfd = rfd
        self._wfd = wfd
        self._peer = peer
        self._pending = pending
        self._closed = False
        self._eof_sent = False
        self._rpoll = select.poll()
        self._rpoll.register(rfd, _POLLIN)
        self._wpoll = select.poll()
        self._wpoll.register(wfd, _POLLOUT)

    # -- data -----------------------------------------------------------------

    def send(self, data: bytes, *, timeout: float | None = None) -> None:
        if self._closed or self._eof_sent:
            raise ClosedResourceError("send: stream is closed for sending")
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be >= 0, got {timeout!r}")
        if not data:
            return
        if self._pending is not None:
            self._pending.wrote = True
            self._try_complete()
        try:
            sent = os.write(self._wfd, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            raise self._error(exc, "send") from exc
        if sent < len(data):
            self._send_rest(memoryview(data)[sent:], end_time(timeout, self.default_timeout))

    def _send_rest(self, view: memoryview, end: float) -> None:
        while view:
            wait_ready(self._wpoll, end, self._peer, "send")
            if self._closed:
                raise ClosedResourceError("send: stream is closed")
            try:
                view = view[os.write(self._wfd, view) :]
            except BlockingIOError:
                continue
            except OSError as exc:
                raise self._error(exc, "send") from exc

    def receive(self, max_bytes: int = 65536, *, timeout: float | None = None) -> bytes:
        if self._closed:
            raise ClosedResourceError("receive: stream is closed")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        t = self.default_timeout if timeout is None else timeout
        if self._pending is None and t >= SLICE:
            # Hot path, kept flat on purpose (each call or clock read here is ~0.1 us
            # of a ~7 us round trip): one poll slice, one read.
            if self._rpoll.poll(_SLICE_MS):
                try:
                    data = os.read(self._rfd, max_bytes if max_bytes < _READ_MAX else _READ_MAX)
                except BlockingIOError:  # another thread took it
                    data = None
                except OSError as exc:
                    raise self._error(exc, "receive") from exc
                if data:
                    return data
                if data is not None:
                    raise EndOfStream("peer closed the stream")
            end = time.monotonic() + t - SLICE
        else:
            end = end_time(timeout, self.default_timeout)
        return self._receive_slow(max_bytes, end)

    def _receive_slow(self, max_bytes: int, end: float) -> bytes:
        while True:
            if self._closed:
                raise ClosedResourceError("receive: stream is closed")
            wait_ready(self._rpoll, end, self._peer, "receive")
            if self._pending is not None:
                self._try_complete()  # the ack comes first: never read it as data
                continue
            try:
                data = os.read(self._rfd, min(max_bytes, _READ_MAX))
            except BlockingIOError:
                continue
            except OSError as exc:
                raise self._error(exc, "receive") from exc
            if not data:
                raise EndOfStream("peer closed the stream")
            return data

    def send_eof(self) -> None:
        if self._closed:
            raise ClosedResourceError("send_eof: stream is closed")
        if self._eof_sent:
            return
        self._eof_sent = True
        pending = self._pending
        if pending is not None:
            with pending.lock:
                if self._pending is not None:
                    pending.eof_wanted = True  # the writer closes when the ack arrives
                    if not self._complete_locked():
                        self._complete_in_background()
                    return
        self._drop_writer()

    def _drop_writer(self) -> None:
        """Close our write end but keep the fd number valid (no reuse under a racing send)."""
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, self._wfd, inheritable=False)
        finally:
            os.close(null)

    # -- pending client -------------------------------------------------------

    def _try_complete(self) -> bool:
        """Consume the server's ack if it has arrived; True if it just did."""
        pending = self._pending
        if pending is None:
            return False
        with pending.lock:
            if self._pending is None or self._closed:
                return False
            return self._complete_locked()

    def _complete_in_background(self) -> None:
        """Finish the handshake without a caller (half-closed before accept).

        Closing c2s before the server opened it would discard what we wrote, so
        the EOF must wait for the ack; the caller may never read to see it.
        """

        def run() -> None:
            poller = select.poll()
            poller.register(self._rfd, _POLLIN)
            end = time.monotonic() + self.default_timeout
            with contextlib.suppress(TransportError):
                while self._pending is not None and not self._closed:
                    wait_ready(poller, end, self._peer, "connect")
                    self._try_complete()

        threading.Thread(target=run, name="faultlab-fifo-eof", daemon=True).start()

    def _complete_locked(self) -> bool:
        assert self._pending is not None
        if not self._pending.ack_poll.poll(0):
            return False
        try:
            ack = os.read(self._rfd, _ACK.size)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise self._error(exc, "connect") from exc
        if len(ack) != _ACK.size:
            raise BrokenResourceError("the server closed before accepting this connection")
        writer = os.open(f"/proc/self/fd/{self._wfd}", os.O_WRONLY | os.O_NONBLOCK)
        try:
            os.dup2(writer, self._wfd, inheritable=False)  # drop our read side of c2s
        finally:
            os.close(writer)
        pending, self._pending = self._pending, None
        pending.owner.release()  # the server unlinked the pair already; this is a no-op
        self._peer.watch(_ACK.unpack(ack)[0])
        if pending.eof_wanted:
            self._drop_writer()
        return True

    # -- errors and close ------------------------------------------------------

    def _error(self, exc: OSError, what: str) -> TransportError:
        if self._closed:
            return ClosedResourceError(f"{what}: stream is closed")
        return translate_oserror(exc, what)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        pending = self._pending
        if pending is not None:
            with pending.lock:
                if self._pending is not None and self._close_pending(pending):
                    return
        close_quietly(self._rfd, self._wfd)
        self._peer.close()

    def _close_pending(self, pending: _Pending) -> bool:
        """Close before the ack; True if the fds are dealt with here."""
        with contextlib.suppress(TransportError):
            if self._complete_locked():
                return False
        if not (pending.wrote or pending.eof_wanted):
            close_quietly(self._rfd, self._wfd)
            self._peer.close()
            pending.owner.release()
            return True
        # Data sits in c2s: closing now would discard it, so wait for accept elsewhere.
        thread = threading.Thread(
            target=_linger,
            args=(self._rfd, self._wfd, self._peer, pending.owner, self.default_timeout),
            daemon=True,
        )
        thread.start()
        return True

    def fileno(self) -> int:
        return self._rfd

    def peer_gone(self) -> bool:
        """True once the peer closed both its ends or exited, seen without reading.

        Why: a proxy that stopped reading (backpressure) must still notice a client
        that went away. A half-close (the peer's write end only) is not "gone": our
        read end reports POLLHUP, but our write end reports POLLERR only once the
        peer's read end is closed as well.
        """
        if self._closed or self._peer.exited():
            return True
        if self._pending is not None:
            return False
        return bool(hangup_events(self._rfd) & select.POLLHUP) and bool(
            hangup_events(self._wfd) & select.POLLERR
        )


def _linger(rfd: int, wfd: int, peer: PeerWatch, owner: Owner, timeout: float) -> None:
    """Keep a closed, unaccepted client's pipes until the server accepts or gives up."""
    poller = select.poll()
    poller.register(rfd, _POLLIN)
    with contextlib.suppress(TransportError):
        wait_ready(poller, end_time(timeout, timeout), peer, "linger")
    close_quietly(rfd, wfd)
    peer.close()
    owner.release()


def _dead_stream() -> FifoStream:
    """A stream for a client that left before accept: EOF on receive, EPIPE on send."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    close_quietly(w1, r2)
    os.set_blocking(r1, False)
    os.set_blocking(w2, False)
    return FifoStream(r1, w2, PeerWatch())


# -- client -----------------------------------------------------------------------


def _write_request(path: str, request: bytes, end: float, peer: PeerWatch) -> None:
    """Write one atomic request into the rendezvous FIFO of a live listener."""
    try:
        fd = _open_fifo(path, os.O_WRONLY)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENOENT):
            raise BrokenResourceError(f"no server listening on fifo://{path}") from exc
        raise AddressError(f"cannot connect to fifo://{path}: {exc}") from exc
    try:
        poller = select.poll()
        poller.register(fd, _POLLOUT)
        while True:
            try:
                os.write(fd, request)
                return
            except BlockingIOError:  # the rendezvous is full of requests: wait
                wait_ready(poller, end, peer, f"connect to fifo://{path}")
            except OSError as exc:
                raise translate_oserror(exc, f"connect to fifo://{path}") from exc
    finally:
        os.close(fd)


def _make_pair(c2s: str, s2c: str) -> tuple[int, int]:
    """Create the pair and open our ends: s2c for reading, c2s O_RDWR.

    Linux opens a FIFO O_RDWR without waiting for a reader, so the client can
    write before the server accepts, the way a socket can before ``accept``.
    """
    rfd = wfd = None
    try:
        for name in (c2s, s2c):
            os.mkfifo(name, 0o600)
            chmod_nofollow(name, 0o600, stat.S_ISFIFO)  # exactly 0600, whatever the umask
        rfd = _open_fifo(s2c, os.O_RDONLY)
        wfd = _open_fifo(c2s, os.O_RDWR)
    except OSError as exc:
        close_quietly(rfd, wfd)
        raise AddressError(f"cannot create FIFOs {c2s!r}: {exc}") from exc
    _grow_pipe(rfd)
    _grow_pipe(wfd)
    return rfd, wfd


def connect_fifo(path: str, timeout: float) -> FifoStream:
    end = end_time(timeout, timeout)
    if not os.path.exists(path):
        raise BrokenResourceError(f"no server listening on fifo://{path}")
    server_pid = lock_holder(path + ".lock")
    token = secrets.token_hex(8)
    c2s, s2c = _pair_names(path, os.getpid(), token)

    def remove() -> None:
        _unlink_quietly(c2s)
        _unlink_quietly(s2c)

    owner = Owner(remove)
    peer = PeerWatch()
    rfd = wfd = None
    try:
        rfd, wfd = _make_pair(c2s, s2c)
        if server_pid is not None:
            peer.watch(server_pid)
        request = b"FLFIFO1 %d %s\n" % (os.getpid(), token.encode())
        _write_request(path, request, end, peer)
    except BaseException:
        close_quietly(rfd, wfd)
        peer.close()
        owner.release()
        raise
    return FifoStream(rfd, wfd, peer, _Pending(owner, rfd))


# -- server -----------------------------------------------------------------------


class FifoListener(Listener[ByteStream]):
    """Owns the rendezvous FIFO; each request becomes one FIFO-pair stream."""

    def __init__(self, path: str, address: str) -> None:
        self.address = address
        self._path = path
        self._buffer = b""
        self._closed = False
        self._accept_lock = threading.Lock()
        _refuse_non_fifo(path)
        _sweep_stale(os.path.dirname(path))
        lock = PidLock.acquire(path + ".lock", address)
        try:
            self._rfd, self._dummy, ino = _make_rendezvous(path)
        except BaseException:
            lock.release()
            raise

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(path).st_ino == ino:  # never remove a successor's FIFO
                    os.unlink(path)
            lock.release()

        self._owner = Owner(remove)

    def accept(self, *, timeout: float | None = None) -> ByteStream:
        end = end_time(timeout, self.default_timeout)
        with self._accept_lock:
            while True:
                if self._closed:
                    raise ClosedResourceError("accept: listener is closed")
                request = self._next_request(end)
                if request is not None:
                    return self._open_pair(*request)

    def _next_request(self, end: float) -> tuple[int, str] | None:
        """The next well-formed request, or None for garbage; waits until ``end``."""
        while b"\n" not in self._buffer:
            try:
                chunk = os.read(self._rfd, 65536)
            except BlockingIOError:
                poller = select.poll()
                poller.register(self._rfd, _POLLIN)
                poll_until(poller, end, "accept")
                if self._closed:
                    raise ClosedResourceError("accept: listener is closed") from None
                continue
            except OSError as exc:
                if self._closed:
                    raise ClosedResourceError("accept: listener is closed") from exc
                raise translate_oserror(exc, "accept") from exc
            self._buffer = (self._buffer + chunk)[-65536:]
        line, self._buffer = self._buffer.split(b"\n", 1)
        match = _REQUEST.fullmatch(line)
        if match is None:
            return None
        return int(match.group(1)), match.group(2).decode()

    def _open_pair(self, pid: int, token: str) -> FifoStream:
        """Open the client's pair; a client that already left gets a dead stream."""
        c2s, s2c = _pair_names(self._path, pid, token)
        peer = PeerWatch(pid)
        rfd = wfd = None
        try:
            rfd = _open_fifo(c2s, os.O_RDONLY)
            wfd = _open_fifo(s2c, os.O_WRONLY)  # ENXIO: the client closed its read end
            os.write(wfd, _ACK.pack(os.getpid()))
        except OSError:
            close_quietly(rfd, wfd)
            peer.close()
            if not pid_alive(pid):
                _unlink_quietly(c2s)
                _unlink_quietly(s2c)
            return _dead_stream()
        _unlink_quietly(c2s)
        _unlink_quietly(s2c)
        return FifoStream(rfd, wfd, peer)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)  # no new client can find us
        self._reject_waiting()
        with contextlib.suppress(OSError):
            os.write(self._dummy, b"\n")  # wake an accept() blocked in poll
        close_quietly(self._rfd, self._dummy)
        self._owner.release()

    def _reject_waiting(self) -> None:
        """Clients that wrote a request see EOF instead of waiting for their timeout."""
        with contextlib.suppress(OSError):
            while True:
                chunk = os.read(self._rfd, 65536)
                self._buffer += chunk
        for line in self._buffer.split(b"\n"):
            match = _REQUEST.fullmatch(line)
            if match is None:
                continue
            _, s2c = _pair_names(self._path, int(match.group(1)), match.group(2).decode())
            with contextlib.suppress(OSError):
                os.close(_open_fifo(s2c, os.O_WRONLY))
        self._buffer = b""


def _refuse_non_fifo(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISFIFO(st.st_mode):
        raise AddressError(f"{path!r} exists and is not a FIFO; refusing to remove it")


def _make_rendezvous(path: str) -> tuple[int, int, int]:
    """Replace a stale FIFO (we hold the lock) and open it: reader plus a dummy writer.

    The dummy writer keeps the reader from seeing EOF (and poll from spinning on
    POLLHUP) whenever no client happens to be connected.
    """
    _refuse_non_fifo(path)
    _unlink_quietly(path)
    try:
        os.mkfifo(path, 0o600)
        chmod_nofollow(path, 0o600, stat.S_ISFIFO)  # exactly 0600, whatever the umask
        rfd = _open_fifo(path, os.O_RDONLY)
    except OSError as exc:
        raise AddressError(f"cannot listen on fifo://{path}: {exc}") from exc
    try:
        dummy = _open_fifo(path, os.O_WRONLY)
    except OSError as exc:
        os.close(rfd)
        raise AddressError(f"cannot listen on fifo://{path}: {exc}") from exc
    return rfd, dummy, os.fstat(rfd).st_ino


_PAIR = re.compile(r".+\.([0-9]+)\.[0-9a-f]{16}\.(?:c2s|s2c)")


def _sweep_stale(directory: str) -> None:
    """Remove what crashed runs left in ``directory``; never a live owner's.

    A pair FIFO names its creator's pid: removed once that pid is dead. A
    rendezvous FIFO has a ``.lock`` beside it: removed with it once nobody
    holds the lock and the pid written in it is dead.
    """
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        names = {entry.name: entry for entry in entries}
    for name, entry in names.items():
        pair = _PAIR.fullmatch(name)
        if pair is not None and not pid_alive(int(pair.group(1))) and _is_fifo(entry):
            _unlink_quietly(entry.path)
        elif name.endswith(".lock") and name[:-5] in names and _is_fifo(names[name[:-5]]):
            holder = lock_holder(entry.path)
            if holder is not None and not pid_alive(holder):
                fifo = names[name[:-5]].path
                sweep_stale_lock(entry.path, functools.partial(_unlink_if_fifo, fifo))


def _is_fifo(entry: os.DirEntry[str]) -> bool:
    try:
        return stat.S_ISFIFO(entry.stat(follow_symlinks=False).st_mode)
    except OSError:
        return False


def _unlink_if_fifo(path: str) -> None:
    with contextlib.suppress(OSError):
        if stat.S_ISFIFO(os.lstat(path).st_mode):
            os.unlink(path)


class FifoTransport(Transport):
    scheme = "fifo"
    description = "POSIX named pipes (mkfifo), one FIFO pair per connection"
    capabilities = Capabilities.byte_stream("named pipe pair + rendezvous FIFO, pidfd peer watch")
    platforms = ("linux",)

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        if reason is None and not hasattr(os, "pidfd_open"):
            return "fifo:// needs os.pidfd_open (Linux 5.3+)"
        return reason

    def listen(self, address: str, **options: Any) -> Listener[ByteStream]:
        path = _fifo_path(self._parse(address))
        return FifoListener(path, f"fifo://{path}")

    def connect(self, address: str, *, timeout: float | None = None, **options: Any) -> ByteStream:
        path = _fifo_path(self._parse(address))
        return connect_fifo(path, DEFAULT_TIMEOUT if timeout is None else timeout)

    def example_address(self, tag: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", tag)[:40]
        return f"fifo://{runtime_dir()}/{safe}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


register(FifoTransport())
