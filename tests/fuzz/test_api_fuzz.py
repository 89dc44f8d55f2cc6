"""A schema-guided fuzz of every admin route of the Toxiproxy-compatible API, over real HTTP.

Hypothesis builds requests from the route table (:data:`faultlab.proxy.api.ROUTES` and the
``/faultlab/`` routes): right and wrong methods, names of every shape in the path, JSON
bodies whose fields are valid, mistyped, huge, lone surrogates, deeply nested or unknown,
raw garbage bodies, query strings, and a share of malformed HTTP. After *each* request:

- the server answered it, and still answers ``/version`` and ``GET /proxies``;
- no 5xx, except a listen failure (500, as Toxiproxy) on a route that binds;
- every 4xx has a JSON error body ``{"error", "status"}`` (Go's bare 404/405/403 for
  unrouted requests and browsers are Toxiproxy's own answers and are checked as such);
- a refused request (4xx, or a failed create or update) left ``GET /proxies`` unchanged;
- every proxy can be read, its toxics listed, reset, and deleted by URL.

The counts: ``budget(ci=2000, slow=10000)`` requests (``FAULTLAB_SLOW=1`` for slow mode);
the run is derandomized, so CI replays the same requests every time.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultlab.codecs.framing import framer_names
from faultlab.journal import Journal
from faultlab.proxy import api
from faultlab.proxy.engine import ProxyEngine
from faultlab.proxy.server import ApiServer
from faultlab.rpc.base import protocol_names
from faultlab.toxics.base import get_toxic_class, toxic_types
from tests.fuzz.budget import SLOW, budget

REQUESTS = budget(ci=2000, slow=10000)
PROFILE = "faultlab-api-fuzz"
settings.register_profile(
    PROFILE,
    derandomize=True,  # the same requests on every run: a CI failure replays locally
    deadline=None,
    database=None,
    max_examples=REQUESTS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
pytestmark = pytest.mark.timeout(3600 if SLOW else 300)

CLOSED = "127.0.0.1:9"  # upstream of every valid proxy: never dialled, nothing listens
TIMEOUT = 20.0
BUSY = "{busy}"  # replaced by the API's own port: a listen that must fail with a 500
BASELINE = ("base", "off")
BINDING = {("POST", "/proxies"), ("POST", "/populate"), ("POST", "/reset")}
LISTEN_FAILURE = ("listen ", "address ", "lookup ")


# ---- strategies -----------------------------------------------------------------------
def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """``choices`` in proportion to their weights (``one_of`` draws its branches evenly)."""
    indices = [i for i, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(indices).flatmap(lambda i: choices[i][1])


def _surrogate() -> st.SearchStrategy[str]:
    return st.integers(0xD800, 0xDFFF).map(chr)


_weird_char = st.one_of(
    st.sampled_from(list("/?#%.&=+:@;, \t\n\r\x00\x1f\x7f\x85\\\"'<>[]{}\u2028\ufffdé😀")),
    _surrogate(),
)
_short_text = st.text(max_size=10)
_weird_text = st.lists(st.one_of(st.characters(), _weird_char), max_size=10).map("".join)

NAMES: st.SearchStrategy[str] = weighted(
    (4, st.sampled_from(["base", "off", "fz", "fz2", "nope"])),
    (6, _short_text.map(lambda t: "fz" + t)),
    (1, st.sampled_from(["", ".", "..", "...", "a/b", "a?b", "a#b", "a%2Fb", "a b", "\ufffd"])),
    (1, st.sampled_from(["x" * 2048, "x" * 2049, "\ud800", "é", "a\x00b", "Base", "base "])),
    (2, _weird_text),
)
PATH_PROXIES = weighted((8, st.sampled_from(["base", "off"])), (3, NAMES))
PATH_TOXICS = weighted((6, st.sampled_from(["lat", "noop_upstream"])), (4, NAMES))
VALID_LISTENS = ["127.0.0.1:0", "localhost:0", "tcp://127.0.0.1:0", "[::1]:0"]
LISTENS: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(VALID_LISTENS * 6),
    st.sampled_from(["garbage", "127.0.0.1:", "127.0.0.1", BUSY, f"127.0.0.1:{BUSY[1:-1]}"]),
    st.sampled_from(
        ["[::1", "[::1]x:0", "[127.0.0.1]:0", "::1:0", "127.0.0.1:99999", "127.0.0.1:http"]
    ),
    st.sampled_from(
        ["127.0.0.1:-1", "a" * 64 + ":0", "a..b:0", "bogus://x", "tcp://[::1", "tcp://u@h:0"]
    ),
    st.sampled_from(
        ["\ud800:0", "h\x00:0", "://x", "tcp://127.0.0.1:99999", "1.2.3.4:0", "x" * 5000]
    ),
    st.integers(0, 3).map(lambda n: f"unix://@faultlab-api-fuzz-{n}"),
    _weird_text.map(lambda t: t.replace(":", "")),  # no port: never a DNS lookup
)
UPSTREAMS: st.SearchStrategy[str] = weighted(
    (12, st.just(CLOSED)),
    (
        2,
        st.sampled_from(
            ["localhost:9", "garbage", "example.invalid:80", "[::1]:9", "unix:///nonexistent.sock"]
        ),
    ),
    (
        2,
        st.sampled_from(
            ["udp://127.0.0.1:9", "tls://127.0.0.1:9", "mq://fz", "unix://@fz", "tcp://h:1"]
        ),
    ),
    (1, st.sampled_from(["[::1", "x:99999", "x:http", "bogus://x", "\ud800:9", "a" * 64 + ":9"])),
    (1, st.sampled_from(["tcp://[::1:1", "x\n:9", "::1:9", "\ufffd:9", "a..b:9", "u@h:9"])),
    (1, st.just("x" * 100_000)),
    (1, _weird_text),
    (1, _weird_text.map(lambda t: t + ":9")),
)
_number = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 2**64, 10**400]),
    st.floats(allow_nan=False, allow_infinity=False),
)
JUNK: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    _number,
    _weird_text,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(_short_text, st.integers(), max_size=2),
    st.integers(1, 300).map(lambda n: json.loads("[" * n + "]" * n)),
)


def _maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value of the schema, sometimes one of the wrong type."""
    return weighted((9, values), (1, JUNK))


