"""Message channels: a transport stream plus the framing that cuts it into messages.

``FramedChannel`` runs a sans-IO framer over a byte stream; ``DatagramChannel``
passes a message stream through (one message per datagram/queue message).
``HttpServerChannel`` and ``HttpClientChannel`` carry HTTP/1.1 with h11,
keep-alive, bounded bodies, and ``Content-Length`` on every message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from http import HTTPStatus

import h11

from faultlab.codecs.errors import FrameTooLarge, MalformedFrame, TruncatedFrame
from faultlab.codecs.framing import CLOSED, NEED_DATA, Framer, HttpFramer, HttpMessage, get_framer
from faultlab.errors import EndOfStream, LocalProtocolError
from faultlab.streams import ByteStream, Deadline, MessageStream, Stream

__all__ = [
    "Channel",
    "DatagramChannel",
    "FramedChannel",
    "HttpClientChannel",
    "HttpRequest",
    "HttpServerChannel",
    "open_channel",
]

MAX_MESSAGE = 16 * 1024 * 1024
_READ = 65536
_MAX_HEAD = 64 * 1024


class Channel(ABC):
    """One connection that sends and receives whole messages."""

    stream: Stream

    @abstractmethod
    def send(self, payload: bytes, *, timeout: float | None = None) -> None: ...

    @abstractmethod
    def receive(self, *, timeout: float | None = None) -> bytes:
        """The next whole message; :class:`EndOfStream` at a clean end between messages."""

    def send_later(self, payload: bytes) -> None:
        """Queue ``payload``; it goes out, in order, before the next blocking read or send."""
        self.send(payload)

    def flush(self, timeout: float | None = None) -> None:  # noqa: B027 - nothing queued
        """Send what ``send_later`` queued now (nothing: this channel sends at once)."""

    def close(self) -> None:
        self.stream.close()


class DatagramChannel(Channel):
    def __init__(self, stream: MessageStream) -> None:
        self.stream = stream

    def send(self, payload: bytes, *, timeout: float | None = None) -> None:
        self.stream.send(payload, timeout=timeout)

    def receive(self, *, timeout: float | None = None) -> bytes:
        return self.stream.receive(timeout=timeout)


class FramedChannel(Channel):
    def __init__(self, stream: ByteStream, framer: Framer[bytes]) -> None:
        self.stream = stream
        self._bytes = stream
        self.framer = framer
        self._outbox: list[bytes] = []

    def send(self, payload: bytes, *, timeout: float | None = None) -> None:
        self._outbox.append(self.framer.frame(payload))
        self._flush(timeout)

    def send_later(self, payload: bytes) -> None:
        """Queue a reply: replies to pipelined messages leave in one write, not one each."""
        self._outbox.append(self.framer.frame(payload))

    def flush(self, timeout: float | None = None) -> None:
        self._flush(timeout)

    def _flush(self, timeout: float | None = None) -> None:
        if self._outbox:
            data = b"".join(self._outbox)
            self._outbox.clear()
            self.stream.send(data, timeout=timeout)

    def receive(self, *, timeout: float | None = None) -> bytes:
        deadline: Deadline | None = None
        while True:
            frame = self.framer.next_frame()
            if isinstance(frame, bytes):
                return frame
            if frame is CLOSED:
                raise EndOfStream("peer closed the stream")
            if deadline is None:
                deadline = Deadline.after(
                    self.stream.default_timeout if timeout is None else timeout
                )
            self._flush(deadline.remaining())
            try:
                data = self._bytes.receive(_READ, timeout=deadline.remaining())
            except EndOfStream:
                data = b""
            self.framer.receive_data(data)


def open_channel(stream: Stream, framing: str, *, max_size: int = MAX_MESSAGE) -> Channel:
    """A message channel over ``stream``; ``framing`` is ignored on message streams."""
    if isinstance(stream, MessageStream):
        return DatagramChannel(stream)
    return FramedChannel(stream, get_framer(framing, max_size=max_size))


class HttpRequest:
    __slots__ = ("body", "headers", "method", "target")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body


def _feed(conn: h11.Connection, stream: ByteStream, deadline: Deadline) -> bool:
    """Feed h11 one read; True if that read was EOF."""
    try:
        data = stream.receive(_READ, timeout=deadline.remaining())
    except EndOfStream:
        data = b""
    conn.receive_data(data)
    return not data


class HttpServerChannel:
    """Server side of one HTTP/1.1 connection, on a server :class:`HttpFramer`.

    The socket is read only when the framer needs data, so pipelined requests wait in the
    kernel, not here (h11's advice). Replies to ``HEAD`` carry no body.
    """

    def __init__(self, stream: ByteStream, *, max_body: int = MAX_MESSAGE) -> None:
        self.stream = stream
        self.max_body = max_body
        self.framer = HttpFramer("server", max_size=max_body, max_header_size=_MAX_HEAD)

    def next_request(self, *, timeout: float | None = None) -> HttpRequest | None:
        """The next request, or ``None`` once the client closed between requests.

        Raises the framer's :class:`RemoteProtocolError` subclasses for a bad request.
        """
        deadline = Deadline.after(self.stream.default_timeout if timeout is None else timeout)
        while True:
            item = self.framer.next_frame()
            if isinstance(item, HttpMessage):
                head = item.head
                assert isinstance(head, h11.Request)  # a server framer receives requests
                headers = {k.decode().lower(): v.decode("latin-1") for k, v in head.headers}
                return HttpRequest(
                    head.method.decode(), head.target.decode("latin-1"), headers, item.body
                )
            if item is not NEED_DATA:
                return None  # CLOSED (or PAUSED, which a server that answers never sees)
            try:
                data = self.stream.receive(_READ, timeout=deadline.remaining())
            except EndOfStream:
                data = b""
            self.framer.receive_data(data)

    def send_reply(
        self, status: int, body: bytes, headers: list[tuple[str, str]] | None = None
    ) -> None:
        """Send one response (``Content-Length`` added; the body dropped for ``HEAD``)."""
        hdrs = [*(headers or []), ("Content-Length", str(len(body)))]
        head = h11.Response(status_code=status, headers=hdrs, reason=_reason(status))
        self.stream.send(self.framer.frame(HttpMessage(head=head, body=body)))

    def send_error(self, status: int, body: bytes) -> None:
        """Answer a request that could not be read, before the caller closes.

        h11 sends it when its state allows; otherwise (nothing parsed, or a response
        already begun) the bytes are written by hand, always with ``Connection: close``.
        """
        hdrs = [("Connection", "close"), ("Content-Length", str(len(body)))]
        head = h11.Response(status_code=status, headers=hdrs, reason=_reason(status))
        try:
            data = self.framer.frame(HttpMessage(head=head, body=body))
        except LocalProtocolError:
            data = b"HTTP/1.1 %d %s\r\n" % (status, _reason(status).encode())
            data += b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in hdrs)
            data += b"\r\n" + body
        self.stream.send(data)

    @property
    def must_close(self) -> bool:
        return self.framer.must_close

    def close(self) -> None:
        self.stream.close()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class HttpClientChannel:
    """Client side of one keep-alive HTTP/1.1 connection."""

    def __init__(self, stream: ByteStream, host: str, *, max_body: int = MAX_MESSAGE) -> None:
        self.stream = stream
        self.host = host or "localhost"
        self.max_body = max_body
        self.conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self._eof = False

    @property
    def reusable(self) -> bool:
        return self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE

    def request(
        self,
        method: str,
        target: str,
        body: bytes,
        headers: list[tuple[str, str]],
        *,
        timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        deadline = Deadline.after(self.stream.default_timeout if timeout is None else timeout)
        hdrs = [("Host", self.host), *headers, ("Content-Length", str(len(body)))]
        try:
            out = self.conn.send(h11.Request(method=method, target=target, headers=hdrs)) or b""
            out += self.conn.send(h11.Data(data=body)) or b""
            out += self.conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"cannot send this HTTP request: {exc}") from None
        self.stream.send(out, timeout=deadline.remaining())
        status = 0
        reply_headers: dict[str, str] = {}
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self.conn.their_state is h11.SEND_BODY:
                    raise TruncatedFrame(f"HTTP response cut short: {exc}") from None
                if status == 0 and self._eof:
                    raise EndOfStream("server closed the connection before replying") from None
                raise MalformedFrame(f"bad HTTP response: {exc}") from None
            if event is h11.NEED_DATA:
                self._eof = _feed(self.conn, self.stream, deadline)
            elif isinstance(event, h11.Response):
                status = event.status_code
                reply_headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > self.max_body:
                    raise FrameTooLarge(f"response body over {self.max_body} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                    self.conn.start_next_cycle()
                return status, reply_headers, b"".join(chunks)
            elif isinstance(event, h11.ConnectionClosed):
                raise EndOfStream("server closed the connection before replying")
            elif isinstance(event, h11.InformationalResponse):
                continue

    def close(self) -> None:
        self.stream.close()
