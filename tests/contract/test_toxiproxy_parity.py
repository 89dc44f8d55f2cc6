"""Differential contract: the same toxic and proxy requests to faultlab and to a real
Toxiproxy 2.12 (``toxiproxy-server``), comparing status codes and the JSON they answer.

Why: "accept what Toxiproxy accepts, with the same meaning" is a claim about another
program, so each case is sent to that program too. Every case agrees byte for byte in its
decoded JSON, except the few in :data:`DEVIATIONS`, which are asserted to be exactly the
deviation docs/proxy.md lists (and nothing else). Cases that crash or hang Toxiproxy are only
*created* on it, never given traffic there; faultlab's safe meaning for them is checked
through real sockets below. Skipped, with the reason, when the binary is absent (as on CI).
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from faultlab.proxy.api import STANDARD_TOXICS
from faultlab.proxy.engine import ProxyEngine, ProxyHandle
from faultlab.proxy.reference import RealToxiproxy, find_toxiproxy, missing_reason
from faultlab.proxy.server import ApiServer
from faultlab.toxics.slicer import Slicer

from .conftest import TIMEOUT

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

NO_UPDATE = object()


@dataclass(frozen=True)
class Case:
    """One toxic request (and optionally an update of the toxic it made)."""

    id: str
    body: Any
    update: Any = NO_UPDATE
    """A JSON value, or text (a ``str``) sent as given."""
    raw: bool = False
    """``body`` is text sent as given, not JSON-encoded."""


@dataclass(frozen=True)
class ProxyCase:
    id: str
    body: Any
    path: str = "/proxies"


@dataclass
class Answer:
    status: int
    body: Any
    extra: dict[str, Any] = field(default_factory=dict)


def _toxic(type_name: str, **attributes: Any) -> dict[str, Any]:
    return {"type": type_name, "attributes": attributes}


CASES: list[Case] = [
    # every toxic with no attributes: Go's zero values (slicer's average_size 0 included)
    *(Case(f"{t}-defaults", {"type": t}) for t in sorted(STANDARD_TOXICS)),
    # latency
    Case("latency-negative", _toxic("latency", latency=-5, jitter=-3)),
    Case("latency-int64-min", _toxic("latency", latency=INT64_MIN)),
    Case("latency-int64-max", _toxic("latency", latency=INT64_MAX, jitter=INT64_MAX)),
    Case("latency-beyond-int64", _toxic("latency", latency=2**63)),
    Case("latency-below-int64", _toxic("latency", latency=INT64_MIN - 1)),
    Case("latency-null", _toxic("latency", latency=None, jitter=4)),
    Case("latency-string", _toxic("latency", latency="5")),
    Case("latency-fraction", _toxic("latency", latency=1.5)),
    Case("latency-exact-float", _toxic("latency", latency=100.0)),
    Case("latency-bool", _toxic("latency", jitter=True)),
    Case("latency-array", _toxic("latency", jitter=[1])),
    Case("latency-key-case", {"TYPE": "latency", "Attributes": {"LATENCY": 3, "Jitter": 1}}),
    Case("latency-unknown-key", _toxic("latency", latency=3, bogus="x")),
    # bandwidth (a negative rate panics Toxiproxy on the first chunk: faultlab stalls, as 0)
    Case("bandwidth-zero", _toxic("bandwidth", rate=0)),
    Case("bandwidth-negative", _toxic("bandwidth", rate=-1)),
    Case("bandwidth-int64-min", _toxic("bandwidth", rate=INT64_MIN)),
    Case("bandwidth-int64-max", _toxic("bandwidth", rate=INT64_MAX)),
    Case("bandwidth-beyond-int64", _toxic("bandwidth", rate=2**63)),
    Case("bandwidth-string", _toxic("bandwidth", rate="fast")),
    # slow_close, timeout, reset_peer: negative is "at once" / "never"
    Case("slow_close-negative", _toxic("slow_close", delay=-1)),
    Case("slow_close-int64-max", _toxic("slow_close", delay=INT64_MAX)),
    Case("timeout-negative", _toxic("timeout", timeout=-1)),
    Case("timeout-int64-max", _toxic("timeout", timeout=INT64_MAX)),
    Case("timeout-object", _toxic("timeout", timeout={"ms": 1})),
    Case("reset_peer-negative", _toxic("reset_peer", timeout=-1)),
    Case("reset_peer-int64-min", _toxic("reset_peer", timeout=INT64_MIN)),
    # slicer: the node client's own case, and the ones that crash Toxiproxy
    Case("slicer-variation-equals-average", _toxic("slicer", average_size=10, size_variation=10)),
    Case("slicer-variation-above-average", _toxic("slicer", average_size=1, size_variation=300)),
    Case("slicer-negative", _toxic("slicer", average_size=-1, size_variation=-2, delay=-3)),
    Case(
        "slicer-int-extremes",
        _toxic("slicer", average_size=INT64_MAX, size_variation=INT64_MIN, delay=INT64_MAX),
    ),
    Case("slicer-beyond-int", _toxic("slicer", average_size=2**63)),
    Case("slicer-fraction", _toxic("slicer", average_size=1.5)),
    Case("slicer-bool", _toxic("slicer", average_size=True)),
    # limit_data
    Case("limit_data-negative", _toxic("limit_data", bytes=-1)),
    Case("limit_data-int64-max", _toxic("limit_data", bytes=INT64_MAX)),
    Case("limit_data-string", _toxic("limit_data", bytes="1")),
    # noop ignores whatever it is given
    Case("noop-junk", _toxic("noop", a=1, b=[None], c={"d": "e"})),
    # toxicity: any float32
    *(
        Case(f"toxicity-{value}", {"type": "latency", "toxicity": value})
        for value in (0, 1, 0.5, 0.1, 1.5, 7, -3, 3.4028234e38, 3.5e38, "x", None, True)
    ),
    Case("toxicity-underflow", {"type": "latency", "toxicity": 1e-50}),
    Case("toxicity-negative-underflow", {"type": "latency", "toxicity": -1e-50}),
    # stream, name, type and attributes as a whole
    Case("stream-upper", {"type": "latency", "stream": "UPSTREAM"}),
    Case("stream-mixed-named", {"type": "latency", "stream": "Downstream", "name": "x"}),
    Case("stream-invalid", {"type": "latency", "stream": "sideways"}),
    Case("stream-null", {"type": "latency", "stream": None}),
    Case("stream-number", {"type": "latency", "stream": 1}),
    Case("name-null", {"type": "latency", "name": None}),
    Case("name-empty", {"type": "latency", "name": ""}),
    Case("type-missing", {"attributes": {"latency": 1}}),
    Case("type-case", {"type": "Latency"}),
    Case("type-unknown", {"type": "down"}),
    Case("attributes-number", {"type": "latency", "attributes": 5}),
    Case("attributes-array", {"type": "latency", "attributes": []}),
    Case("attributes-null", {"type": "latency", "attributes": None}),
    # Go reports the stream, the type and a taken name before it decodes attributes
    Case("order-type-before-attributes", _toxic("bogus", latency="x")),
    Case(
        "order-stream-before-attributes",
        {"type": "latency", "stream": "side", "attributes": {"latency": "x"}},
    ),
    Case("order-toxicity-before-stream", {"type": "latency", "toxicity": "x", "stream": "side"}),
    Case("body-not-object", "5", raw=True),
    Case("body-array", "[1]", raw=True),
    Case("update-body-not-object", _toxic("latency"), "5"),
    Case("update-body-null", _toxic("latency", latency=3), None),
    Case("body-empty", "", raw=True),
    # updates: attributes merge into the live toxic, null leaves one alone
    Case("update-null", _toxic("latency", latency=1), {"attributes": {"latency": None}}),
    Case("update-toxicity-above-one", _toxic("latency", latency=1), {"toxicity": 7}),
    Case("update-toxicity-null", {"type": "latency", "toxicity": 0.5}, {"toxicity": None}),
    Case("update-empty", {"type": "latency", "toxicity": 0.5}, {}),
    Case("update-merge", _toxic("latency", latency=1), {"attributes": {"jitter": 2}}),
    Case(
        "update-stream-and-type-ignored",
        _toxic("latency", latency=1),
        {"stream": "upstream", "type": "slicer", "name": "other"},
    ),
    Case(
        "update-slicer-variation",
        _toxic("slicer", average_size=10),
        {"attributes": {"size_variation": 50}},
    ),
    Case("update-bandwidth-negative", _toxic("bandwidth", rate=100), {"attributes": {"rate": -5}}),
    Case("update-wrong-type", _toxic("latency", latency=1), {"attributes": {"jitter": "x"}}),
    Case("update-attributes-number", _toxic("latency", latency=1), {"attributes": 5}),
    Case("update-toxicity-string", _toxic("latency", latency=1), {"toxicity": "x"}),
    Case("update-toxicity-overflow", _toxic("latency", latency=1), {"toxicity": 1e39}),
]

PROXY_CASES: list[ProxyCase] = [
    ProxyCase(
        "proxy-extra-keys",
        {"name": "q", "upstream": "127.0.0.1:9", "listen": "127.0.0.1:0", "extra": [1]},
    ),
    ProxyCase("proxy-disabled", {"name": "q", "upstream": "127.0.0.1:9", "enabled": False}),
    ProxyCase("proxy-enabled-string", {"name": "q", "upstream": "127.0.0.1:9", "enabled": "y"}),
    ProxyCase("proxy-name-number", {"name": 1, "upstream": "127.0.0.1:9"}),
    ProxyCase("proxy-no-upstream", {"name": "q"}),
    ProxyCase("proxy-null-name", {"name": None, "upstream": "127.0.0.1:9"}),
    ProxyCase("proxy-key-case", {"NAME": "q", "Upstream": "127.0.0.1:9", "ENABLED": False}),
    ProxyCase(
        "proxy-disabled-garbage-listen",
        {"name": "q", "upstream": "127.0.0.1:9", "listen": "garbage", "enabled": False},
    ),
    ProxyCase("update-enabled-string", {"enabled": "x"}, "/proxies/p"),
    ProxyCase("update-nulls", {"listen": None, "upstream": None, "enabled": None}, "/proxies/p"),
    ProxyCase("update-empty", {}, "/proxies/p"),
    ProxyCase("update-upstream-empty", {"upstream": ""}, "/proxies/p"),
    ProxyCase("update-disable", {"enabled": False, "name": "renamed"}, "/proxies/p"),
    ProxyCase("update-not-object", [1], "/proxies/p"),
    ProxyCase("populate-not-array", {"name": "q"}, "/populate"),
    ProxyCase("populate-null", None, "/populate"),
    ProxyCase("populate-missing-upstream", [{"name": "q"}], "/populate"),
    ProxyCase("populate-entry-not-object", [5], "/populate"),
    ProxyCase(
        "populate-enabled-string", [{"name": "q", "upstream": "x:1", "enabled": 1}], "/populate"
    ),
    ProxyCase("populate-name-number", [{"name": 1, "upstream": "127.0.0.1:9"}], "/populate"),
    ProxyCase(
        "populate-with-toxics",
        [
            {
                "name": "q",
                "upstream": "127.0.0.1:9",
                "enabled": False,
                "toxics": [{"type": "latency", "attributes": {"latency": 5}}],
            }
        ],
        "/populate",
    ),
    ProxyCase(
        "populate-toxics-key",
        [{"name": "q", "upstream": "127.0.0.1:9", "enabled": False, "toxics": []}],
        "/populate",
    ),
    ProxyCase(
        "populate-disabled",
        [{"name": "q", "upstream": "127.0.0.1:9", "enabled": False}],
        "/populate",
    ),
]

DEVIATIONS: dict[str, tuple[str, Answer]] = {
    # id: (the reason docs/proxy.md gives, exactly what faultlab answers instead)
    "latency-exact-float": (
        "Exact-integer floats are accepted for integer attributes (Python clients send 100.0)",
        Answer(
            200,
            {
                "attributes": {"latency": 100, "jitter": 0},
                "name": "latency_downstream",
                "type": "latency",
                "stream": "downstream",
                "toxicity": 1,
            },
        ),
    ),
    "toxicity-negative-underflow": (
        "JSON cannot tell -0 from 0 in Python's encoder: Toxiproxy writes -0, faultlab -0.0",
        Answer(
            200,
            {
                "attributes": {"latency": 0, "jitter": 0},
                "name": "latency_downstream",
                "type": "latency",
                "stream": "downstream",
                "toxicity": -0.0,
            },
            {"raw_toxicity": "-0.0"},
        ),
    ),
    "populate-with-toxics": (
        "Toxics in populate and config files: Toxiproxy ignores the key (#79, #447)",
        Answer(201, None),
    ),
}
"""The deliberate differences; each is asserted to be exactly this answer on faultlab."""


# ---- two servers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real() -> Iterator[RealToxiproxy]:
    if find_toxiproxy() is None:
        pytest.skip(missing_reason())
    with RealToxiproxy() as server:
        yield server


@pytest.fixture(scope="module")
def parity_engine() -> Iterator[ProxyEngine]:
    with ProxyEngine(seed=16) as eng:
        yield eng


@pytest.fixture(scope="module")
def ours(parity_engine: ProxyEngine) -> Iterator[ApiServer]:
    with ApiServer(parity_engine, host="127.0.0.1", port=0) as server:
        yield server


def _request(url: str, method: str, path: str, body: Any, *, raw: bool = False) -> Answer:
    host, _, port = url.removeprefix("http://").rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        data = None if body is None and not raw else (body if raw else json.dumps(body))
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
    finally:
        conn.close()
    text = payload.decode()
    extra: dict[str, Any] = {}
    if '"toxicity":' in text:
        extra["raw_toxicity"] = text.rsplit('"toxicity":', 1)[1].split("}", 1)[0]
    return Answer(response.status, json.loads(text) if text.strip() else None, extra)


def _fresh(url: str) -> None:
    """An empty server with one proxy ``p`` that nothing ever connects to."""
    for name in _request(url, "GET", "/proxies", None).body or {}:
        _request(url, "DELETE", f"/proxies/{name}", None)
    body = {"name": "p", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}
    assert _request(url, "POST", "/proxies", body).status == 201


def _run(url: str, case: Case) -> Answer:
    _fresh(url)
    created = _request(url, "POST", "/proxies/p/toxics", case.body, raw=case.raw)
    if case.update is NO_UPDATE or created.status != 200:
        return created
    path = f"/proxies/p/toxics/{created.body['name']}"
    if isinstance(case.update, str):
        return _request(url, "POST", path, case.update, raw=True)
    return _request(url, "POST", path, json.dumps(case.update), raw=True)


def _masked(answer: Answer) -> Answer:
    """A proxy's listen port differs between servers; everything else must not."""
    body = answer.body

    def mask(proxy: Any) -> Any:
        if isinstance(proxy, dict) and isinstance(proxy.get("listen"), str):
            host, sep, _ = proxy["listen"].rpartition(":")
            return {**proxy, "listen": f"{host}{sep}PORT" if sep else proxy["listen"]}
        return proxy

    if isinstance(body, dict) and isinstance(body.get("proxies"), list):
        body = {**body, "proxies": [mask(p) for p in body["proxies"]]}
    else:
        body = mask(body)
    return Answer(answer.status, body, answer.extra)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_toxic_requests_answer_as_toxiproxy(
    real: RealToxiproxy, ours: ApiServer, case: Case
) -> None:
    theirs, mine = _run(real.url, case), _run(ours.url, case)
    deviation = DEVIATIONS.get(case.id)
    if deviation is None:
        assert (mine.status, mine.body) == (theirs.status, theirs.body), case
        return
    reason, expected = deviation
    assert (mine.status, mine.body) != (theirs.status, theirs.body) or mine.extra != theirs.extra
    assert mine.status == expected.status, reason
    assert mine.body == expected.body, reason
    for key, value in expected.extra.items():
        assert mine.extra[key] == value, reason


