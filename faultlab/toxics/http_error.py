"""``http_error``: answer matching HTTP requests with a status of our choosing, server untouched.

Why: a client's retry policy, backoff and circuit breaker react to what an HTTP server
*says*: a 503 with ``Retry-After: 2`` must be retried after two seconds, a 429 slowed down,
a 400 never repeated. Black-box, that needs a server that fails on cue, which is this
toxic: on a proxy created with ``framing="http"``, each request on the ``upstream`` stream
that matches (``match_method``, ``match_path``, ``match_header``, ``match_rpc_method``) and
is selected (``nth``, ``times``, ``sequence``, ``every``, counted per connection or per proxy
with ``scope``; see :mod:`faultlab.toxics._match`) is answered by the proxy itself with
``status``: the server never sees it.

The answer is a valid HTTP/1.1 response: ``headers`` (one ``Name: value`` per line, lines
separated by a newline ``\\n``: a value may hold ``;``, as in ``text/plain; charset=utf-8``),
``Retry-After`` from ``retry_after``, ``body`` (default ``{"error": "<status phrase>
(injected)"}`` as ``application/json``), a ``Content-Length``, no body for a ``HEAD``
request (nor for 204 and 304). The connection stays open (the next request on it reaches
the server) unless the request said ``Connection: close`` (or is HTTP/1.0 without
keep-alive): then the proxy answers with ``Connection: close`` and closes, as a server does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from faultlab.codecs.framing.httpinfo import HttpHeadInfo, parse_head
from faultlab.toxics import _rpcwire as wire
from faultlab.toxics._match import MATCH_ATTRIBUTES, TOKEN, RequestMatcher, rpc_methods
from faultlab.toxics.base import (
    Attr,
    Chunk,
    Emit,
    InvalidToxic,
    Toxic,
    ToxicContext,
    register_toxic,
)

__all__ = ["DRAWN_STATUSES", "HttpError", "parse_headers", "read_request", "render_response"]

DRAWN_STATUSES = (503, 500, 429, 502, 504, 400)
"""The statuses tests draw, mildest first: "try again" ones, then one a retry must not repeat."""
MAX_HEADERS = 8 * 1024
MAX_BODY = 64 * 1024
NO_BODY = (204, 304)
RESERVED = {
    "content-length": "the toxic sets it from the body",
    "transfer-encoding": "the toxic sends the body with a Content-Length",
    "connection": "the toxic keeps the connection alive unless the request said close",
}
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e\x80-\xff]")
_SEMICOLON_HEADER = re.compile(r";\s*[!#$%&'*+\-.^_`|~0-9A-Za-z]+\s*:")


def read_request(
    ctx: ToxicContext, chunk: Chunk, matcher: RequestMatcher
) -> tuple[HttpHeadInfo, list[str] | None, dict[str, Any]] | None:
    """The HTTP request in ``chunk`` as request matching reads it: its head, its RPC methods
    (when the matcher needs them) and the fields a decision journals; ``None`` (journaled as
    a pass) when the chunk is not an HTTP request."""
    head = parse_head(chunk.data)
    if head is None or not head.is_request:
        ctx.record("pass", chunk, reason="not an HTTP request")
        return None
    fields: dict[str, Any] = {"method": head.method, "path": head.path}
    methods = None
    if matcher.needs_rpc:
        methods = rpc_methods(ctx.protocol, chunk.data, http=True)
        fields["rpc_method"] = methods[0] if methods else None
    return head, methods, fields


def parse_headers(toxic: str, text: str) -> tuple[tuple[str, str], ...]:
    """The ``headers`` attribute: one ``Name: value`` per line (``\\n`` or ``\\r\\n``)."""
    if len(text) > MAX_HEADERS:
        raise InvalidToxic(
            f"{toxic}: attribute 'headers' is {len(text)} characters, at most {MAX_HEADERS}"
        )
    headers = []
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not TOKEN.fullmatch(name):
            raise InvalidToxic(
                f"{toxic}: attribute 'headers' takes one 'Name: value' per line, "
                f"separated by a newline; line {number} is {line!r}"
            )
        if _BAD_VALUE.search(value):
            raise InvalidToxic(
                f"{toxic}: header {name!r} may hold visible characters, spaces and tabs only"
            )
        if _SEMICOLON_HEADER.search(value):
            raise InvalidToxic(
                f"{toxic}: header {name!r} has the value {value!r}, which looks like several "
                "headers: separate headers with a newline ('\\n'), not ';'"
            )
        why = RESERVED.get(name.lower())
        if why is not None:
            raise InvalidToxic(f"{toxic}: header {name!r} cannot be set: {why}")
        headers.append((name, value))
    return tuple(headers)


def _phrase(status: int) -> str | None:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return None


def render_response(
    status: int,
    headers: tuple[tuple[str, str], ...],
    body: bytes,
    *,
    head_request: bool = False,
    connection: str | None = None,
) -> bytes:
    """One HTTP/1.1 response: ``Content-Length`` (but for 204/304), no body for a HEAD
    request (the length still says what a GET would get), ``Connection`` if given."""
    lines = [
        f"HTTP/1.1 {status} {_phrase(status) or 'Injected'}",
        *(f"{n}: {v}" for n, v in headers),
    ]
    if status not in NO_BODY:
        lines.append(f"Content-Length: {len(body)}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if head_request or status in NO_BODY:
        return data
    return data + body


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def _answer(toxic: str, attributes: dict[str, Any]) -> _Answer:
    """The response the attributes describe, validated."""
    status: int = attributes["status"]
    if status < 200:
        raise InvalidToxic(
            f"{toxic}: status {status} is informational: the client would wait for the final "
            "response, which never comes; use 200..599"
        )
    headers = parse_headers(toxic, attributes["headers"])
    names = {name.lower() for name, _ in headers}
    if attributes["retry_after"]:
        if "retry-after" in names:
            raise InvalidToxic(
                f"{toxic}: Retry-After is given twice: set retry_after or a 'Retry-After' header"
            )
        headers = (("Retry-After", str(attributes["retry_after"])), *headers)
    text: str = attributes["body"]
    if status in NO_BODY:
        if text:
            raise InvalidToxic(f"{toxic}: a {status} response has no body: leave 'body' empty")
        return _Answer(status, headers, b"")
    if text:
        try:
            body = text.encode()
        except UnicodeEncodeError:
            raise InvalidToxic(f"{toxic}: attribute 'body' is not valid Unicode text") from None
        if len(body) > MAX_BODY:
            raise InvalidToxic(
                f"{toxic}: attribute 'body' is {len(body)} bytes, at most {MAX_BODY}"
            )
        try:
            json.loads(text)
            content_type = "application/json"
        except ValueError:
            content_type = "text/plain; charset=utf-8"
    else:
        phrase = _phrase(status) or f"status {status}"
        body = json.dumps({"error": f"{phrase.lower()} (injected)"}).encode()
        content_type = "application/json"
    if "content-type" not in names:
        headers = (*headers, ("Content-Type", content_type))
    return _Answer(status, headers, body)


def _connection(data: bytes, head: HttpHeadInfo) -> tuple[bool, str | None]:
    """Whether the request asks the server to close, and the ``Connection`` header to send."""
    tokens = {t.strip().lower() for t in (head.header("connection") or "").split(",")}
    version = data[: data.find(b"\r\n")].rsplit(b" ", 1)[-1]
    if "close" in tokens:
        return True, "close"
    if version == b"HTTP/1.0":
        return ("keep-alive" not in tokens), ("keep-alive" if "keep-alive" in tokens else "close")
    return False, None


@register_toxic
class HttpError(Toxic):
    type_name = "http_error"
    description = "answer matching HTTP requests with `status` (503, 429...) without the server"
    needs_frames = True
    attributes_spec = {
        "status": Attr(int, 503, 100, 599, "the response's status code", options=DRAWN_STATUSES),
        "retry_after": Attr(
            int, 0, 0, 86_400, "seconds in a Retry-After header (0: none)", options=(0, 1)
        ),
        "headers": Attr(str, "", help="extra response headers: 'Name: value' lines, '\\n' apart"),
        "body": Attr(str, "", help="response body; empty: a JSON error naming the status"),
        **MATCH_ATTRIBUTES,
    }

    def validate(self, attributes: dict[str, Any]) -> None:
        _answer(self.type_name, attributes)
        RequestMatcher.from_attributes(self.type_name, attributes)

    def update(self, attributes: dict[str, Any]) -> None:
        super().update(attributes)
        self.answer = _answer(self.type_name, self.attributes)
        self.matcher = RequestMatcher.from_attributes(self.type_name, self.attributes)

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        if framing != "http" or message_based:
            return 'it answers HTTP requests: create the proxy with framing="http"'
        if stream != "upstream":
            return (
                "it answers requests, which travel on the upstream stream (the downstream "
                'stream carries responses): add it with stream="upstream"'
            )
        if self.matcher.needs_rpc:
            if protocol is None:
                return (
                    "match_rpc_method reads the RPC method with the proxy's protocol: create "
                    f"the proxy with protocol=... ({'|'.join(wire.protocols())})"
                )
            return wire.protocol_reason(protocol, framing, message_based)
        return self.matcher.unsupported_reason(stream=stream, framing=framing)

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        request = read_request(ctx, chunk, self.matcher)
        if request is None:
            await emit(chunk)
            return
        head, methods, fields = request
        n = self.matcher.select(ctx, chunk, head, methods, fields)
        if n is None:
            await emit(chunk)
            return
        close, connection = _connection(chunk.data, head)
        answer = self.answer
        data = render_response(
            answer.status,
            answer.headers,
            answer.body,
            head_request=head.method == "HEAD",
            connection=connection,
        )
        ctx.record("http_error", chunk, status=answer.status, match=n, closed=close, **fields)
        ctx.reply(data)
        if close:
            ctx.close_connection()
