"""The exchanges of one proxied connection, journaled as the client saw them.

Why: a black-box client (``requests`` with urllib3's ``Retry``, httpx with stamina) journals
nothing, yet its retries are on the wire. With HTTP framing the proxy already cuts each
direction into whole messages; this records each request when it arrives from the client
(``wire_request``) and each response when it is written to the client (``wire_response``,
whether the server sent it or a toxic answered), so a delayed or injected response is timed
as the client got it. A request still unanswered when the client closes its side (it gave
up), or when the connection ends, is closed by ``wire_unanswered`` with the reason's kind
(:mod:`faultlab.journal.wire`). HTTP/1.1 answers requests in order, so the Nth response on a
connection answers its Nth request. Newline-delimited JSON-RPC and msgpack-RPC streams (a
proxy with ``lines`` or ``msgpack-stream`` framing and the protocol declared) get the same
events, a response matched to its request by the RPC id (``rpc_method``, ``rpc_id``,
``rpc_error``; no HTTP status). :mod:`faultlab.journal.timeline` turns these events into
attempts of logical calls.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from faultlab.codecs.framing.http_split import HttpFrame
from faultlab.codecs.framing.httpinfo import parse_head, retry_after_seconds
from faultlab.journal import wire as wk
from faultlab.journal.schema import (
    WIRE_CLIENT_CLOSED,
    WIRE_REQUEST,
    WIRE_RESPONSE,
    WIRE_UNANSWERED,
)
from faultlab.rpc.base import get_protocol
from faultlab.rpc.frames import parse_http

if TYPE_CHECKING:
    from faultlab.journal import Journal

__all__ = [
    "DEFAULT_WIRE_HEADERS",
    "RPC_STREAM_FRAMINGS",
    "Exchanges",
    "HttpExchanges",
    "RpcExchanges",
]


DEFAULT_WIRE_HEADERS = ("idempotency-key", "retry-after", "traceparent", "x-request-id")
"""Headers resilience depends on, journaled when present (credentials never are: an
``Authorization`` header is journaled as a ``credential`` fingerprint and its scheme)."""
_NEVER = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
MAX_PENDING = 10_000
"""Requests one connection may have waiting for an answer before the oldest is no longer
tracked (a client that pipelines without end must not grow the proxy)."""
RPC_STREAM_FRAMINGS = ("lines", "msgpack-stream")
"""Framings whose RPC exchanges are journaled when the proxy declares its protocol."""


class Exchanges(ABC):
    """Pairs a connection's requests with their responses and journals both (the shared
    part: numbering, give-ups and ends; subclasses read one kind of frame)."""

    def __init__(
        self,
        journal: Journal,
        proxy: str,
        connection: int,
        *,
        protocol: str | None,
        headers: tuple[str, ...] = DEFAULT_WIRE_HEADERS,
    ) -> None:
        self.journal = journal
        self.proxy = proxy
        self.connection = connection
        self.headers = tuple(h.lower() for h in headers if h.lower() not in _NEVER)
        found = get_protocol(protocol) if protocol else None
        self.protocol = found if found is not None and found.frames_readable else None
        self._pending: deque[int] = deque()
        self._count = 0
        self.client_closed = False
        self.tls = False
        """The requests were read inside TLS (an intercepting proxy): ``tls: true`` on each
        ``wire_request``, which is how the eavesdropping check tells encrypted from clear."""
        self.at: float | None = None
        """The journal time the frames being read arrived (``None``: now). The HTTP/2 relay
        reads the client's bytes some time after it forwarded them
        (:meth:`faultlab.proxy.h2relay.H2Relay.defer`) and sets this while it does; the
        proxy sets it while it reads what the client sent before the upstream connected."""
        self.settle: Callable[[], None] | None = None
        """Reads what was forwarded and not read yet (set by the HTTP/2 relay): called before
        the exchanges end, so that nothing the client sent goes unjournaled."""

    def _record_request(self, **fields: Any) -> None:
        if self.tls:
            fields["tls"] = True
        if self.at is not None:
            fields["t"] = self.at
        self.journal.record(WIRE_REQUEST, **fields)

    @abstractmethod
    def request(self, data: bytes, parsed: Any) -> None:
        """A whole request arrived from the client (``parsed``: the framer's frame)."""

    @abstractmethod
    def response(self, data: bytes, parsed: Any, *, injected: bool) -> None:
        """A whole response was written to the client."""

    def _next_exchange(self) -> int:
        exchange = self._count
        self._count += 1
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()  # no longer tracked: its attempt stays "never finished"
        self._pending.append(exchange)
        return exchange

    def client_eof(self) -> None:
        """The client closed its side: requests it still waits for were given up.

        The close itself is journaled too: a response written just before it may have come
        after the client's timeout fired (the timeline decides, from what the client did
        next)."""
        if self.client_closed:
            return
        if self.settle is not None:
            self.settle()
        self.client_closed = True
        self.journal.record(
            WIRE_CLIENT_CLOSED,
            proxy=self.proxy,
            connection=self.connection,
            answered=self._count - len(self._pending),
        )
        self._unanswered(wk.CLIENT_GAVE_UP, "the client closed the connection while waiting")

    def ended(self, *, reset: bool = False) -> None:
        """The connection is gone: whatever is still unanswered never will be."""
        if self.settle is not None:
            self.settle()
            self.settle = None  # the relay holds the connection: no cycle left behind
        if reset:
            self._unanswered(wk.RESET, "the connection was reset")
        else:
            self._unanswered(
                wk.CLOSED_WITHOUT_RESPONSE, "the connection closed before the response"
            )

    def _unanswered(self, kind: str, why: str) -> None:
        while self._pending:
            self.journal.record(
                WIRE_UNANSWERED,
                proxy=self.proxy,
                connection=self.connection,
                exchange=self._pending.popleft(),
                error_kind=kind,
                error=why,
            )


class HttpExchanges(Exchanges):
    """HTTP/1.1: the Nth response on a connection answers its Nth request."""

    def request(self, data: bytes, parsed: Any) -> None:
        """A whole request arrived from the client (``parsed``: the splitter's frame)."""
        frame = parsed if isinstance(parsed, HttpFrame) else None
        if frame is None:
            return
        info = frame.info
        exchange = self._next_exchange()
        given = info.headers
        fields: dict[str, Any] = {
            "proxy": self.proxy,
            "connection": self.connection,
            "exchange": exchange,
            "method": info.method,
            "target": info.target,
            "headers": {k: given[k] for k in self.headers if k in given},
            "size": len(frame.raw),
            **wk.credential_fields(given.get("authorization")),
        }
        protocol = self.protocol
        if protocol is not None and frame.body:
            try:
                http = parse_http(frame.raw, True) if protocol.needs_http else None
                decoded = protocol.decode_frame(frame.body, request=True, http=http)
            except Exception:  # a hostile body must never break the relay
                decoded = None
            if decoded is not None and decoded.items:
                fields["rpc_method"] = decoded.method
                rpc_id = decoded.id
                fields["rpc_id"] = rpc_id if isinstance(rpc_id, int | str) else None
        self._record_request(**fields)

    def response(self, data: bytes, parsed: Any, *, injected: bool) -> None:
        """A whole response was written to the client (``parsed``: the splitter's frame)."""
        frame = parsed if isinstance(parsed, HttpFrame) and parsed.raw is data else None
        info = frame.info if frame is not None else parse_head(data)
        if info is None:
            return  # not an HTTP response (a corrupting toxic): the client gets garbage
        status = info.status
        if status is None or status < 200:
            return  # 1xx is not the answer
        given = info.headers
        headers = {k: given[k] for k in self.headers if k in given}
        exchange = self._pending.popleft() if self._pending else None
        fields: dict[str, Any] = {
            "proxy": self.proxy,
            "connection": self.connection,
            "exchange": exchange,
            "status": status,
            "headers": headers,
            "size": len(data),
            "injected": injected,
        }
        if "retry-after" in headers:
            retry_after = retry_after_seconds(headers["retry-after"])
            if retry_after is not None:
                fields["retry_after"] = retry_after
        if self.protocol is not None and status < 400:
            error = self._rpc_error(data, frame)
            if error is not None:
                fields["rpc_error"] = error[0]
                fields["rpc_code"] = error[1]
                fields["transient"] = error[2]
        self.journal.record(WIRE_RESPONSE, **fields)

    def _rpc_error(
        self, data: bytes, frame: HttpFrame | None
    ) -> tuple[str, int | None, bool] | None:
        protocol = self.protocol
        assert protocol is not None
        try:
            if frame is not None and not protocol.needs_http:
                message = protocol.decode_frame(frame.body, request=False)
            else:
                message = protocol.read_frame(data, request=False, http=True)
            info = None if message is None else protocol.reply_error(message)
        except Exception:  # a hostile body must never break the relay
            return None
        if info is None:
            return None
        return info.kind, info.code, protocol.is_transient(info)


class RpcExchanges(Exchanges):
    """JSON-RPC or msgpack-RPC on a byte stream: a response answers the request with its id
    (requests may be answered out of order); a notification expects no response."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_id: dict[Any, int] = {}

    def request(self, data: bytes, parsed: Any) -> None:
        protocol = self.protocol
        if protocol is None:
            return
        try:
            message = protocol.read_frame(data, request=True)
        except Exception:  # a hostile frame must never break the relay
            message = None
        if message is None or not message.items:
            return
        fields: dict[str, Any] = {
            "proxy": self.proxy,
            "connection": self.connection,
            "method": None,
            "target": None,
            "headers": {},
            "size": len(data),
            "rpc_method": message.method,
        }
        if message.kind == "notification":
            self._record_request(exchange=None, notification=True, **fields)
            return
        exchange = self._next_exchange()
        for item in message.items:
            if not item.notification and _hashable(item.id):
                if len(self._by_id) >= MAX_PENDING:
                    del self._by_id[next(iter(self._by_id))]  # the oldest id waiting
                self._by_id[item.id] = exchange
        rpc_id = message.id
        fields["rpc_id"] = rpc_id if isinstance(rpc_id, int | str) else None
        self._record_request(exchange=exchange, **fields)

    def response(self, data: bytes, parsed: Any, *, injected: bool) -> None:
        protocol = self.protocol
        if protocol is None:
            return
        try:
            message = protocol.read_frame(data, request=False)
            info = None if message is None else protocol.reply_error(message)
        except Exception:  # a hostile frame must never break the relay
            return
        if message is None:
            return
        exchange = None
        for item in message.items:
            if _hashable(item.id) and item.id in self._by_id:
                exchange = self._by_id.pop(item.id)
        if exchange is None and self._pending:
            exchange = self._pending[0]  # no id we know: the oldest still waiting
        if exchange is not None and exchange in self._pending:
            self._pending.remove(exchange)
        fields: dict[str, Any] = {
            "proxy": self.proxy,
            "connection": self.connection,
            "exchange": exchange,
            "status": None,
            "headers": {},
            "size": len(data),
            "injected": injected,
        }
        if info is not None:
            fields["rpc_error"] = info.kind
            fields["rpc_code"] = info.code
            fields["transient"] = protocol.is_transient(info)
        self.journal.record(WIRE_RESPONSE, **fields)


def _hashable(value: Any) -> bool:
    return isinstance(value, int | str | float | bytes) and not isinstance(value, bool)
