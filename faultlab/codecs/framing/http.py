"""HTTP/1.1 messages with whole bodies, on top of h11 (which does the parsing).

A frame is an :class:`HttpMessage`: h11's head event plus the full body and
trailers. ``role`` is this side's h11 role: a ``"server"`` framer receives
requests and frames responses; a ``"client"`` framer the reverse. Keep-alive
cycles advance by themselves once both directions of an exchange are done.

``one_way=True`` is for observers (a proxy's link sees one direction only):
the framer answers each request (or asks before each response) with a
synthetic message of its own that is never sent, so h11 keeps parsing, and
``frame()`` re-serializes messages of the kind it *receives*. A one-way
client assumes the responses are not to HEAD or CONNECT (it cannot see the
requests).

A server framer answers ``HEAD`` without a body (``frame`` keeps the head's
Content-Length and drops the body). A one-way server treats ``CONNECT`` as refused
(its synthetic answer is a 501): if the real server opened a tunnel instead, the
tunnelled bytes are not HTTP and surface as :class:`MalformedFrame`.

Limits: ``max_size`` bounds each body (a larger Content-Length is refused at
the head, before any body arrives), ``max_header_size`` the head (h11's
``max_incomplete_event_size``), and ``max_buffer`` the bytes received but not yet
parsed. Bytes reach h11 only when it needs them, so a pipelining client whose
requests pile up while a server framer is ``PAUSED`` (the current request not yet
answered) fills that buffer; past ``max_buffer`` the framer stops buffering and,
once the requests before are taken, raises :class:`FrameTooLarge`. A caller that
reads the socket only on ``NEED_DATA`` (as the RPC server does) never gets there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import h11

from faultlab.codecs.errors import FrameTooLarge, MalformedFrame, TruncatedFrame
from faultlab.codecs.framing.base import (
    CLOSED,
    DEFAULT_MAX_FRAME,
    NEED_DATA,
    PAUSED,
    FrameEvent,
    Framer,
    ReceiveBuffer,
)
from faultlab.errors import LocalProtocolError

__all__ = ["HttpFramer", "HttpHead", "HttpMessage"]

HttpHead = h11.Request | h11.Response | h11.InformationalResponse

_SYNTHETIC_REQUEST = h11.Request(method="GET", target="/", headers=[("Host", "faultlab")])
_SYNTHETIC_RESPONSE = h11.Response(status_code=200, headers=[("Content-Length", "0")])
_SYNTHETIC_REFUSAL = h11.Response(status_code=501, headers=[("Content-Length", "0")])
"""A one-way server's answer to CONNECT: a 2xx would switch h11 to a tunnel."""
_NO_BODY_STATUS = (204, 304)
_FEED = 65536
"""Bytes handed to h11 at a time: it buffers what it is given until it is parsed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpMessage:
    """One request or response: head, complete body, trailers (chunked only)."""

    head: HttpHead
    body: bytes = b""
    trailers: tuple[tuple[bytes, bytes], ...] = ()
    raw: bytes = b""
    """The exact wire bytes, when a one-way framer read it (a proxy forwards these, so it
    never rewrites what it relays); empty for a message built in code."""


class HttpFramer(Framer[HttpMessage]):
    """Whole HTTP/1.1 messages in and out; h11 enforces the grammar and the state machine."""

    name: ClassVar[str] = "http"

    def __init__(
        self,
        role: Literal["client", "server"] = "server",
        *,
        max_size: int = DEFAULT_MAX_FRAME,
        max_header_size: int = 16 * 1024,
        max_buffer: int | None = None,
        one_way: bool = False,
    ) -> None:
        if role not in ("client", "server"):
            raise ValueError(f"role must be 'client' or 'server', not {role!r}")
        super().__init__(max_size=max_size)
        self.role = role
        self.one_way = one_way
        self.max_header_size = max_header_size
        self.max_buffer = max_size + max_header_size if max_buffer is None else max_buffer
        our_role = h11.SERVER if role == "server" else h11.CLIENT
        self._conn = h11.Connection(our_role, max_incomplete_event_size=max_header_size)
        self._backlog = ReceiveBuffer()  # received, not yet given to h11
        self._eof_fed = False
        self._head: h11.Request | h11.Response | None = None
        self._body = bytearray()
        self._request_method = b""  # server: the method of the request being answered
        self._raw = bytearray()  # one-way: bytes given to h11 since the current message began
        if one_way and role == "client":
            self._send_synthetic()

    @property
    def must_close(self) -> bool:
        """True once this side must close after its current message (HTTP/1.0, an error)."""
        return self._conn.our_state in (h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)

    # -- receiving ---------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        room = self.max_buffer - len(self._backlog)
        if len(data) > room:
            self._backlog.extend(data[: max(room, 0)])  # what fits is still parsed first
            self._reject(
                FrameTooLarge(
                    f"http: more than max_buffer {self.max_buffer} bytes received and not yet"
                    " parsed (requests pipelined while the current one is unanswered?)"
                )
            )
            return
        self._backlog.extend(data)

    def _feed(self) -> bool:
        """Give h11 the next piece of the backlog (or the EOF); False if nothing is left."""
        if len(self._backlog):
            piece = self._backlog.take(min(_FEED, len(self._backlog)))
            if self.one_way:
                self._raw += piece
            self._conn.receive_data(piece)
            return True
        if self.eof and not self._eof_fed and self._rejected is None:
            self._eof_fed = True
            self._conn.receive_data(b"")
            return True
        return False

    def _next(self) -> HttpMessage | FrameEvent:
        while True:
            event = self._next_event()
            if event is h11.NEED_DATA:
                if self._feed():
                    continue
                self._raise_rejected()
                return NEED_DATA
            if event is h11.PAUSED:
                return PAUSED
            if isinstance(event, h11.ConnectionClosed):
                return CLOSED
            if isinstance(event, h11.InformationalResponse):
                return HttpMessage(head=event, raw=self._take_raw())
            if isinstance(event, h11.Request | h11.Response):
                self._start(event)
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self.max_size:
                    raise FrameTooLarge(f"http: body exceeds max_size {self.max_size}")
            elif isinstance(event, h11.EndOfMessage):
                return self._complete(event)

    def _next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        """h11's next event, its errors mapped to ours (EOF inside a message: truncated)."""
        try:
            return self._conn.next_event()
        except h11.RemoteProtocolError as exc:
            if not self._eof_fed or "losed" not in str(exc):  # "closed" / "ConnectionClosed"
                raise MalformedFrame(f"http: {exc}") from exc
            if self.one_way and self._head is None and not self._conn.trailing_data[0]:
                return h11.ConnectionClosed()  # EOF while only our synthetic request waited
            raise TruncatedFrame(f"http: stream ended inside or before a message: {exc}") from exc

    def _start(self, head: h11.Request | h11.Response) -> None:
        if isinstance(head, h11.Request):
            self._request_method = head.method
        for name, value in head.headers:  # h11 already checked: at most 20 digits
            if name == b"content-length" and int(value) > self.max_size:
                raise FrameTooLarge(
                    f"http: Content-Length {int(value)} exceeds max_size {self.max_size}"
                )
        self._head = head
        self._body = bytearray()

    def _complete(self, end: h11.EndOfMessage) -> HttpMessage:
        assert self._head is not None
        message = HttpMessage(
            head=self._head,
            body=bytes(self._body),
            trailers=tuple(end.headers.raw_items()),
            raw=self._take_raw(),
        )
        self._head = None
        self._body = bytearray()
        if self.one_way:
            self._send_synthetic()
        else:
            self._maybe_next_cycle()
        return message

    def _take_raw(self) -> bytes:
        """One-way: the wire bytes of the message h11 just completed (what it has not
        consumed yet belongs to the next message)."""
        if not self.one_way:
            return b""
        unread = len(self._conn.trailing_data[0])
        cut = len(self._raw) - unread
        raw = bytes(self._raw[:cut])
        del self._raw[:cut]
        return raw

    # -- sending -----------------------------------------------------------------

    def frame(self, payload: HttpMessage) -> bytes:
        """The wire form of ``payload``; adds Content-Length when no framing header is set."""
        if self.one_way:
            return payload.raw or _serialize_alone(payload)
        if self._request_method == b"HEAD" and isinstance(payload.head, h11.Response):
            payload = HttpMessage(head=payload.head, trailers=payload.trailers)  # head only
        data = _send_all(self._conn, payload)
        self._maybe_next_cycle()
        return data

    def _send_synthetic(self) -> None:
        """One-way mode: play the unseen direction so h11 keeps parsing ours."""
        conn = self._conn
        if self.role == "server":
            if conn.our_state is h11.SEND_RESPONSE:
                connect = self._request_method == b"CONNECT"
                conn.send(_SYNTHETIC_REFUSAL if connect else _SYNTHETIC_RESPONSE)
                conn.send(h11.EndOfMessage())
            self._maybe_next_cycle()
        else:
            self._maybe_next_cycle()
            if conn.our_state is h11.IDLE:
                conn.send(_SYNTHETIC_REQUEST)
                conn.send(h11.EndOfMessage())

    def _maybe_next_cycle(self) -> None:
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            self._conn.start_next_cycle()