@pytest.mark.parametrize("case", PROXY_CASES, ids=lambda c: c.id)
def test_proxy_requests_answer_as_toxiproxy(
    real: RealToxiproxy, ours: ApiServer, case: ProxyCase
) -> None:
    answers = []
    for url in (real.url, ours.url):
        _fresh(url)
        answers.append(_masked(_request(url, "POST", case.path, case.body)))
    theirs, mine = answers
    deviation = DEVIATIONS.get(case.id)
    if deviation is not None:
        assert mine.status == theirs.status == deviation[1].status, deviation[0]
        if case.id == "populate-with-toxics":  # the toxics, and nothing else, differ
            (their_proxy,), (my_proxy,) = theirs.body["proxies"], mine.body["proxies"]
            assert their_proxy["toxics"] == []
            assert [t["attributes"] for t in my_proxy["toxics"]] == [{"latency": 5, "jitter": 0}]
            assert {**my_proxy, "toxics": []} == their_proxy
        return
    assert (mine.status, mine.body) == (theirs.status, theirs.body), case


def test_every_toxic_attribute_key_order_matches(real: RealToxiproxy, ours: ApiServer) -> None:
    """The attribute JSON is not only equal but in Toxiproxy's field order."""
    for type_name in ("latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer"):
        texts = []
        for url in (real.url, ours.url):
            _fresh(url)
            _request(url, "POST", "/proxies/p/toxics", {"type": type_name})
            texts.append(list(_request(url, "GET", "/proxies/p/toxics", None).body[0]))
        assert texts[0] == texts[1]