def _mangle_keys(draw: st.DrawFn, fields: dict[str, Any]) -> dict[str, Any]:
    """Go matches keys case-insensitively and ignores unknown ones: exercise both."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        style = draw(st.sampled_from(["same", "same", "same", "upper", "title"]))
        key = {"upper": key.upper(), "title": key.title()}.get(style, key)
        out[key] = value
    for key, value in draw(st.dictionaries(_weird_text, JUNK, max_size=2)).items():
        out.setdefault(key, value)
    return out


@st.composite
def proxy_fields(draw: st.DrawFn, *, update: bool = False) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    required = () if update else ("name", "upstream")
    for key, values in (
        ("name", NAMES),
        ("listen", LISTENS),
        ("upstream", UPSTREAMS),
        ("enabled", st.booleans()),
        ("framing", st.sampled_from([*framer_names(), "nope", ""])),
        ("protocol", st.sampled_from([*protocol_names(), "nope", ""])),
        ("toxics", st.just([{"type": "latency"}])),
    ):
        if update and key == "name":
            continue
        present = draw(st.sampled_from([True] * 19 + [False])) if key in required else None
        if present or (present is None and draw(st.booleans())):
            fields[key] = draw(_maybe(values))
    if "listen" not in fields and not update and draw(st.integers(0, 3)) > 0:
        fields["listen"] = "127.0.0.1:0"  # never a wildcard bind from the fuzz
    return _mangle_keys(draw, fields)


TOXIC_TYPES = sorted(toxic_types())


@st.composite
def attributes(draw: st.DrawFn, type_name: Any) -> dict[str, Any]:
    known: list[str] = []
    if isinstance(type_name, str) and type_name in TOXIC_TYPES:
        known = sorted(get_toxic_class(type_name).attributes_spec)
    keys = st.one_of(st.sampled_from(known), _weird_text) if known else _weird_text
    value = st.one_of(_number, st.booleans(), _weird_text, st.none(), JUNK)
    return draw(st.dictionaries(keys, value, max_size=4))


@st.composite
def toxic_fields(draw: st.DrawFn, *, update: bool = False) -> dict[str, Any]:
    type_name = draw(
        _maybe(st.one_of(st.sampled_from(TOXIC_TYPES), st.sampled_from(["nope", "", "LATENCY"])))
    )
    fields: dict[str, Any] = {}
    if not update:
        fields["type"] = type_name
        if draw(st.booleans()):
            fields["name"] = draw(_maybe(NAMES))
        if draw(st.booleans()):
            streams = st.sampled_from(["upstream", "downstream", "UPSTREAM", "Down", "", "x"])
            fields["stream"] = draw(_maybe(streams))
    if draw(st.booleans()):
        fields["toxicity"] = draw(_maybe(st.one_of(st.floats(-1, 2), st.sampled_from([0, 1]))))
    if draw(st.integers(0, 3)) > 0:
        fields["attributes"] = draw(_maybe(attributes(type_name)))
    return _mangle_keys(draw, fields)


@st.composite
def body_text(draw: st.DrawFn, value: Any) -> bytes:
    """The JSON of ``value`` (lone surrogates as ``\\udc80``-style escapes), sometimes mutated."""
    text = json.dumps(value)
    mutation = draw(
        st.sampled_from(["none"] * 30 + ["truncate", "nest", "trail", "inf", "bytes", "huge"])
    )
    if mutation == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif mutation == "nest":
        depth = draw(st.sampled_from([1, api.MAX_DEPTH - 1, api.MAX_DEPTH, 1000, 20000]))
        text = "[" * depth + text + "]" * draw(st.sampled_from([0, depth]))
    elif mutation == "trail":
        text += draw(st.sampled_from([" trailing", "}", "[[[[", "\x00", '{"name":"x"}']))
    elif mutation == "inf":
        text = text.replace("1", draw(st.sampled_from(["1e999", "-1e999", "9" * 5000, "1.5"])))
    elif mutation == "bytes":
        raw = text.encode()
        at = draw(st.integers(0, len(raw)))
        return (
            raw[:at]
            + draw(st.sampled_from([b"\xff", b"\xed\xa0\x80", b"\xc3", b"\x00"]))
            + raw[at:]
        )
    elif mutation == "huge":
        size = draw(st.sampled_from([100_000, api.MAX_BODY + 1]))
        return b'{"name":"' + b"h" * size + b'","upstream":"127.0.0.1:9"}'
    return text.encode()


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    route: str = ""
    """The route's pattern (``/proxies/{p}``), for the invariants."""


