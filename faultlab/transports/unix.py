"""``unix:///path`` or ``unix://@name``: AF_UNIX SOCK_STREAM, path or Linux abstract name.

A path listener removes its socket file on close and at exit. A socket file
left by a crashed run is removed only after a connect to it is refused, so a
live server's socket is never stolen: the one at the address asked for, and, for
a listener in faultlab's runtime directory, every file there named by
``example_address`` whose creator's pid is dead (:func:`sweep_stale_sockets`).
The socket file is 0600 (only our user may connect) whatever the umask, unless
``?mode=0660`` (or ``mode=0o660``) asks for another; an abstract name has no
file and no access control.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import stat
import time
import uuid
from typing import Any

from faultlab._cleanup import Owner, chmod_nofollow, pid_alive, runtime_dir, runtime_dir_path
from faultlab.errors import AddressError
from faultlab.streams import ByteStream, Deadline, Listener
from faultlab.transports import register
from faultlab.transports._sockets import SocketByteStream, SocketListener, translate_oserror
from faultlab.transports.base import Capabilities, ParsedAddress, Transport

__all__ = [
    "UnixTransport",
    "bind_unix",
    "connect_unix",
    "socket_mode",
    "sweep_stale_sockets",
    "unix_sockaddr",
]


def unix_sockaddr(parsed: ParsedAddress) -> str | bytes:
    """``@name`` becomes an abstract address (leading NUL); else a filesystem path."""
    path = parsed.path
    if parsed.host and not path.startswith("@"):
        raise AddressError(f"{parsed.uri!r}: use {parsed.scheme}:///absolute/path or @name")
    if not path:
        raise AddressError(f"{parsed.uri!r} has no path")
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    if len(path.encode()) > 107:
        raise AddressError(f"socket path too long (max 107 bytes): {path!r}")
    return path


def _remove_if_stale(path: str, kind: int) -> None:
    """Unlink a socket file nobody listens on; refuse to touch anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise AddressError(f"{path!r} exists and is not a socket; refusing to remove it")
    probe = socket.socket(socket.AF_UNIX, kind)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            os.unlink(path)
            return
        raise AddressError(f"cannot check socket {path!r}: {exc}") from exc
    finally:
        probe.close()
    raise AddressError(f"address in use: a live server listens on {path!r}")


_EXAMPLE_NAME = re.compile(r".+-([0-9]+)-[0-9a-f]{8}\.sock")
"""What :meth:`UnixTransport.example_address` names: ``tag-PID-token.sock``."""
STALE_AGE = 10.0
"""Seconds a socket file must be old before a sweep may judge it (one just bound and not yet
listening refuses connections too)."""