# ---- what the accepted values mean, through real sockets ---------------------------------------
def _connect(handle: ProxyHandle) -> socket.socket:
    host, _, port = handle.listen.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=TIMEOUT)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    got = b""
    while len(got) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


@pytest.fixture
def lab(echo: str) -> Iterator[tuple[ProxyEngine, str]]:
    with ProxyEngine(seed=1616) as eng:
        yield eng, echo


def _slices(handle: ProxyHandle) -> tuple[int, int]:
    """How many pieces the slicer cut, and the largest."""
    events = [e for e in handle.events() if e.get("decision") == "slice"]
    return sum(e["pieces"] for e in events), max(e["max"] for e in events)


@pytest.mark.parametrize(
    ("attributes", "largest"),
    [
        pytest.param({"average_size": 10, "size_variation": 10}, 20, id="variation-equals-average"),
        pytest.param({}, 1, id="defaults-one-byte-pieces"),
        pytest.param({"average_size": -7}, 1, id="negative-one-byte-pieces"),
        pytest.param({"average_size": 1, "size_variation": 300}, 301, id="variation-far-above"),
        pytest.param({"average_size": 0, "size_variation": 1}, 1, id="zero-with-variation"),
    ],
)
def test_slicer_values_toxiproxy_crashes_on_deliver_every_byte_in_order(
    lab: tuple[ProxyEngine, str], attributes: dict[str, int], largest: int
) -> None:
    engine, echo = lab
    handle = engine.create("s", listen="127.0.0.1:0", upstream=echo)
    handle.add_toxic("slicer", stream="upstream", delay=-1, **attributes)
    payload = bytes(range(256)) * 8
    with _connect(handle) as sock:
        sock.sendall(payload)
        assert _read_exactly(sock, len(payload)) == payload
    pieces, most = _slices(handle)
    assert most <= largest
    assert pieces >= len(payload) // largest


