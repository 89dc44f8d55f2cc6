"""Process-wide owner of OS resources that outlive a file descriptor.

Socket files, FIFOs, shared-memory segments and message queues have names in
the file system or a kernel namespace; closing a descriptor does not remove
them. Each creator registers a remover here; it runs on close, and at
interpreter exit (normal exit and Ctrl-C) for anything still registered.
SIGKILL cannot be caught: for that, every name carries its owner's pid and
:func:`pid_alive` lets the next run sweep leftovers of dead owners.
"""

from __future__ import annotations

import atexit
import errno
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["Owner", "pid_alive", "runtime_dir"]

_lock = threading.Lock()
_pending: dict[int, Callable[[], None]] = {}
_next = 0


class Owner:
    """A handle for one registered remover; :meth:`release` runs it at most once."""

    def __init__(self, remove: Callable[[], None]) -> None:
        global _next
        with _lock:
            _next += 1
            self._key = _next
            _pending[self._key] = remove

    def release(self) -> None:
        with _lock:
            remove = _pending.pop(self._key, None)
        if remove is not None:
            remove()

    def forget(self) -> None:
        """Drop the remover without running it (ownership passed elsewhere)."""
        with _lock:
            _pending.pop(self._key, None)


@atexit.register
def _run_all() -> None:
    with _lock:
        removers = list(_pending.values())
        _pending.clear()
    for remove in reversed(removers):
        try:
            remove()
        except Exception:
            continue


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (EPERM still means it exists)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def runtime_dir() -> Path:
    """A private (0700) directory for named resources of this user."""
    base = os.environ.get("FAULTLAB_RUNTIME_DIR")
    if base:
        path = Path(base)
    else:
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        root = Path(xdg) if xdg and os.path.isdir(xdg) else Path(tempfile.gettempdir())
        path = root / f"faultlab-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
