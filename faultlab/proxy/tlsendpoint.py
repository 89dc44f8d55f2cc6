"""One end of an intercepted connection: TLS over a socket endpoint, plaintext to the links.

Why sans-IO TLS (``ssl.MemoryBIO``) rather than asyncio's ``start_tls``: the proxy must read
the ClientHello before it picks the certificate and the ALPN answer, must see a refused
handshake as an event to journal (asyncio only logs it), and must count the application
bytes each side sent, which is what proves a client refused a bad certificate.
"""

from __future__ import annotations

import asyncio
import ssl

from faultlab.codecs.framing.tls_hello import ClientHello, parse_client_hello
from faultlab.proxy.endpoints import Endpoint, SocketEndpoint

__all__ = ["HANDSHAKE_TIMEOUT", "TlsEndpoint", "describe_tls_error"]

HANDSHAKE_TIMEOUT = 10.0
"""How long a client or an upstream may take to send its ClientHello and finish a handshake."""
READ_SIZE = 256 * 1024


def describe_tls_error(exc: BaseException) -> str:
    """The reason OpenSSL gives (``tlsv1 alert unknown ca``), without the file/line noise."""
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or exc.strerror or str(exc)
        if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
            return f"{reason}: {exc.verify_message}"
        return str(reason).replace("_", " ").lower()
    return str(exc) or type(exc).__name__