def _with_length(message: HttpMessage) -> list[h11.Event]:
    """The h11 events for ``message``, with Content-Length added if nothing frames the body."""
    head = message.head
    if isinstance(head, h11.InformationalResponse):
        return [head]
    names = {name for name, _ in head.headers}
    needs_length = b"content-length" not in names and b"transfer-encoding" not in names
    if isinstance(head, h11.Response):
        needs_length = needs_length and head.status_code not in _NO_BODY_STATUS
    else:
        needs_length = needs_length and bool(message.body)
    if needs_length:
        headers = [*head.headers.raw_items(), (b"Content-Length", str(len(message.body)).encode())]
        if isinstance(head, h11.Request):
            head = h11.Request(
                method=head.method, target=head.target, headers=headers,
                http_version=head.http_version,
            )  # fmt: skip
        else:
            head = h11.Response(
                status_code=head.status_code, headers=headers, reason=head.reason,
                http_version=head.http_version,
            )  # fmt: skip
    events: list[h11.Event] = [head]
    if message.body:
        events.append(h11.Data(data=message.body))
    events.append(h11.EndOfMessage(headers=list(message.trailers)))
    return events


def _send_all(conn: h11.Connection, message: HttpMessage) -> bytes:
    try:
        return b"".join(conn.send(event) or b"" for event in _with_length(message))
    except h11.LocalProtocolError as exc:
        raise LocalProtocolError(f"http: cannot send {type(message.head).__name__}: {exc}") from exc


def _serialize_alone(message: HttpMessage) -> bytes:
    """Serialize with a fresh connection (one-way framers re-emit what they received)."""
    if isinstance(message.head, h11.Request):
        return _send_all(h11.Connection(h11.CLIENT), message)
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: faultlab\r\n\r\n")
    conn.next_event()  # the Request
    conn.next_event()  # its EndOfMessage
    return _send_all(conn, message)