def _segment(draw: st.DrawFn, names: st.SearchStrategy[str]) -> str:
    name = draw(names)
    style = draw(st.sampled_from(["quote"] * 6 + ["plain"] * 3 + ["junk"]))
    if style == "plain" and name.isascii() and all(c.isalnum() or c in "-._~" for c in name):
        return name
    if style == "junk":
        return draw(st.sampled_from(["%", "%zz", "%FF", "%ED%A0%80", "%2F", "a%00b", "%2e%2e"]))
    return quote(name, safe="", errors="surrogatepass")


def _query(draw: st.DrawFn, events: bool) -> str:
    parts: list[str] = []
    if events and draw(st.booleans()):
        since = draw(
            st.one_of(
                st.integers(0, 50).map(str),
                st.sampled_from(["", "-1", "1.5", "9" * 19, "9" * 5000, "\u0661", "0x1", "²"]),
                st.integers(0, 2**64).map(str),
            )
        )
        parts.append("since=" + quote(since))
    if events and draw(st.booleans()):
        parts.append("kind=" + quote(draw(st.sampled_from(["reset", "proxy_created,x", ""]))))
    if draw(st.integers(0, 5)) == 0:
        parts.append(quote(draw(_weird_text), safe="=&", errors="surrogatepass"))
    return "?" + "&".join(parts) if parts else ""


METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"]
_WEIGHTS = {
    ("/proxies", "POST"): 12,
    ("/proxies", "GET"): 2,
    ("/populate", "POST"): 6,
    ("/proxies/{p}", "GET"): 2,
    ("/proxies/{p}", "POST"): 4,
    ("/proxies/{p}", "PATCH"): 3,
    ("/proxies/{p}", "DELETE"): 2,
    ("/proxies/{p}/toxics", "POST"): 12,
    ("/proxies/{p}/toxics", "GET"): 2,
    ("/proxies/{p}/toxics/{t}", "GET"): 2,
    ("/proxies/{p}/toxics/{t}", "POST"): 4,
    ("/proxies/{p}/toxics/{t}", "PATCH"): 3,
    ("/proxies/{p}/toxics/{t}", "DELETE"): 2,
    ("/reset", "POST"): 2,
    ("/version", "GET"): 1,
    ("/faultlab/events", "GET"): 3,
    ("/faultlab/proxies/{p}/events", "GET"): 2,
    ("/faultlab/seed", "GET"): 1,
    ("/faultlab/toxics", "GET"): 1,
    ("other", "GET"): 2,
}
ROUTE_WEIGHTS = [pair for pair, weight in _WEIGHTS.items() for _ in range(weight)]
ROUTE_WEIGHTS += [(route, "*") for route, _ in sorted(set(_WEIGHTS))]  # wrong methods


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """One request to a route of the table, with a body the route's schema suggests."""
    route, method = draw(st.sampled_from(ROUTE_WEIGHTS))
    if method == "*":  # any method, mostly a wrong one
        method = draw(st.sampled_from(METHODS))
    if route == "other":
        path = draw(
            st.sampled_from(
                [
                    *("/", "/nope", "/proxies/", "/metrics", "//proxies", "/proxies/a/b/c/d/e"),
                    *("/version/", "/faultlab", "/faultlab/", "*", "http://x/proxies"),
                    *("http://[::1/proxies", "https://h/version?x", "/proxies/../version"),
                ]
            )
        )
    else:
        path = route.replace("{p}", _segment(draw, PATH_PROXIES))
        path = path.replace("{t}", _segment(draw, PATH_TOXICS))
    path += _query(draw, route.startswith("/faultlab/") and route.endswith("events"))
    value: Any
    if route == "/proxies":
        value = draw(proxy_fields())
    elif route == "/populate":
        value = draw(st.one_of(st.lists(proxy_fields(), max_size=3), JUNK))
    elif route == "/proxies/{p}":
        value = draw(proxy_fields(update=True))
    elif route == "/proxies/{p}/toxics":
        value = draw(toxic_fields())
    elif route == "/proxies/{p}/toxics/{t}":
        value = draw(toxic_fields(update=True))
    else:
        value = draw(JUNK)
    kind = draw(st.sampled_from(["json"] * 18 + ["empty", "garbage"]))
    if kind == "empty" or (method in ("GET", "HEAD", "DELETE") and kind != "garbage"):
        body = b""
    elif kind == "garbage":
        body = draw(st.binary(max_size=64))
    else:
        body = draw(body_text(value))
    headers: list[tuple[str, str]] = []
    extra = draw(st.sampled_from(["none"] * 20 + ["browser", "type"]))
    if extra == "browser":
        headers.append(("User-Agent", "Mozilla/5.0 (fuzz)"))
    elif extra == "type":
        headers.append(("Content-Type", draw(st.sampled_from(["text/plain", "x/y", "", "json"]))))
    return Request(method, path, body, tuple(headers), route)


RAW_GARBAGE = st.one_of(
    st.binary(max_size=120),
    st.sampled_from(
        [
            b"GET /version HTTP/9.9\r\n\r\n",
            b"get /version HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /version HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"GET /version HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
            b"POST /proxies HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET /version HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n",
            b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /version HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
            b"GET /version HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"\r\n\r\n\r\n",
        ]
    ),
)


# ---- the server and a keep-alive client --------------------------------------------------
@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One keep-alive connection (reopened only after the server said ``Connection: close``);
    a request that gets no response is a failure, never retried."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)

    def send(
        self, method: str, target: str, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()
    ) -> Reply:
        # an explicit Host: http.client would otherwise parse absolute-form targets itself
        hdrs = {"Host": "127.0.0.1", "User-Agent": "faultlab-api-fuzz", **dict(headers)}
        if body or method in ("POST", "PATCH", "PUT"):
            hdrs["Content-Length"] = str(len(body))
        self.conn.request(method, target, body or None, hdrs)
        response = self.conn.getresponse()
        data = response.read()
        if response.will_close:
            self.conn.close()
        return Reply(response.status, data, {k.lower(): v for k, v in response.getheaders()})

    def close(self) -> None:
        self.conn.close()