def test_slicer_variation_equal_to_average_slices_through_real_toxiproxy_too(
    real: RealToxiproxy, echo: str
) -> None:
    """The node client's case is a meaning Toxiproxy has: it delivers every byte there too."""
    created = _request(
        real.url, "POST", "/proxies", {"name": "sv", "listen": "127.0.0.1:0", "upstream": echo}
    ).body
    body = _toxic("slicer", average_size=10, size_variation=10)
    assert (
        _request(real.url, "POST", "/proxies/sv/toxics", {**body, "stream": "upstream"}).status
        == 200
    )
    host, _, port = created["listen"].rpartition(":")
    payload = bytes(range(256)) * 8
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(payload)
        assert _read_exactly(sock, len(payload)) == payload
    assert _request(real.url, "GET", "/version", None).status == 200


def test_negative_bandwidth_stalls_like_zero_until_removed(lab: tuple[ProxyEngine, str]) -> None:
    engine, echo = lab
    handle = engine.create("bw", listen="127.0.0.1:0", upstream=echo)
    handle.add_toxic("bandwidth", name="cut", rate=-1)
    with _connect(handle) as sock:
        sock.sendall(b"held")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        handle.remove_toxic("cut")
        sock.settimeout(TIMEOUT)
        assert _read_exactly(sock, 4) == b"held"