class TlsEndpoint(Endpoint):
    """TLS on top of ``inner``: ciphertext below, plaintext to whoever binds this endpoint.

    Before :meth:`begin`, a server-side endpoint gathers the client's first bytes until they
    hold a whole ClientHello (``hello`` resolves). :meth:`begin` starts the handshake with an
    ``ssl.SSLContext``; ``handshake`` resolves when it is done (or with its error). Plaintext
    that arrives before :meth:`start` waits, like a socket endpoint's.
    """

    def __init__(self, inner: SocketEndpoint, *, server_side: bool) -> None:
        self.inner = inner
        self.server_side = server_side
        self.description = inner.description
        loop = asyncio.get_running_loop()
        self.hello: asyncio.Future[ClientHello] = loop.create_future()
        self.handshake: asyncio.Future[None] = loop.create_future()
        self._raw = bytearray()
        self._obj: ssl.SSLObject | None = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._started = False
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._eof = False
        self._lost = False
        self._lost_exc: BaseException | None = None
        self._closed = False
        self.bytes_in = 0
        """Application bytes the peer sent (decrypted)."""
        self.bytes_out = 0
        """Application bytes sent to the peer (before encryption)."""
        self.error: BaseException | None = None
        """The TLS error that ended the connection, if one did (a peer's alert, say)."""
        inner.bind(
            self._cipher_in, self._cipher_eof, self._cipher_lost, self._paused, self._resumed
        )
        inner.start()

    # ---- the TLS session -------------------------------------------------------------------
    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return self._obj

    def begin(self, ctx: ssl.SSLContext, *, server_hostname: str | None = None) -> None:
        """Start the handshake (a client side sends its ClientHello now)."""
        self._obj = ctx.wrap_bio(
            self._in,
            self._out,
            server_side=self.server_side,
            server_hostname=None if self.server_side else server_hostname,
        )
        if self._raw:
            self._in.write(bytes(self._raw))
            self._raw.clear()
        self.inner.release("tls-hello")
        self._advance()
        if self._eof and not self.handshake.done():
            self._fail(ConnectionResetError("the peer closed during the TLS handshake"))

    def _cipher_in(self, data: bytes) -> None:
        if self._obj is None:
            self._raw += data
            if not self.server_side or self.hello.done():
                return
            try:
                hello = parse_client_hello(bytes(self._raw))
            except Exception as exc:  # NotTLS: journaled by the proxy as a refused handshake
                self.hello.set_exception(exc)
                self.inner.hold("tls-hello")
                return
            if hello is not None:
                self.inner.hold("tls-hello")  # no more until the proxy has decided
                self.hello.set_result(hello)
            return
        self._in.write(data)
        self._advance()

    def _advance(self) -> None:
        obj = self._obj
        assert obj is not None
        if not self.handshake.done():
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                return
            except (ssl.SSLError, OSError) as exc:
                self._flush()  # our alert, if any, goes out
                self._fail(exc)
                return
            self._flush()
            self.handshake.set_result(None)
        self._read_plain()

    def _read_plain(self) -> None:
        obj = self._obj
        assert obj is not None
        while True:
            try:
                data = obj.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the peer's close_notify
                self._flush()
                self._deliver_eof()
                return
            except (ssl.SSLError, OSError) as exc:
                self._flush()
                self.error = exc
                self._deliver_lost(exc)
                return
            if not data:
                break
            self.bytes_in += len(data)
            self._deliver(data)
        self._flush()  # session tickets, key updates

    def _flush(self) -> None:
        if self._out.pending:
            self.inner.write(self._out.read())

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        if not self.handshake.done():
            self.handshake.set_exception(exc)
            self.handshake.exception()  # retrieved: the proxy may already have given up

    # ---- below: the socket -----------------------------------------------------------------
    def _cipher_eof(self) -> None:
        self._eof = True
        if self._obj is None or not self.handshake.done():
            if self._obj is not None:
                self._fail(ConnectionResetError("the peer closed during the TLS handshake"))
            elif not self.hello.done():
                self.hello.set_exception(ConnectionResetError("the client closed before a hello"))
                self.hello.exception()
            return
        self._deliver_eof()

    def _cipher_lost(self, exc: BaseException | None) -> None:
        self._lost = True
        if not self.hello.done():
            self.hello.set_exception(exc or ConnectionResetError("the client went away"))
            self.hello.exception()
        if not self.handshake.done():
            self._fail(exc or ConnectionResetError("the peer went away during the handshake"))
            return
        self._deliver_lost(exc)

    def _paused(self) -> None:
        if self._started:
            self.on_pause_writing()

    def _resumed(self) -> None:
        if self._started:
            self.on_resume_writing()

    # ---- above: the links --------------------------------------------------------------------
    def _deliver(self, data: bytes) -> None:
        if self._started:
            self.on_data(data)
        else:
            self._pending.append(data)
            self._pending_bytes += len(data)

    def _deliver_eof(self) -> None:
        if self._started:
            self.on_eof()
        else:
            self._eof = True

    def _deliver_lost(self, exc: BaseException | None) -> None:
        self._lost = True
        self._lost_exc = self._lost_exc or exc
        if self._started:
            self.on_lost(exc)

    def start(self) -> None:
        self._started = True
        pending, self._pending = self._pending, []
        self._pending_bytes = 0
        for data in pending:
            self.on_data(data)
        if self._lost:
            self.on_lost(self._lost_exc)
        elif self._eof:
            self.on_eof()

    def write(self, data: bytes) -> None:
        self.bytes_written += len(data)
        obj = self._obj
        if obj is None or self._closed or not self.handshake.done() or self.error is not None:
            return
        try:
            obj.write(data)
        except (ssl.SSLError, OSError):
            return
        self.bytes_out += len(data)
        self._flush()

    def _close_notify(self) -> None:
        obj = self._obj
        if obj is None or not self.handshake.done() or self.error is not None:
            return
        try:
            obj.unwrap()
        except (ssl.SSLError, OSError):
            pass  # WantRead: ours is sent, we do not wait for the peer's
        self._flush()

    def write_eof(self) -> None:
        """TLS has no half-close the way TCP has: a close_notify, then the socket's FIN."""
        self._close_notify()
        self.inner.write_eof()

    def close(self) -> None:
        if not self._closed:
            self._close_notify()
            self._closed = True
        self.inner.close()

    def reset(self) -> None:
        self._closed = True
        self.inner.reset()

    def buffered(self) -> int:
        return self._pending_bytes + self.inner.buffered()

    def _pause_reading(self) -> None:
        self.inner.hold("tls-above")

    def _resume_reading(self) -> None:
        self.inner.release("tls-above")