def raw_exchange(port: int, data: bytes) -> list[tuple[int, bytes]]:
    """Send raw bytes, half-close, and parse every response the server wrote."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    responses = []
    while out:
        head, sep, rest = out.partition(b"\r\n\r\n")
        assert sep, f"truncated response head: {out[:200]!r}"
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        responses.append((status, rest[:length]))
        out = rest[length:]
    return responses


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[ProxyEngine, ApiServer]]:
    # a small journal: its ring fills and drops (exercised too), and /faultlab/events?since=0
    # costs the same at the 10,000th request as at the first
    with ProxyEngine(seed=20260523, journal=Journal(max_events=10_000)) as engine:
        server = ApiServer(engine, host="127.0.0.1", port=0).start()
        try:
            yield engine, server
        finally:
            server.close()


# ---- invariants ----------------------------------------------------------------------------
GO_BARE = {
    404: b"404 page not found\n",
    405: b"",
    403: b"User agent not allowed\n",
}


def check_error_body(reply: Reply, context: str) -> None:
    """A 4xx or 5xx carries ``{"error": str, "status": <the status>}`` (populate adds
    ``proxies``), unless it is one of Go's bare answers, byte for byte."""
    if reply.status in GO_BARE and reply.body == GO_BARE[reply.status]:
        return
    try:
        error = json.loads(reply.body)
    except ValueError:
        pytest.fail(f"{context}: {reply.status} without a JSON body: {reply.body[:300]!r}")
    assert isinstance(error, dict), context
    assert set(error) - {"proxies"} == {"error", "status"}, f"{context}: {error}"
    assert error["status"] == reply.status, context
    assert isinstance(error["error"], str), context
    assert error["error"], context


def is_listen_failure(request: Request, reply: Reply) -> bool:
    if reply.status != 500:
        return False
    message = json.loads(reply.body).get("error", "")
    binds = (request.method, request.route) in BINDING or (
        request.route == "/proxies/{p}" and request.method in ("POST", "PATCH")
    )
    return binds and message.startswith(LISTEN_FAILURE)


@dataclass
class Stats:
    sent: int = 0
    checks: int = 0
    raw: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    routes: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