def test_negative_limit_data_closes_on_first_data(lab: tuple[ProxyEngine, str]) -> None:
    engine, echo = lab
    handle = engine.create("ld", listen="127.0.0.1:0", upstream=echo)
    handle.add_toxic("limit_data", stream="upstream", bytes=-5)
    with _connect(handle) as sock:
        sock.sendall(b"x" * 100)
        try:
            assert sock.recv(10) == b""
        except ConnectionResetError:
            pass


def test_negative_timeout_never_closes(lab: tuple[ProxyEngine, str]) -> None:
    engine, echo = lab
    handle = engine.create("to", listen="127.0.0.1:0", upstream=echo)
    handle.add_toxic("timeout", stream="upstream", timeout=-1)
    with _connect(handle) as sock:
        sock.sendall(b"dropped")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):  # neither data nor a close
            sock.recv(10)


def test_negative_reset_peer_resets_at_once(lab: tuple[ProxyEngine, str]) -> None:
    engine, echo = lab
    handle = engine.create("rp", listen="127.0.0.1:0", upstream=echo)
    handle.add_toxic("reset_peer", stream="upstream", timeout=-1)
    with _connect(handle) as sock:
        start = time.monotonic()
        sock.sendall(b"x")
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
        assert time.monotonic() - start < 2.0


