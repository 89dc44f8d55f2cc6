"""``tls://host:port``: TCP + TLS (TLS 1.2+), faults below TLS are the proxy's job.

Certificates come from trustme, a test CA cached per user in the runtime
directory so a client in another process trusts a server without setup.
Give your own with ``?cafile=&certfile=&keyfile=`` on the URI or an
``ssl_context=`` keyword. TLS has no half-close: ``send_eof`` raises
:class:`UnsupportedOperation`. OpenSSL objects are not safe for concurrent
use, so send and receive are serialised by a lock (never held while waiting).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

from faultlab._cleanup import check_private_file, private_dir, runtime_dir, write_private
from faultlab.errors import (
    AddressError,
    BrokenResourceError,
    TransportError,
    TransportTimeout,
    UnsafeRuntimeDir,
)
from faultlab.streams import ByteStream, Deadline, Listener
from faultlab.transports import register
from faultlab.transports._sockets import SocketByteStream, SocketListener, wait_fd
from faultlab.transports.base import Capabilities, ParsedAddress, Transport
from faultlab.transports.tcp import format_host_port, listen_tcp, open_tcp

__all__ = ["TLSTransport", "lab_ca", "test_ca_files"]

_HOSTS = ("localhost", "127.0.0.1", "::1")
_FIX = "remove the folder, or set FAULTLAB_RUNTIME_DIR to a directory of your own"


def test_ca_files() -> tuple[Path, Path]:
    """(CA cert, server cert+key PEM) of the cached test CA, created once per user.

    The same CA (its key in ``ca-key.pem``) is the lab CA an intercepting proxy issues its
    certificates from (:func:`lab_ca`), so a client that trusts one trusts both.
    ``server.pem`` holds the private key: the files are 0600 whatever the
    umask. Files left by an older version are fixed (0644 becomes 0600); any
    that is not a regular file of ours (a symlink, another user's) is not
    trusted, and the pair is created afresh.
    """
    folder = private_dir(runtime_dir() / "tls")
    ca_path, server_path = folder / "ca.pem", folder / "server.pem"
    key_path = folder / "ca-key.pem"
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        lock = os.open(folder / ".lock", flags, 0o600)
    except OSError as exc:  # ELOOP: a planted symlink
        raise UnsafeRuntimeDir(f"cannot open {str(folder / '.lock')!r}: {exc}; {_FIX}") from exc
    try:
        if os.fstat(lock).st_uid != os.geteuid():
            raise UnsafeRuntimeDir(f"{str(folder / '.lock')!r} belongs to another user; {_FIX}")
        os.fchmod(lock, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        for old in ("ca.pem.tmp", "server.pem.tmp"):  # an older version's, maybe 0644
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / old)
        if not all(check_private_file(p) for p in (ca_path, server_path, key_path)):
            import trustme

            ca = trustme.CA()
            cert = ca.issue_cert(*_HOSTS)
            write_private(key_path, ca.private_key_pem.bytes())
            write_private(ca_path, ca.cert_pem.bytes())
            write_private(server_path, cert.private_key_and_cert_chain_pem.bytes())
    finally:
        os.close(lock)  # drops the flock
    return ca_path, server_path


_lab_ca: dict[tuple[str, int, int], Any] = {}
_lab_ca_lock = threading.Lock()


def lab_ca() -> Any:
    """The lab CA (a ``trustme.CA``) an intercepting proxy issues certificates from.

    It is the cached test CA of :func:`test_ca_files`, loaded once per process and runtime
    directory (a new ``FAULTLAB_RUNTIME_DIR``, or a CA created afresh, is loaded again), so
    every proxy, pair and client of a user agrees on one root (``GET /faultlab/ca.pem``).
    """
    import trustme

    ca_path, _ = test_ca_files()
    st = os.stat(ca_path)
    key = (str(ca_path), st.st_ino, st.st_mtime_ns)
    with _lab_ca_lock:
        found = _lab_ca.get(key)
        if found is None:
            key_pem = ca_path.with_name("ca-key.pem").read_bytes()
            found = trustme.CA.from_pem(ca_path.read_bytes(), key_pem)
            _lab_ca.clear()
            _lab_ca[key] = found
        return found


def _server_context(parsed: ParsedAddress) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certfile = parsed.options.get("certfile")
    keyfile = parsed.options.get("keyfile")
    if certfile is None:
        certfile = str(test_ca_files()[1])
    try:
        ctx.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise AddressError(f"cannot load TLS certificate {certfile!r}: {exc}") from exc
    return ctx


def _client_context(parsed: ParsedAddress) -> ssl.SSLContext:
    cafile = parsed.options.get("cafile") or str(test_ca_files()[0])
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise AddressError(f"cannot load TLS CA {cafile!r}: {exc}") from exc


def _handshake(sock: ssl.SSLSocket, deadline: Deadline) -> None:
    while True:
        try:
            sock.do_handshake()
            return
        except ssl.SSLWantReadError:
            wait_fd(sock.fileno(), select.POLLIN, deadline, "TLS handshake")
        except ssl.SSLWantWriteError:
            wait_fd(sock.fileno(), select.POLLOUT, deadline, "TLS handshake")


def _wrap(sock: ssl.SSLSocket, deadline: Deadline) -> ByteStream:
    from faultlab.errors import BrokenResourceError

    try:
        _handshake(sock, deadline)
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        raise BrokenResourceError(f"TLS handshake failed: {exc}") from exc
    return SocketByteStream(sock, serialize=True, half_close=False)


HANDSHAKE_TIMEOUT = 10.0


class _ServerTLSStream(SocketByteStream):
    """Server side: the handshake runs in its own thread, started at accept.

    A slow or silent client never holds up ``accept()`` for the others, and a
    test may still connect and accept from one thread. The first send or
    receive waits for the handshake (within its own timeout) and reports its
    failure as :class:`BrokenResourceError`.
    """

    def __init__(self, sock: ssl.SSLSocket) -> None:
        super().__init__(sock, serialize=True, half_close=False)
        self._done = threading.Event()
        self._error: BaseException | None = None
        threading.Thread(target=self._handshake, daemon=True, name="faultlab-tls-hs").start()

    def _handshake(self) -> None:
        try:
            assert isinstance(self.sock, ssl.SSLSocket)
            _handshake(self.sock, Deadline.after(HANDSHAKE_TIMEOUT))
        except (ssl.SSLError, OSError, TransportError) as exc:
            self._error = exc
        finally:
            self._done.set()

    def _ready(self, timeout: float | None) -> None:
        if not self._done.wait(self.default_timeout if timeout is None else timeout):
            raise TransportTimeout("TLS handshake did not finish in time")
        if self._error is not None:
            raise BrokenResourceError(f"TLS handshake failed: {self._error}") from self._error

    def send(self, data: bytes, *, timeout: float | None = None) -> None:
        if not self._done.is_set() or self._error is not None:
            self._ready(timeout)
        super().send(data, timeout=timeout)

    def receive(self, max_bytes: int = 65536, *, timeout: float | None = None) -> bytes:
        if not self._done.is_set() or self._error is not None:
            self._ready(timeout)
        return super().receive(max_bytes, timeout=timeout)


class TLSTransport(Transport):
    scheme = "tls"
    description = "TCP + TLS (trustme test CA by default)"
    capabilities = Capabilities.byte_stream("TLS over AF_INET SOCK_STREAM", half_close=False)
    platforms = ("linux", "darwin", "win32")

    def listen(
        self, address: str, *, ssl_context: ssl.SSLContext | None = None, **options: Any
    ) -> Listener[ByteStream]:
        parsed = self._parse(address)
        ctx = ssl_context or _server_context(parsed)
        sock = listen_tcp(parsed)
        host, port = sock.getsockname()[:2]
        query = "?" + address.split("?", 1)[1] if "?" in address else ""

        def wrap(conn: socket.socket, deadline: Deadline) -> ByteStream:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.setblocking(False)
            tls = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            return _ServerTLSStream(tls)

        return SocketListener(sock, format_host_port("tls", host, port) + query, wrap)

    def connect(
        self,
        address: str,
        *,
        timeout: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        **options: Any,
    ) -> ByteStream:
        parsed = self._parse(address)
        ctx = ssl_context or _client_context(parsed)
        deadline = Deadline.after(SocketByteStream.default_timeout if timeout is None else timeout)
        raw = open_tcp(parsed, deadline)
        try:
            tls = ctx.wrap_socket(raw, server_hostname=parsed.host, do_handshake_on_connect=False)
        except BaseException:
            raw.close()
            raise
        return _wrap(tls, deadline)

    def example_address(self, tag: str) -> str:
        return "tls://127.0.0.1:0"


register(TLSTransport())
