"""The exchanges of one HTTP/2 connection (gRPC calls, or plain HTTP/2 requests), journaled
as the client saw them.

Each client stream is one exchange (its ``exchange`` is the stream id). ``wire_request`` is
journaled when the request's header block arrives from the client: the RPC method (the
``:path``, gRPC's full method name ``/package.Service/Method``), the deadline it carries
(``grpc-timeout`` in seconds as ``deadline``), ``grpc-previous-rpc-attempts`` as
``previous_attempts``, an ``authorization`` as a ``credential`` fingerprint (never itself).
The answer is journaled when the client gets the end of the response stream
(``wire_response``): the HTTP ``status``, the gRPC status (``grpc_status``,
``grpc_message``, the kind ``grpc_<name>`` as ``rpc_error`` when not OK), the server's
pushback (``pushback_ms``; a pushback of 0 or more is also ``retry_after`` in seconds, a
negative one means "do not retry"), and how many gRPC messages went each way
(``messages_up``, ``messages_down``). A stream reset instead of answered is
``wire_unanswered`` with the kind of a reset (``rst_code`` says which): by the client (it gave
up: its deadline fired or it cancelled), by the server or by the proxy. A GOAWAY that leaves
a stream out (above its last stream id) ends it as never processed (``refused``: a gRPC
client retries it transparently, without counting an attempt).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from faultlab.codecs.framing.h2 import (
    DATA,
    ERROR_NAMES,
    GOAWAY,
    HEADERS,
    RST_STREAM,
    GrpcMessageCounter,
    H2Unit,
    grpc_timeout_seconds,
)
from faultlab.journal import wire as wk
from faultlab.journal.schema import WIRE_REQUEST, WIRE_RESPONSE, WIRE_UNANSWERED
from faultlab.proxy.wire import MAX_PENDING, Exchanges

__all__ = ["GRPC_WIRE_HEADERS", "H2Exchanges"]

GRPC_WIRE_HEADERS = (
    "grpc-timeout",
    "grpc-previous-rpc-attempts",
    "grpc-status",
    "grpc-message",
    "grpc-retry-pushback-ms",
    "grpc-encoding",
)
"""gRPC headers resilience depends on, journaled when present."""
_NOTHING: dict[str, Any] = {}


class _Stream:
    __slots__ = ("answered", "down", "grpc", "size", "status", "up")

    def __init__(self, grpc: bool) -> None:
        self.grpc = grpc
        self.up = GrpcMessageCounter()
        self.down = GrpcMessageCounter()
        self.status: int | None = None
        self.answered = False
        self.size = 0


class H2Exchanges(Exchanges):
    """Client streams as exchanges: answered in any order, each by its own stream."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers = tuple(dict.fromkeys((*self.headers, *GRPC_WIRE_HEADERS)))
        self._streams: dict[int, _Stream] = {}

    def _picked(self, first: dict[str, str]) -> dict[str, str]:
        return {name: first[name] for name in self.headers if name in first}

    # ---- from the client ---------------------------------------------------------------
    def request(self, data: bytes, parsed: Any) -> None:
        unit = parsed if isinstance(parsed, H2Unit) else None
        if unit is None or not unit.stream:
            return
        stream = self._streams.get(unit.stream)
        if unit.type == HEADERS:
            if stream is None:
                first = _first(unit)
                if ":method" in first:
                    self._open(unit, first)
            return
        if stream is None:
            return
        if unit.type == DATA:
            stream.up.feed(unit.data)
        elif unit.type == RST_STREAM and not stream.answered:
            self._close(unit.stream, wk.CLIENT_GAVE_UP, "the client cancelled the stream", unit)

    def _open(self, unit: H2Unit, first: dict[str, str]) -> None:
        if len(self._streams) >= MAX_PENDING:
            oldest = next(iter(self._streams))
            del self._streams[oldest]
            if oldest in self._pending:
                self._pending.remove(oldest)
        grpc = first.get("content-type", "").startswith("application/grpc")
        self._streams[unit.stream] = _Stream(grpc)
        self._pending.append(unit.stream)
        self._count += 1
        headers = self._picked(first)
        path = first.get(":path")
        fields: dict[str, Any] = {
            "proxy": self.proxy,
            "connection": self.connection,
            "exchange": unit.stream,
            "method": first[":method"],
            "target": path,
            "headers": headers,
            "size": len(unit.raw),
            "http2": True,
            **wk.credential_fields(first.get("authorization")),
        }
        if self.at is not None:
            fields["t"] = self.at
        if grpc:
            fields["protocol"] = "grpc"
            fields["rpc_method"] = path
            deadline = grpc_timeout_seconds(headers.get("grpc-timeout"))
            if deadline is not None:
                fields["deadline"] = deadline
            previous = headers.get("grpc-previous-rpc-attempts", "")
            if previous.isascii() and previous.isdigit():
                fields["previous_attempts"] = int(previous)
        if self.tls:
            fields["tls"] = True
        self.journal.record_merged(WIRE_REQUEST, _NOTHING, fields)  # one dict, not three

    # ---- to the client -----------------------------------------------------------------
    def response(self, data: bytes, parsed: Any, *, injected: bool) -> None:
        unit = parsed if isinstance(parsed, H2Unit) else None
        if unit is None:
            return
        if unit.type == GOAWAY:
            self._goaway(unit)
            return
        stream = self._streams.get(unit.stream)
        if stream is None:
            return
        if unit.type == HEADERS:
            first = _first(unit)
            status = first.get(":status")
            if status is not None and status.isdigit():
                if int(status) < 200:
                    return  # 1xx is not the answer
                stream.status = int(status)
            stream.size += len(unit.raw)
            if unit.end_stream:
                self._answer(unit.stream, stream, first, injected)
        elif unit.type == DATA:
            stream.down.feed(unit.data)
            stream.size += len(unit.data)
            if unit.end_stream:
                self._answer(unit.stream, stream, None, injected)
        elif unit.type == RST_STREAM and not stream.answered:
            who = "the proxy" if injected else "the server"
            self._close(unit.stream, wk.RESET, f"{who} reset the stream", unit)

    def _answer(
        self, sid: int, stream: _Stream, trailers: dict[str, str] | None, injected: bool
    ) -> None:
        stream.answered = True
        self._streams.pop(sid, None)
        if sid in self._pending:
            self._pending.remove(sid)
        fields: dict[str, Any] = {
            "proxy": self.proxy,
            "connection": self.connection,
            "exchange": sid,
            "status": stream.status,
            "headers": self._picked(trailers) if trailers is not None else {},
            "size": stream.size,
            "injected": injected,
            "http2": True,
        }
        if stream.grpc:
            fields["messages_up"] = stream.up.count
            fields["messages_down"] = stream.down.count
            self._grpc_status(fields, trailers)
        self.journal.record_merged(WIRE_RESPONSE, _NOTHING, fields)

    @staticmethod
    def _grpc_status(fields: dict[str, Any], trailers: dict[str, str] | None) -> None:
        trailers = trailers or {}
        status = trailers.get("grpc-status")
        if status is None or not (status.isascii() and status.isdigit()):
            # no status: the client fails the call as UNKNOWN (or INTERNAL)
            fields.update(rpc_error=wk.grpc_kind(2), rpc_code=2, transient=False)
            fields["grpc_status"] = None
            return
        code = int(status)
        fields["grpc_status"] = code
        message = trailers.get("grpc-message")
        if message is not None:
            fields["grpc_message"] = unquote(message)  # percent-encoded on the wire
        pushback = trailers.get("grpc-retry-pushback-ms")
        if pushback is not None:
            text = pushback.strip()
            body = text[1:] if text.startswith("-") else text
            if body.isascii() and body.isdigit() and len(body) < 12:
                fields["pushback_ms"] = int(text)
                if int(text) >= 0:
                    fields["retry_after"] = int(text) / 1000.0
            else:
                fields["pushback_ms"] = -1  # unparseable: the spec says do not retry
        if code:
            fields["rpc_error"] = wk.grpc_kind(code)
            fields["rpc_code"] = code
            fields["transient"] = code in wk.GRPC_TRANSIENT

    def _close(self, sid: int, kind: str, why: str, unit: H2Unit | None, **extra: Any) -> None:
        stream = self._streams.pop(sid, None)
        if sid in self._pending:
            self._pending.remove(sid)
        fields: dict[str, Any] = {"error_kind": kind, "error": why, **extra}
        if self.at is not None:
            fields["t"] = self.at
        if unit is not None and unit.type == RST_STREAM and len(unit.data) >= 4:
            code = int.from_bytes(unit.data[:4], "big")
            fields["rst_code"] = ERROR_NAMES.get(code, code)
            fields["error"] = f"{why} ({fields['rst_code']})"
        if stream is not None and stream.grpc:
            fields["messages_up"] = stream.up.count
            fields["messages_down"] = stream.down.count
        self.journal.record(
            WIRE_UNANSWERED,
            proxy=self.proxy,
            connection=self.connection,
            exchange=sid,
            **fields,
        )

    def _goaway(self, unit: H2Unit) -> None:
        if len(unit.data) < 8:
            return
        last = int.from_bytes(unit.data[:4], "big") & 0x7FFFFFFF
        code = int.from_bytes(unit.data[4:8], "big")
        for sid in [s for s in self._pending if s > last]:
            self._close(
                sid,
                wk.CLOSED_WITHOUT_RESPONSE,
                f"GOAWAY (last stream {last}, {ERROR_NAMES.get(code, code)}) left it out",
                None,
                refused=True,
            )

    def _unanswered(self, kind: str, why: str) -> None:
        for sid in list(self._pending):
            self._close(sid, kind, why, None)
        self._streams.clear()


def _first(unit: H2Unit) -> dict[str, str]:
    """A header block as a dict, each name's first value (in one C-level pass)."""
    return dict(reversed(unit.headers)) if unit.headers else {}
