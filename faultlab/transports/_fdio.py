"""Shared machinery for the fd-based transports that are not sockets (fifo, mq).

Every wait is bounded by an absolute monotonic end time, so a loop of partial
operations shares one budget, and is cut into slices of at most :data:`SLICE`
seconds. Between slices we look at the peer's pidfd, so a SIGKILLed peer is
reported within one slice even when its pipe end or queue outlives it (leaked
into a forked child, or a queue nobody else closes). The pidfd stays out of the
hot wait on purpose: polling it with every wait costs about 0.5 us per round
trip (measured), a third of the whole budget over raw syscalls.

Lock files are ``flock``-held and name their owner's pid, so a second owner and
the stale sweeper can tell a live owner from a crashed one without racing it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import time
from collections.abc import Callable

from faultlab._cleanup import pid_alive
from faultlab.errors import AddressError, BrokenResourceError, TransportTimeout

__all__ = [
    "SLICE",
    "PeerWatch",
    "PidLock",
    "close_quietly",
    "end_time",
    "exited_fd",
    "hangup_events",
    "lock_holder",
    "open_pidfd",
    "poll_until",
    "sweep_stale_lock",
    "wait_ready",
]

SLICE = 0.05
"""Longest single kernel wait (s): how late a dead peer or a close is noticed."""

_MAX_POLL_MS = float(1 << 30)  # poll() takes an int of milliseconds; wait longer in steps


def end_time(timeout: float | None, default: float) -> float:
    """Absolute monotonic end of a call; ``timeout=None`` means the stream's default."""
    t = default if timeout is None else timeout
    if not t >= 0:  # also rejects NaN
        raise ValueError(f"timeout must be >= 0, got {t!r}")
    return time.monotonic() + t


def poll_until(poller: select.poll, end: float, what: str) -> list[tuple[int, int]]:
    """Poll until something is ready; :class:`TransportTimeout` once ``end`` passed."""
    while True:
        left = end - time.monotonic()
        ready = poller.poll(min(left * 1000.0, _MAX_POLL_MS) if left > 0 else 0)
        if ready:
            return ready
        if left <= 0 or time.monotonic() >= end:
            raise TransportTimeout(f"{what} timed out")


def wait_ready(
    poller: select.poll, end: float, peer: PeerWatch, what: str
) -> list[tuple[int, int]]:
    """Poll in slices until ready; raise if the peer exits or ``end`` passes.

    Data that arrived before the peer died is still reported ready first.
    """
    while True:
        left = end - time.monotonic()
        ready = poller.poll(min(left, SLICE) * 1000.0 if left > 0 else 0)
        if ready:
            return ready
        if peer.exited():
            raise BrokenResourceError(f"{what}: peer process exited")
        if left <= 0:
            raise TransportTimeout(f"{what} timed out")


class PeerWatch:
    """The peer process, through a pidfd looked at between bounded waits."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid: int | None = None
        self.fd: int | None = None
        if pid is not None:
            self.watch(pid)

    def watch(self, pid: int) -> None:
        """Watch ``pid`` instead (no-op for our own process or the same pid)."""
        if pid == self.pid:
            return
        fd = open_pidfd(pid)
        if fd is None:
            return
        old, self.fd, self.pid = self.fd, fd, pid
        close_quietly(old)

    def exited(self) -> bool:
        fd = self.fd
        if fd is None:
            return False
        try:  # select, not a shared poll object: safe from several threads at once
            return bool(select.select([fd], [], [], 0)[0])
        except (OSError, ValueError):  # closed under us
            return False

    def close(self) -> None:
        fd, self.fd = self.fd, None
        close_quietly(fd)


def hangup_events(fd: int) -> int:
    """POLLHUP/POLLERR bits pending on ``fd`` now, without reading (or POLLNVAL if closed).

    Why: a reader that paused for backpressure must still see a peer that left.
    """
    poller = select.poll()
    poller.register(fd, 0)  # POLLHUP, POLLERR and POLLNVAL are always reported
    events = 0
    for _fd, revents in poller.poll(0):
        events |= revents
    return events & (select.POLLHUP | select.POLLERR | select.POLLNVAL)


def open_pidfd(pid: int) -> int | None:
    """An fd that turns readable when ``pid`` exits (None for our own process).

    A peer already gone gets a permanently readable fd instead, so callers need
    no second code path for "died before we looked".
    """
    if pid == os.getpid():
        return None
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return exited_fd()


def exited_fd() -> int:
    """An always-readable fd standing for a peer that has already exited."""
    return os.eventfd(1, os.EFD_CLOEXEC)


def close_quietly(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None and fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def lock_holder(path: str) -> int | None:
    """The pid written in a lock file, if any (no locking: clients only read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        return _read_pid(fd)
    finally:
        os.close(fd)


def _same_file(path: str, fd: int) -> bool:
    try:
        return os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


class PidLock:
    """An exclusively flock-held file naming its owner: held means a live owner."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def acquire(cls, path: str, what: str) -> PidLock:
        """Take the lock or raise :class:`AddressError` naming the live owner."""
        for _ in range(100):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                raise AddressError(f"cannot create lock file {path!r}: {exc}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                if holder is not None and pid_alive(holder):
                    raise AddressError(f"address in use: {what} (server pid {holder})") from None
                time.sleep(0.005)  # a starting owner or a sweeper holds it for an instant
                continue
            if not _same_file(path, fd):  # swept between our open and flock: retry
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return cls(path, fd)
        raise AddressError(f"address in use: {what} (its lock file stays held)")

    def release(self) -> None:
        """Remove the file (if still ours) and drop the lock; idempotent."""
        if self._fd < 0:
            return
        if _same_file(self.path, self._fd):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self._fd)
        self._fd = -1


def sweep_stale_lock(path: str, remove: Callable[[], None]) -> bool:
    """If nobody holds the lock at ``path``, run ``remove`` and delete it.

    ``remove`` runs while we hold the lock, so a new owner of the same name
    cannot create its resource until the leftover is gone.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise
        if not _same_file(path, fd):
            return False
        remove()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return True
    finally:
        os.close(fd)