class Fuzz:
    """Runs one request, checks every invariant, and puts the baseline back."""

    def __init__(self, engine: ProxyEngine, server: ApiServer, stats: Stats) -> None:
        self.engine = engine
        self.port = server.port
        self.client = Client(server.port)
        self.stats = stats
        self.next_event = 0

    def get(self, target: str) -> Reply:
        self.stats.checks += 1
        reply = self.client.send("GET", target)
        assert reply.status == 200, f"GET {target}: {reply.status} {reply.body[:300]!r}"
        return reply

    def proxies(self) -> dict[str, Any]:
        value = self.get("/proxies").json()
        assert isinstance(value, dict)
        return value

    def baseline(self) -> None:
        """``base`` (enabled, two toxics) and ``off`` (disabled); nothing else."""
        engine = self.engine

        async def restore() -> None:
            for name in list(engine.proxies):
                if name not in BASELINE:
                    await engine.delete_async(name)
            base = engine.proxies.get("base")
            if base is None or base.upstream != CLOSED or not base.enabled:
                if base is not None:
                    await engine.delete_async("base")
                base = await engine.create_async("base", "127.0.0.1:0", CLOSED)
            if sorted(base.toxics) != ["lat", "noop_upstream"]:
                base.remove_all_toxics()
                base.add_toxic("latency", name="lat", attributes={"latency": 5})
                base.add_toxic("noop", stream="upstream")
            off = engine.proxies.get("off")
            if off is None or off.upstream != CLOSED or off.listen != "127.0.0.1:0":
                if off is not None:
                    await engine.delete_async("off")
                await engine.create_async("off", "127.0.0.1:0", CLOSED, enabled=False)
            else:
                await off.stop()

        engine.call(restore)

    def run(self, request: Request) -> None:
        self.baseline()
        before = self.proxies()
        target = request.target.replace(BUSY[1:-1], str(self.port)).replace(BUSY, f":{self.port}")
        body = request.body.replace(BUSY.encode(), f"127.0.0.1:{self.port}".encode())
        body = body.replace(BUSY[1:-1].encode(), str(self.port).encode())
        context = f"{request.method} {target[:200]} {body[:300]!r}"
        self.stats.sent += 1
        try:
            reply = self.client.send(request.method, target, body, request.headers)
        except (http.client.HTTPException, OSError) as exc:
            pytest.fail(f"{context}: no response ({type(exc).__name__}: {exc})")
        self.stats.statuses[reply.status] += 1
        self.stats.routes[request.route, request.method, reply.status] += 1
        self.check_reply(request, reply, context)
        after = self.after(context)
        if reply.status >= 400:
            if request.route in ("/populate", "/reset") and reply.status == 500:
                pass  # Toxiproxy keeps what populate or reset did before the listen failure
            else:
                assert after == before, f"{context}: a refused request changed the proxies"
        self.cleanup(after, context)

    def check_reply(self, request: Request, reply: Reply, context: str) -> None:
        assert reply.status < 600
        if request.method == "HEAD":  # no body by definition; Go routes no HEAD: 404 or 405
            assert reply.status in (403, 404, 405), f"{context}: {reply.status}"
            return
        if reply.status >= 500:
            check_error_body(reply, context)
            assert is_listen_failure(request, reply), f"{context}: {reply.status} {reply.body!r}"
        elif reply.status >= 400:
            check_error_body(reply, context)
            if reply.body.startswith(b"{"):
                self.stats.errors[reply.json()["error"][:50]] += 1
        elif reply.body and request.method != "HEAD":
            json.loads(reply.body)  # every success body is JSON

    def after(self, context: str) -> dict[str, Any]:
        """The API still answers, and every proxy it lists can be read by URL."""
        assert self.engine.loop.is_running(), f"{context}: the engine loop died"
        assert self.get("/version").body == b'{"version": "2.12.0"}\n'
        state = self.proxies()
        events = self.get(f"/faultlab/events?since={self.next_event}").json()
        self.next_event = events["next"]  # only what is new: the journal only grows
        for name, proxy in state.items():
            path = "/proxies/" + quote(name, safe="")
            assert self.get(path).json() == proxy, f"{context}: {name!r} reads differently"
            self.get(path + "/toxics")
        return state

    def cleanup(self, state: dict[str, Any], context: str) -> None:
        """Reset (204, or a listen failure), and delete what the request made, by URL."""
        self.stats.checks += 1
        reply = self.client.send("POST", "/reset")
        if reply.status != 204:
            check_error_body(reply, context)
            assert reply.status == 500, f"{context}: reset answered {reply.status}"
            assert reply.json()["error"].startswith(LISTEN_FAILURE), context
        for name in state:
            if name not in BASELINE:
                self.stats.checks += 1
                reply = self.client.send("DELETE", "/proxies/" + quote(name, safe=""))
                assert reply.status == 204, f"{context}: cannot delete {name!r}: {reply.body!r}"

    def raw(self, data: bytes) -> None:
        """Malformed HTTP on its own connection: any answer is a 4xx with a JSON body."""
        self.stats.raw += 1
        self.stats.sent += 1
        before = self.proxies()
        for status, body in raw_exchange(self.port, data):
            self.stats.statuses[status] += 1
            context = f"raw {data[:200]!r}"
            # 501: a Transfer-Encoding other than chunked (RFC 9112 6.1, and Go's answer)
            assert status < 500 or status == 501, f"{context}: {status} {body!r}"
            if status >= 400:
                check_error_body(Reply(status, body), context)
        assert self.after(f"raw {data[:200]!r}") == before


def test_api_fuzz(
    served: tuple[ProxyEngine, ApiServer], capsys: pytest.CaptureFixture[str]
) -> None:
    engine, server = served
    stats = Stats()
    fuzz = Fuzz(engine, server, stats)

    cases = st.sampled_from(["http"] * 9 + ["raw"]).flatmap(
        lambda kind: RAW_GARBAGE if kind == "raw" else requests()
    )

    @settings(settings.get_profile(PROFILE))
    @given(cases)  # raw HTTP: about 1 case in 10 (Hypothesis draws it less often)
    def one(case: Request | bytes) -> None:
        if isinstance(case, bytes):
            fuzz.raw(case)
        else:
            fuzz.run(case)

    start = time.monotonic()
    try:
        one()
    finally:
        fuzz.client.close()
        elapsed = time.monotonic() - start
        with capsys.disabled():
            print(
                f"\napi fuzz ({'slow' if SLOW else 'CI'} mode, Hypothesis profile {PROFILE!r}, "
                f"derandomized): {stats.sent} requests ({stats.raw} raw HTTP), "
                f"{stats.checks} invariant checks, {elapsed:.1f} s; statuses "
                f"{dict(sorted(stats.statuses.items()))}"
            )
            if os.environ.get("FAULTLAB_FUZZ_VERBOSE"):
                for (route, method, status), count in sorted(stats.routes.items()):
                    print(f"  {count:6d}  {method:7s} {route:32s} {status}")
                for message, count in stats.errors.most_common(40):
                    print(f"  {count:6d}  {message!r}")
    assert stats.sent >= REQUESTS