def test_negative_slow_close_closes_at_once(lab: tuple[ProxyEngine, str]) -> None:
    engine, echo = lab
    handle = engine.create("sc", listen="127.0.0.1:0", upstream=echo)
    handle.add_toxic("slow_close", stream="upstream", delay=-1000)
    with _connect(handle) as sock:
        sock.sendall(b"bye")
        sock.shutdown(socket.SHUT_WR)
        start = time.monotonic()
        assert _read_exactly(sock, 10) == b"bye"  # then the EOF, not 1 s later
        assert time.monotonic() - start < 0.9


@pytest.mark.parametrize(("toxicity", "acts"), [(7, True), (1.5, True), (-3, False), (0, False)])
def test_toxicity_outside_unit_range_means_always_or_never(
    lab: tuple[ProxyEngine, str], toxicity: float, acts: bool
) -> None:
    engine, echo = lab
    handle = engine.create("tx", listen="127.0.0.1:0", upstream=echo)
    handle.add_toxic("latency", latency=300, toxicity=toxicity)
    for _ in range(3):
        with _connect(handle) as sock:
            start = time.monotonic()
            sock.sendall(b"ping")
            assert _read_exactly(sock, 4) == b"ping"
            elapsed = time.monotonic() - start
        assert (elapsed >= 0.29) is acts, elapsed


def _go_chunk(rng: random.Random, average: int, variation: int, start: int, end: int) -> list[int]:
    """Toxiproxy 2.12's ``SlicerToxic.chunk`` (toxics/slicer.go), line for line, with Go's
    ``rand.Intn(n)`` as ``rng.randrange(n)``: offsets in pairs."""
    if (end - start) - average <= variation:
        return [start, end]
    mid = start + (end - start) // 2
    if variation > 0:
        mid += rng.randrange(variation * 2) - variation
    return _go_chunk(rng, average, variation, start, mid) + _go_chunk(
        rng, average, variation, mid, end
    )


