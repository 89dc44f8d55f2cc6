"""Request matching and fail/pass selections (``faultlab.toxics._match``), and what the
toxics that use them (``http_error``, ``rpc_error``, ``fail_first``) accept and refuse."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from faultlab.codecs.framing.httpinfo import parse_head
from faultlab.toxics import InvalidToxic, get_toxic_class
from faultlab.toxics._match import (
    MATCH_ATTRIBUTES,
    MAX_PATTERN,
    MAX_SEQUENCE,
    RequestMatcher,
    parse_header_match,
    parse_sequence,
    rpc_methods,
)
from faultlab.toxics.base import Chunk, ToxicContext
from faultlab.toxics.http_error import parse_headers, render_response


def build(**attributes: Any) -> RequestMatcher:
    return RequestMatcher.from_attributes("t", attributes)


def head(wire: bytes) -> Any:
    parsed = parse_head(wire)
    assert parsed is not None
    return parsed


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    made = asyncio.new_event_loop()
    yield made
    made.close()


def context(
    loop: asyncio.AbstractEventLoop, shared: dict[str, Any] | None = None, **kw: Any
) -> ToxicContext:
    return ToxicContext(
        rng=random.Random(1),
        record=kw.pop("record", lambda *a, **f: None),
        close=kw.pop("close", lambda: None),
        reset=lambda: None,
        direction="upstream",
        link_kind="frames",
        loop=loop,
        shared=shared,
        **kw,
    )


# ---- sequences --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("fail,fail,pass", (True, True, False)),
        ("FFP", (True, True, False)),
        ("ffp", (True, True, False)),
        ("fail, PASS ,fail", (True, False, True)),
        ("fail pass fail", (True, False, True)),
        ("f,p", (True, False)),
        ("fail", (True,)),
        ("F", (True,)),
        ("PF", (False, True)),
        ("", ()),
        (" , ", ()),
    ],
)
def test_sequences_in_words_or_letters(text: str, steps: tuple[bool, ...]) -> None:
    assert parse_sequence("t", text) == steps


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fail,maybe", "step 2 is 'maybe'"),
        ("FXP", "step 1 is 'FXP'"),
        ("fial", "step 1 is 'fial'"),
        ("pass,pass", "never fails"),
        ("PPP", "never fails"),
        ("F" * (MAX_SEQUENCE + 1), f"at most {MAX_SEQUENCE}"),
    ],
)
def test_a_bad_sequence_is_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(InvalidToxic, match=message):
        parse_sequence("t", text)


# ---- header specs -----------------------------------------------------------------------------
def test_header_spec() -> None:
    assert parse_header_match("t", "Idempotency-Key: *") == ("idempotency-key", "*")
    assert parse_header_match("t", "  X-A:b*  ") == ("x-a", "b*")
    assert parse_header_match("t", "Content-Type: text/plain; charset=*") == (
        "content-type",
        "text/plain; charset=*",
    )
    assert parse_header_match("t", "") is None
    assert parse_header_match("t", "   ") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Idempotency-Key", "must be 'Name: value-glob'"),
        ("Bad Name: x", "must be 'Name: value-glob'"),
        (": x", "must be 'Name: value-glob'"),
        ("X-A:", r"needs a value glob after 'X-A:' \('\*': any value\)"),
    ],
)
def test_a_bad_header_spec_is_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(InvalidToxic, match=message):
        parse_header_match("t", text)


# ---- building a matcher -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"nth": 1, "times": 2}, "nth and times exclude each other"),
        ({"times": 2, "sequence": "FP"}, "times and sequence exclude each other"),
        ({"nth": 3, "sequence": "F"}, "nth and sequence exclude each other"),
        ({"nth": 2, "every": 3}, "every=3 cannot combine with nth"),
        ({"sequence": "F", "every": 2}, "every=2 cannot combine with sequence"),
        ({"match_path": ""}, "'match_path' must not be empty"),
        ({"match_method": ""}, "'match_method' must not be empty"),
        ({"match_rpc_method": ""}, "'match_rpc_method' must not be empty"),
        ({"match_path": "/" * (MAX_PATTERN + 1)}, f"at most {MAX_PATTERN}"),
        ({"match_header": "nope"}, "'match_header' must be 'Name: value-glob'"),
    ],
)
def test_conflicts_and_absurd_values_are_refused(attributes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidToxic, match=message):
        build(**attributes)
    for toxic in ("http_error",):  # the same through a toxic's own validation
        with pytest.raises(InvalidToxic, match=message):
            get_toxic_class(toxic)(**attributes)


def test_the_defaults_match_everything_and_select_all() -> None:
    defaults = {name: attr.default for name, attr in MATCH_ATTRIBUTES.items()}
    matcher = build(**defaults)
    assert matcher == RequestMatcher()
    assert not matcher.needs_http
    assert not matcher.needs_rpc
    assert matcher.matches(None, None)
    assert matcher.selection == "every"
    assert [matcher.decide(n) for n in range(1, 5)] == [True] * 4


@pytest.mark.parametrize(
    ("attributes", "selection", "fired"),
    [
        ({"nth": 2}, "nth", [False, True, False, False, False]),
        ({"times": 2}, "times", [True, True, False, False, False]),
        ({"sequence": "fail,pass,fail"}, "sequence", [True, False, True, False, False]),
        ({"sequence": "PPF"}, "sequence", [False, False, True, False, False]),
        ({"every": 2}, "every", [False, True, False, True, False]),
    ],
)
def test_selections(attributes: dict[str, Any], selection: str, fired: list[bool]) -> None:
    matcher = build(**attributes)
    assert matcher.selection == selection
    assert [matcher.decide(n) for n in range(1, 6)] == fired


def test_fire_counts_per_connection_or_per_proxy(loop: asyncio.AbstractEventLoop) -> None:
    shared: dict[str, Any] = {}
    for scope, expected in [("connection", [True, True]), ("proxy", [True, False])]:
        matcher = build(nth=1, scope=scope)
        first, second = context(loop, shared), context(loop, shared)
        assert [matcher.fire(first)[0], matcher.fire(second)[0]] == expected
        assert matcher.fire(first) == (False, 2 if scope == "connection" else 3)
        shared.clear()


# ---- matching ---------------------------------------------------------------------------------
GET = b"GET /items/7?full=1 HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k-1\r\n\r\n"
POST = b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"


def test_http_criteria() -> None:
    get, post = head(GET), head(POST)
    assert build(match_method="get").mismatch(get) is None  # case-insensitive
    assert build(match_method="P*").mismatch(get) == "method"
    assert build(match_path="/items/*").mismatch(get) is None  # the query is not the path
    assert build(match_path="/items/7?full=1").mismatch(get) == "path"
    assert build(match_path="/orders").mismatch(post) is None
    assert build(match_header="idempotency-key: k-*").mismatch(get) is None
    assert build(match_header="Idempotency-Key: z*").mismatch(get) == "header"
    assert build(match_header="Idempotency-Key: *").mismatch(post) == "header"  # absent
    assert build(match_header="X-A: *").mismatch(None) == "header"  # not HTTP
    assert build(match_path="/x").http_criteria == ["match_path"]


def test_rpc_criteria() -> None:
    matcher = build(match_rpc_method="counter.*")
    assert matcher.needs_rpc
    assert matcher.mismatch(None, "counter.incr") is None
    assert matcher.mismatch(None, ["add", "counter.get"]) is None  # a batch: any call
    assert matcher.mismatch(None, ["add"]) == "rpc_method"
    assert matcher.mismatch(None, None) == "rpc_method"  # not a request of the protocol
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "counter.incr"}).encode()
    wire = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    assert rpc_methods("jsonrpc", wire, http=True) == ["counter.incr"]
    assert rpc_methods("jsonrpc", GET, http=True) is None
    assert rpc_methods(None, wire, http=True) is None


def test_unsupported_reasons() -> None:
    path = build(match_path="/x")
    assert 'framing="http"' in (path.unsupported_reason(stream="upstream", framing=None) or "")
    assert 'stream="upstream"' in (
        path.unsupported_reason(stream="downstream", framing="http") or ""
    )
    assert path.unsupported_reason(stream="upstream", framing="http") is None
    rpc = RequestMatcher.from_attributes("t", {"method": "add"}, rpc_attribute="method")
    assert rpc.unsupported_reason(stream="downstream", framing="lines") == (
        "replies carry no method name: on the downstream stream 'method' must be '*'"
    )
    assert build().unsupported_reason(stream="downstream", framing=None) is None


# ---- http_error's own attributes --------------------------------------------------------------
def test_headers_one_per_line() -> None:
    assert parse_headers("t", "Retry-After: 2\nContent-Type: text/plain; charset=utf-8") == (
        ("Retry-After", "2"),
        ("Content-Type", "text/plain; charset=utf-8"),
    )
    assert parse_headers("t", "X-A: 1\r\n\r\nX-A: 2\n") == (("X-A", "1"), ("X-A", "2"))
    assert parse_headers("t", "Refresh: 5; url=http://x/") == (("Refresh", "5; url=http://x/"),)
    assert parse_headers("t", "") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Retry-After: 2; Content-Type: text/plain", "separate headers with a newline"),
        ("Retry-After 2", "one 'Name: value' per line, separated by a newline; line 1"),
        ("X-A: 1\nbad name: 2", "line 2 is 'bad name: 2'"),
        ("Content-Length: 3", "'Content-Length' cannot be set"),
        ("transfer-encoding: chunked", "cannot be set"),
        ("Connection: close", "cannot be set"),
        ("X-A: a\x00b", "visible characters"),
        ("X-A: é€", "visible characters"),
        ("X-A: " + "a" * 9000, "at most"),
    ],
)
def test_bad_headers_are_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(InvalidToxic, match=message):
        get_toxic_class("http_error")(headers=text)


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"status": 100}, "informational"),
        ({"status": 99}, "must be >= 100"),
        ({"status": 600}, "must be <= 599"),
        ({"status": 204, "body": "x"}, "a 204 response has no body"),
        ({"retry_after": 2, "headers": "Retry-After: 3"}, "Retry-After is given twice"),
        ({"retry_after": -1}, "must be >= 0"),
        ({"body": "x" * (64 * 1024 + 1)}, "at most 65536"),
        ({"body": "\ud800"}, "not valid Unicode"),  # JSON may carry a lone surrogate
    ],
)
def test_bad_answers_are_refused(attributes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidToxic, match=message):
        get_toxic_class("http_error")(**attributes)


def test_render_response() -> None:
    headers = (("Retry-After", "2"),)
    assert render_response(503, headers, b"{}") == (
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert render_response(503, (), b"{}", head_request=True, connection="close") == (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
    )
    assert render_response(204, (), b"") == b"HTTP/1.1 204 No Content\r\n\r\n"
    assert render_response(599, (), b"").startswith(b"HTTP/1.1 599 Injected\r\n")


def run_one(toxic: Any, loop: asyncio.AbstractEventLoop, wire: bytes) -> tuple[Any, ...]:
    """One request through ``toxic``: (forwarded, replies, records, closed)."""
    forwarded: list[bytes] = []
    replies: list[bytes] = []
    records: list[tuple[str, dict[str, Any]]] = []
    closed: list[bool] = []
    ctx = context(
        loop,
        record=lambda decision, **f: records.append((decision, f)),
        close=lambda: closed.append(True),
        reply=replies.append,
        framing="http",
    )

    async def emit(chunk: Chunk) -> None:
        forwarded.append(chunk.data)

    loop.run_until_complete(toxic.process(ctx, Chunk(wire, 0.0, 0, True), emit))
    return forwarded, replies, records, bool(closed)


@pytest.mark.parametrize(
    ("request_line", "connection", "closes"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n", None, False),
        (b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n", b"close", True),
        (b"GET / HTTP/1.0\r\n", b"close", True),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n", b"keep-alive", False),
    ],
)
def test_the_answer_follows_the_requests_connection(
    loop: asyncio.AbstractEventLoop, request_line: bytes, connection: bytes | None, closes: bool
) -> None:
    toxic = get_toxic_class("http_error")(status=429, headers="X-A: 1")
    forwarded, [reply], [(decision, fields)], closed = run_one(toxic, loop, request_line + b"\r\n")
    assert forwarded == []
    assert reply.startswith(b"HTTP/1.1 429 Too Many Requests\r\nX-A: 1\r\n")
    assert (b"\r\nConnection: " + connection in reply) if connection else b"Connection" not in reply
    assert closed is closes
    assert (decision, fields["status"], fields["match"], fields["closed"]) == (
        "http_error",
        429,
        1,
        closes,
    )


def test_a_request_that_does_not_match_is_forwarded_and_journaled(
    loop: asyncio.AbstractEventLoop,
) -> None:
    toxic = get_toxic_class("http_error")(match_path="/only")
    forwarded, replies, [(decision, fields)], closed = run_one(toxic, loop, GET)
    assert (forwarded, replies, closed) == ([GET], [], False)
    assert (decision, fields["reason"], fields["method"], fields["path"]) == (
        "pass",
        "path",
        "GET",
        "/items/7",
    )


# ---- rpc_error and fail_first keep their attributes and gain matching ----------------------------
def test_rpc_error_and_fail_first_declare_the_matching_attributes() -> None:
    rpc_error = get_toxic_class("rpc_error").attributes_spec
    assert list(rpc_error)[:8] == [
        "protocol",
        "kind",
        "code",
        "message",
        "method",
        "nth",
        "every",
        "scope",
    ]
    assert {"match_method", "match_path", "match_header", "times", "sequence"} <= set(rpc_error)
    assert "match_rpc_method" not in rpc_error  # its `method` is the RPC method glob
    fail_first = get_toxic_class("fail_first").attributes_spec
    assert list(fail_first)[:7] == ["count", "scope", "mode", "protocol", "kind", "code", "message"]
    assert {"match_method", "match_path", "match_header", "match_rpc_method", "sequence"} <= set(
        fail_first
    )


def test_rpc_error_and_fail_first_refuse_conflicts() -> None:
    rpc_error, fail_first = get_toxic_class("rpc_error"), get_toxic_class("fail_first")
    with pytest.raises(InvalidToxic, match="nth and sequence exclude each other"):
        rpc_error(nth=1, sequence="F")
    with pytest.raises(InvalidToxic, match="every=2 cannot combine with nth"):
        rpc_error(nth=1, every=2)
    with pytest.raises(InvalidToxic, match="count=3 and sequence exclude each other"):
        fail_first(count=3, sequence="FFP")
    with pytest.raises(InvalidToxic, match="rpc_error: attribute 'sequence' never fails"):
        rpc_error(sequence="pass")
    assert rpc_error(nth=2).matcher.selection == "nth"
    assert fail_first(count=3).matcher.times == 3
    assert fail_first(sequence="PF").matcher.sequence == (False, True)
    assert fail_first(sequence="PF").matcher.times == 0


def test_fail_first_counts_only_matching_requests(loop: asyncio.AbstractEventLoop) -> None:
    toxic = get_toxic_class("fail_first")(match_method="POST", count=1)
    forwarded, _, [(decision, fields)], closed = run_one(toxic, loop, GET)
    assert (forwarded, decision, fields["reason"], closed) == ([GET], "pass", "method", False)
    forwarded, _, [(decision, fields)], closed = run_one(toxic, loop, POST)
    assert (forwarded, decision, fields["match"], fields["path"], closed) == (
        [],
        "fail",
        1,
        "/orders",
        True,
    )