def sweep_stale_sockets(directory: str) -> int:
    """Remove socket files in faultlab's runtime ``directory`` left by runs that were killed:
    named as :meth:`UnixTransport.example_address` names them, their creator's pid dead, at
    least :data:`STALE_AGE` s old, and refusing a connection (so no live listener's file is
    ever taken, whoever holds it now). Returns how many were removed."""
    removed = 0
    now = time.time()
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            match = _EXAMPLE_NAME.fullmatch(entry.name)
            if match is None or pid_alive(int(match.group(1))):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISSOCK(st.st_mode) or now - st.st_mtime < STALE_AGE:
                continue
            if _refuses(entry.path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def _refuses(path: str) -> bool:
    """Whether nobody listens on the socket file ``path`` (stream or datagram)."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
        probe = socket.socket(socket.AF_UNIX, kind)
        try:
            probe.connect(path)
        except OSError as exc:
            if exc.errno == errno.EPROTOTYPE:
                continue  # another socket type: ask it with its own
            return exc.errno == errno.ECONNREFUSED
        finally:
            probe.close()
        return False
    return False


def socket_mode(parsed: ParsedAddress, mode: object = None) -> int | None:
    """The file mode a listener asks for (keyword, else ``?mode=``); 0600 by default.

    None for an abstract name, which has no file: asking it for a mode is an error.
    """
    if mode is None:
        mode = parsed.options.get("mode")
    if parsed.path.startswith("@"):
        if mode is not None:
            raise AddressError(f"{parsed.uri!r}: an abstract socket has no file mode")
        return None
    if mode is None:
        return 0o600
    try:
        value = mode if isinstance(mode, int) else int(str(mode).removeprefix("0o"), 8)
    except ValueError:
        value = -1
    if isinstance(value, bool) or not 0 <= value <= 0o777:
        raise AddressError(f"{parsed.uri!r}: mode must be octal permission bits, e.g. 0660")
    return value


def bind_unix(
    parsed: ParsedAddress, kind: int, *, mode: object = None
) -> tuple[socket.socket, Owner | None]:
    """Bind (and listen, unless SOCK_DGRAM) with the socket file at :func:`socket_mode`.

    Why chmod between bind and listen rather than bind under a tightened umask:
    the umask is process-wide, so another thread creating a file meanwhile
    would get our mode (a lock around every file creation is not possible).
    The file exists with the umask's mode for an instant, but a connect before
    ``listen`` is refused (SOCK_STREAM, SOCK_SEQPACKET), so nobody gets in
    through that window; the chmod
    does not follow a name swapped for a symlink (:func:`chmod_nofollow`).
    """
    addr = unix_sockaddr(parsed)
    file_mode = socket_mode(parsed, mode)
    if isinstance(addr, str):
        _remove_if_stale(addr, kind)
        if os.path.dirname(addr) == str(runtime_dir_path()):
            sweep_stale_sockets(str(runtime_dir()))  # what killed runs left beside it
    sock = socket.socket(socket.AF_UNIX, kind)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise AddressError(f"cannot listen on {parsed.uri}: {exc}") from exc
    owner = None
    if isinstance(addr, str):
        ino = os.lstat(addr).st_ino

        def remove(path: str = addr, ino: int = ino) -> None:
            try:
                if os.lstat(path).st_ino == ino:  # never remove a successor's socket
                    os.unlink(path)
            except FileNotFoundError:
                pass

        owner = Owner(remove)
    try:
        if isinstance(addr, str) and file_mode is not None:
            chmod_nofollow(addr, file_mode, stat.S_ISSOCK)
        if kind != socket.SOCK_DGRAM:
            sock.listen(512)
    except OSError as exc:
        sock.close()
        if owner is not None:
            owner.release()
        raise AddressError(f"cannot listen on {parsed.uri}: {exc}") from exc
    except BaseException:
        sock.close()
        if owner is not None:
            owner.release()
        raise
    return sock, owner


def connect_unix(parsed: ParsedAddress, kind: int, deadline: Deadline) -> socket.socket:
    addr = unix_sockaddr(parsed)
    sock = socket.socket(socket.AF_UNIX, kind)
    try:
        sock.settimeout(deadline.remaining())
        sock.connect(addr)
    except OSError as exc:
        sock.close()
        raise translate_oserror(exc, f"connect to {parsed.uri}") from exc
    return sock


class UnixTransport(Transport):
    scheme = "unix"
    description = "Unix domain socket, SOCK_STREAM (path or @abstract)"
    capabilities = Capabilities.byte_stream("AF_UNIX SOCK_STREAM")
    platforms = ("linux", "darwin")

    def listen(self, address: str, **options: Any) -> Listener[ByteStream]:
        parsed = self._parse(address)
        sock, owner = bind_unix(parsed, socket.SOCK_STREAM, mode=options.get("mode"))
        return SocketListener(sock, address, lambda conn, _d: SocketByteStream(conn), owner=owner)

    def connect(self, address: str, *, timeout: float | None = None, **options: Any) -> ByteStream:
        parsed = self._parse(address)
        t = SocketByteStream.default_timeout if timeout is None else timeout
        return SocketByteStream(connect_unix(parsed, socket.SOCK_STREAM, Deadline.after(t)))

    def example_address(self, tag: str) -> str:
        return f"unix://{runtime_dir()}/{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"


register(UnixTransport())
