"""Process-wide owner of OS resources that outlive a file descriptor.

Socket files, FIFOs, shared-memory segments and message queues have names in
the file system or a kernel namespace; closing a descriptor does not remove
them. Each creator registers a remover here; it runs on close, and at
interpreter exit (normal exit and Ctrl-C) for anything still registered.
SIGKILL cannot be caught: for that, every name carries its owner's pid and
:func:`pid_alive` lets the next run sweep leftovers of dead owners.

Those names live in :func:`runtime_dir`, which must stay private to this user,
and what is created there is private whatever the umask (which only narrows
the mode asked for, and is process-wide so cannot be changed safely): files
via :func:`write_private`, socket modes via :func:`chmod_nofollow`.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import secrets
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from faultlab.errors import AddressError, UnsafeRuntimeDir

__all__ = [
    "Owner",
    "check_private_file",
    "chmod_nofollow",
    "pid_alive",
    "private_dir",
    "runtime_dir",
    "runtime_dir_path",
    "write_private",
]

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


def runtime_dir_path() -> Path:
    """Where :func:`runtime_dir` is, without creating or checking it: for telling whether
    a path lies there (a path elsewhere must not make faultlab touch its directory)."""
    base = os.environ.get("FAULTLAB_RUNTIME_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    root = Path(xdg) if xdg and os.path.isdir(xdg) else Path(tempfile.gettempdir())
    return root / f"faultlab-{os.getuid()}"


def runtime_dir() -> Path:
    """A private (0700) directory for named resources of this user, checked on every call.

    ``$FAULTLAB_RUNTIME_DIR`` if set, else ``$XDG_RUNTIME_DIR/faultlab-UID`` or
    ``/tmp/faultlab-UID``. In a shared /tmp another user can create that name
    first, so the same checks apply to all three: see :func:`private_dir`.
    """
    return private_dir(runtime_dir_path(), parents=True)


def _owner_name(uid: int) -> str:
    try:
        import pwd

        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except (ImportError, KeyError):
        return f"uid {uid}"


_FIX = "remove it, or set FAULTLAB_RUNTIME_DIR to a directory of your own"


def private_dir(path: Path, *, parents: bool = False) -> Path:
    """Create ``path`` 0700, or make sure the existing one is ours and 0700.

    The directory is opened with O_NOFOLLOW and checked through that descriptor
    (no window between check and use). A symlink, a non-directory, or a
    directory owned by another user raises :class:`UnsafeRuntimeDir`: nothing
    is written into it. One of ours that is too open (an older version, a
    chmod) is tightened with fchmod rather than refused: only its owner (us)
    can have loosened it, and nothing written into it trusts what is already
    there (files are replaced via O_EXCL temporaries, sockets are only removed
    when stale, the TLS files are checked before use).
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except FileNotFoundError:
        if not parents:
            raise
        for parent in reversed([p for p in path.parents if not os.path.lexists(p)]):
            with contextlib.suppress(FileExistsError):
                os.mkdir(parent, 0o700)  # parents we create are private too
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafeRuntimeDir(
                f"faultlab runtime directory {str(path)!r} is a symbolic link (to "
                f"{os.readlink(path)!r}), which another user may have planted; {_FIX}"
            ) from exc
        if exc.errno == errno.ENOTDIR:
            raise UnsafeRuntimeDir(
                f"faultlab runtime directory {str(path)!r} exists and is not a directory; {_FIX}"
            ) from exc
        raise AddressError(f"cannot open faultlab runtime directory {str(path)!r}: {exc}") from exc
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():  # what we create is owned by the effective uid
            raise UnsafeRuntimeDir(
                f"faultlab runtime directory {str(path)!r} is owned by "
                f"{_owner_name(st.st_uid)}, not by you ({_owner_name(os.geteuid())}): "
                f"that user could read keys or replace sockets there; {_FIX}"
            )
        if stat.S_IMODE(st.st_mode) != 0o700:
            os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Atomically replace ``path`` with a new file holding ``data``, mode ``mode``.

    The temporary is created with O_EXCL|O_NOFOLLOW under a random name (a
    planted file or symlink is never followed or reused) and fchmod'ed, so the
    mode does not depend on the umask; readers never see a partial file.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_private_file(path: Path, mode: int = 0o600) -> bool:
    """True if ``path`` is a regular file of ours, after fixing its mode to ``mode``.

    False (missing, a symlink, not a regular file, another user's): the caller
    replaces it. A file of ours with another mode (0644 from an older version)
    is fchmod'ed, not trusted as is.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return False
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
        return True
    finally:
        os.close(fd)


def chmod_nofollow(path: str, mode: int, is_kind: Callable[[int], bool]) -> None:
    """chmod a file we just created (a socket, a FIFO) without following a symlink.

    Linux has no lchmod and fchmod on a socket changes the socket, not its file:
    so open the name with O_PATH|O_NOFOLLOW, check it is of the expected kind and
    ours, and chmod through ``/proc/self/fd``. A name swapped for something else
    in between raises :class:`UnsafeRuntimeDir` instead of changing it.
    """
    if not hasattr(os, "O_PATH"):  # macOS: lchmod exists
        os.chmod(path, mode, follow_symlinks=False)
        return
    fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not is_kind(st.st_mode) or st.st_uid != os.geteuid():
            raise UnsafeRuntimeDir(f"{path!r} was replaced after we created it; not changing it")
        try:
            os.chmod(f"/proc/self/fd/{fd}", mode)
        except FileNotFoundError:  # no /proc: the checked name, as close as we can get
            os.chmod(path, mode)
    finally:
        os.close(fd)