@pytest.mark.parametrize(
    ("average", "variation"),
    [(10, 0), (10, 3), (10, 10), (10, 11), (1000, 1000), (0, 1), (1, 2), (7, 8), (64, 32)],
)
def test_slicer_draws_toxiproxys_pieces_where_toxiproxy_is_defined(
    average: int, variation: int
) -> None:
    """Where Toxiproxy's recursion terminates in bounds (variation <= average + 1, and not both
    below 1), faultlab's pieces are Toxiproxy's, draw for draw, given the same random stream
    (the empty pieces Toxiproxy writes carry no bytes)."""
    slicer = Slicer(average_size=average, size_variation=variation)
    for seed in range(40):
        for length in (1, 2, 3, 21, 22, 1000, 4096, 65536):
            offsets = _go_chunk(random.Random(seed), average, variation, 0, length)
            theirs = [b - a for a, b in zip(offsets[::2], offsets[1::2], strict=True) if b > a]
            assert slicer.sizes(random.Random(seed), length) == theirs, (seed, length)


BEHAVIOUR_CASES = [
    pytest.param({"type": "latency", "attributes": {"latency": -1000}}, id="latency-negative"),
    pytest.param({"type": "latency", "attributes": {"latency": 5, "jitter": -10}}, id="jitter-neg"),
    pytest.param({"type": "bandwidth", "attributes": {"rate": 0}}, id="bandwidth-zero"),
    pytest.param({"type": "limit_data", "attributes": {"bytes": -5}}, id="limit_data-negative"),
    pytest.param({"type": "limit_data", "attributes": {"bytes": 0}}, id="limit_data-zero"),
    pytest.param({"type": "timeout", "attributes": {"timeout": -1}}, id="timeout-negative"),
    pytest.param({"type": "timeout", "attributes": {"timeout": 0}}, id="timeout-zero"),
    pytest.param({"type": "slow_close", "attributes": {"delay": -1}}, id="slow_close-negative"),
    pytest.param({"type": "reset_peer", "attributes": {"timeout": -1}}, id="reset_peer-negative"),
    pytest.param({"type": "reset_peer"}, id="reset_peer-zero"),
    pytest.param(
        {"type": "slicer", "attributes": {"average_size": 10, "size_variation": 10}},
        id="slicer-variation-equals-average",
    ),
    pytest.param(
        {"type": "slicer", "attributes": {"average_size": 0, "size_variation": 1}},
        id="slicer-zero-with-variation",
    ),
    pytest.param({"type": "limit_data", "toxicity": 7}, id="toxicity-above-one"),
    pytest.param({"type": "limit_data", "toxicity": -3}, id="toxicity-negative"),
    pytest.param({"type": "limit_data", "toxicity": 0}, id="toxicity-zero"),
]


def _outcome(listen: str, payload: bytes, wait: float) -> tuple[str, int]:
    """What a client of ``listen`` sees within ``wait`` s: echoed, closed, reset or open, and
    how many bytes came back."""
    host, _, port = listen.rpartition(":")
    got = b""
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(payload)
        deadline = time.monotonic() + wait
        while len(got) < len(payload):
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                return "open", len(got)
            except ConnectionResetError:
                return "reset", len(got)
            if not chunk:
                return "closed", len(got)
            got += chunk
    return "echoed", len(got)


@pytest.mark.parametrize("toxic", BEHAVIOUR_CASES)
def test_values_toxiproxy_survives_behave_the_same(
    real: RealToxiproxy, ours: ApiServer, echo: str, toxic: dict[str, Any]
) -> None:
    """The same toxic on both servers, the same traffic: the same outcome."""
    outcomes = []
    payload = bytes(range(256)) * 8
    for url in (real.url, ours.url):
        _fresh(url)
        body = {"name": "b", "listen": "127.0.0.1:0", "upstream": echo}
        listen = _request(url, "POST", "/proxies", body).body["listen"]
        assert _request(url, "POST", "/proxies/b/toxics", toxic).status == 200
        outcomes.append(_outcome(listen, payload, 0.6))
    assert outcomes[1] == outcomes[0], toxic
