"""The "Hardening" issue's cases, one by one: each request that used to answer 500, brick the
API or leave an unaddressable proxy behind, and the 408 in every phase of a stalled request.

API cases go through :func:`faultlab.proxy.api.handle` (sans-IO, on the engine loop); the
timeout cases use a real :class:`ApiServer` with a short read timeout.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from faultlab.proxy import api
from faultlab.proxy.engine import ProxyEngine
from faultlab.proxy.proxy import (
    InvalidProxyRequest,
    ListenFailed,
    ProxyError,
    ProxyExists,
    ProxyNotFound,
)
from faultlab.proxy.server import READ_TIMEOUT, ApiServer
from faultlab.proxy.validate import MAX_NAME, address_problem, name_problem, query_uint

pytestmark = pytest.mark.timeout(60)

CLOSED = "127.0.0.1:9"  # the discard port: nothing listens, nothing is ever dialled here


@pytest.fixture(scope="module")
def engine() -> Iterator[ProxyEngine]:
    with ProxyEngine(seed=7) as eng:
        yield eng


@pytest.fixture(autouse=True)
def _clean(engine: ProxyEngine) -> Iterator[None]:
    yield
    for name in engine.run(lambda: list(engine.proxies)):
        engine.delete(name)


class Reply:
    def __init__(self, response: api.ApiResponse) -> None:
        self.status = response.status
        self.body = response.body

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def call(engine: ProxyEngine, method: str, path: str, body: str | bytes = b"") -> Reply:
    data = body.encode() if isinstance(body, str) else body
    return Reply(engine.call(lambda: api.handle(engine, method, path, data, {"User-Agent": "t"})))


def state(engine: ProxyEngine) -> Any:
    reply = call(engine, "GET", "/proxies")
    assert reply.status == 200
    return reply.json


def assert_refused(reply: Reply, status: int = 400, contains: str = "") -> None:
    assert reply.status == status, reply.body
    error = reply.json
    assert set(error) - {"proxies"} == {"error", "status"}
    assert error["status"] == status
    assert contains in error["error"]


def assert_healthy(engine: ProxyEngine) -> None:
    for path in ("/proxies", "/faultlab/events", "/version"):
        assert call(engine, "GET", path).status == 200, path


def proxy_body(name: Any = "p", listen: Any = "127.0.0.1:0", upstream: Any = CLOSED) -> str:
    return json.dumps({"name": name, "listen": listen, "upstream": upstream})


# ---- the requests, one by one --------------------------------------------------
def test_lone_surrogate_name_decodes_as_go_does_and_bricks_nothing(engine: ProxyEngine) -> None:
    """Go's decoder makes ``"\\ud800"`` U+FFFD, so Toxiproxy creates a proxy named U+FFFD;
    so does faultlab, and every route keeps answering, and it can be deleted by URL."""
    body = '{"name":"\\ud800","upstream":"127.0.0.1:9","listen":"127.0.0.1:0"}'
    reply = call(engine, "POST", "/proxies", body)
    assert reply.status == 201, reply.body
    assert reply.json["name"] == "\ufffd"
    assert_healthy(engine)
    assert call(engine, "POST", "/reset").status == 204
    assert list(state(engine)) == ["\ufffd"]
    assert call(engine, "DELETE", "/proxies/" + quote("\ufffd")).status == 204
    assert state(engine) == {}


def test_lone_surrogates_anywhere_become_replacement_characters(engine: ProxyEngine) -> None:
    body = (
        '{"name":"a\\udc00b","upstream":"127.0.0.1:9","listen":"127.0.0.1:0",'
        '"\\ud800junk":"\\ud800"}'
    )
    assert call(engine, "POST", "/proxies", body).json["name"] == "a\ufffdb"
    toxic = '{"type":"latency","name":"t\\udfff","attributes":{"latency":1,"\\ud800":"\\udc00"}}'
    reply = call(engine, "POST", "/proxies/" + quote("a\ufffdb") + "/toxics", toxic)
    assert reply.status == 200, reply.body
    assert reply.json["name"] == "t\ufffd"
    assert_healthy(engine)


def test_a_valid_surrogate_pair_is_kept(engine: ProxyEngine) -> None:
    body = '{"name":"\\ud83d\\ude00","upstream":"127.0.0.1:9","listen":"127.0.0.1:0"}'
    assert call(engine, "POST", "/proxies", body).json["name"] == "\U0001f600"


def test_lone_surrogate_in_upstream_is_refused(engine: ProxyEngine) -> None:
    body = '{"name":"u","upstream":"\\ud800:9","listen":"127.0.0.1:0"}'
    assert_refused(call(engine, "POST", "/proxies", body), 400, "invalid upstream address")
    assert state(engine) == {}
    assert_healthy(engine)


def test_deep_nesting_is_a_400(engine: ProxyEngine) -> None:
    for body in ("[" * 1000, "[" * 1000 + "]" * 1000, '{"a":' * 5000 + "1" + "}" * 5000):
        assert_refused(call(engine, "POST", "/proxies", body), 400, "exceeded max depth")
        assert_refused(call(engine, "POST", "/populate", body), 400, "exceeded max depth")
    assert state(engine) == {}


def test_nesting_within_the_limit_is_decoded(engine: ProxyEngine) -> None:
    """An ignored key may nest (Go skips it); brackets inside strings do not count."""
    junk = "[" * (api.MAX_DEPTH - 1) + "]" * (api.MAX_DEPTH - 1)
    body = json.dumps({"name": "deep", "upstream": CLOSED, "listen": "127.0.0.1:0", "x": "[" * 999})
    body = body[:-1] + f',"junk":{junk}}}'
    assert call(engine, "POST", "/proxies", body).status == 201


def test_disabled_proxy_with_unclosed_bracket_listen_is_refused(engine: ProxyEngine) -> None:
    body = json.dumps({"name": "v6", "upstream": CLOSED, "listen": "[::1", "enabled": False})
    assert_refused(call(engine, "POST", "/proxies", body), 400, "missing ']' in address")
    assert state(engine) == {}
    assert call(engine, "POST", "/reset").status == 204


def test_huge_since_is_a_400(engine: ProxyEngine) -> None:
    for since in ("9" * 5000, "9" * 20, "-1", "1.5", "\u0661", "\u00b2", "0x10"):
        reply = call(engine, "GET", "/faultlab/events?since=" + quote(since))
        assert_refused(reply, 400, "query parameter 'since'")
    assert call(engine, "GET", f"/faultlab/events?since={2**63 - 1}").json["events"] == []
    assert call(engine, "GET", "/faultlab/events?since=").status == 200  # empty: the default


def test_unknown_scheme_upstream_is_refused(engine: ProxyEngine) -> None:
    reply = call(engine, "POST", "/proxies", proxy_body("bog", upstream="bogus://x"))
    assert_refused(reply, 400, "unknown transport scheme 'bogus'")
    assert state(engine) == {}


def test_overlong_host_label_in_listen_is_refused(engine: ProxyEngine) -> None:
    listen = "a" * 64 + ".example:0"
    assert_refused(call(engine, "POST", "/proxies", proxy_body("lbl", listen=listen)), 400)
    assert state(engine) == {}


@pytest.mark.parametrize("name", ["a/b", "/", "a?b", "a#b", ".", "..", "a\nb", "a\x00", "\x7f"])
def test_unaddressable_names_are_refused(engine: ProxyEngine, name: str) -> None:
    reply = call(engine, "POST", "/proxies", proxy_body(name))
    assert_refused(reply, 400, "invalid proxy name")
    assert state(engine) == {}


def test_overlong_name_is_refused(engine: ProxyEngine) -> None:
    assert call(engine, "POST", "/proxies", proxy_body("n" * MAX_NAME)).status == 201
    reply = call(engine, "POST", "/proxies", proxy_body("n" * (MAX_NAME + 1)))
    assert_refused(reply, 400, f"longer than {MAX_NAME}")


@pytest.mark.parametrize(
    "name", ["with.dots", "with-dash", "under_score", "with space", "ümlaut", "a%b", "a..b", "+:@"]
)
def test_names_toxiproxy_accepts_stay_accepted_and_addressable(
    engine: ProxyEngine, name: str
) -> None:
    assert call(engine, "POST", "/proxies", proxy_body(name)).status == 201
    path = "/proxies/" + quote(name, safe="")
    assert call(engine, "GET", path).json["name"] == name
    toxic = json.dumps({"type": "latency", "name": name})
    assert call(engine, "POST", path + "/toxics", toxic).status == 200
    assert call(engine, "DELETE", path + "/toxics/" + quote(name, safe="")).status == 204
    assert call(engine, "DELETE", path).status == 204


@pytest.mark.parametrize("name", ["a/b", "?", "x#", "..", "\t"])
def test_unaddressable_toxic_names_are_refused(engine: ProxyEngine, name: str) -> None:
    assert call(engine, "POST", "/proxies", proxy_body("p")).status == 201
    reply = call(engine, "POST", "/proxies/p/toxics", json.dumps({"type": "noop", "name": name}))
    assert_refused(reply, 400, "invalid toxic name")
    assert state(engine)["p"]["toxics"] == []


def test_populate_refuses_every_entry_before_applying_any(engine: ProxyEngine) -> None:
    body = json.dumps(
        [
            {"name": "ok", "upstream": CLOSED, "listen": "127.0.0.1:0"},
            {"name": "bad/name", "upstream": CLOSED, "listen": "127.0.0.1:0"},
        ]
    )
    reply = call(engine, "POST", "/populate", body)
    assert reply.status == 400
    assert reply.json["error"].endswith("at proxy 2")
    assert reply.json["proxies"] is None
    assert state(engine) == {}


def test_bad_port_and_brackets_and_colons_are_refused(engine: ProxyEngine) -> None:
    for listen in ("127.0.0.1:99999", "127.0.0.1:http", "[127.0.0.1]:1", "[::1]x:1", "::1:80"):
        assert_refused(call(engine, "POST", "/proxies", proxy_body(listen=listen)), 400)
    for upstream in ("x:-1", "tcp://[::1:1", "tcp://u@h:1", "a..b:1", "unix://\x00"):
        assert_refused(call(engine, "POST", "/proxies", proxy_body(upstream=upstream)), 400)
    assert state(engine) == {}


def test_garbage_listen_of_a_disabled_proxy_is_still_kept_verbatim(engine: ProxyEngine) -> None:
    """Toxiproxy stores a disabled proxy's listen unchecked; only what faultlab cannot even
    parse is refused, the rest fails when it binds (500), as in Toxiproxy."""
    body = json.dumps({"name": "off", "upstream": CLOSED, "listen": "garbage", "enabled": False})
    assert call(engine, "POST", "/proxies", body).json["listen"] == "garbage"
    reply = call(engine, "POST", "/proxies/off", '{"enabled": true}')
    assert reply.status == 500
    assert reply.json["error"].startswith("address garbage")
    assert state(engine)["off"]["enabled"] is False


def test_reset_resets_every_proxy_it_can_then_reports_the_listen_failure(
    engine: ProxyEngine,
) -> None:
    body = json.dumps({"name": "a", "upstream": CLOSED, "listen": "garbage", "enabled": False})
    assert call(engine, "POST", "/proxies", body).status == 201
    assert call(engine, "POST", "/proxies", proxy_body("b")).status == 201
    assert call(engine, "POST", "/proxies/b/toxics", '{"type":"latency"}').status == 200
    assert call(engine, "POST", "/proxies/a/toxics", '{"type":"noop"}').status == 200
    reply = call(engine, "POST", "/reset")
    assert reply.status == 500
    assert reply.json["error"].startswith("listen ")
    after = state(engine)
    assert after["a"]["toxics"] == []
    assert after["b"]["toxics"] == []


def test_failed_update_restores_the_proxy(engine: ProxyEngine) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        first = call(engine, "POST", "/proxies", proxy_body("p")).json
        reply = call(engine, "POST", "/proxies/p", json.dumps({"listen": f"127.0.0.1:{port}"}))
        assert reply.status == 500
        assert reply.json["error"].startswith("listen ")
    assert state(engine)["p"] == first  # same listen, still enabled


def test_update_with_malformed_address_changes_nothing(engine: ProxyEngine) -> None:
    first = call(engine, "POST", "/proxies", proxy_body("p")).json
    for body in ('{"listen": "[::1"}', '{"upstream": "bogus://x"}', '{"upstream": "a:1:2"}'):
        assert_refused(call(engine, "POST", "/proxies/p", body), 400)
    assert state(engine)["p"] == first


def test_bad_absolute_form_target_is_a_400(engine: ProxyEngine) -> None:
    assert_refused(call(engine, "GET", "http://[::1/proxies"), 400, "malformed request target")


def test_non_utf8_path_byte_matches_no_proxy(engine: ProxyEngine) -> None:
    assert call(engine, "POST", "/proxies", proxy_body("\ufffd")).status == 201
    assert_refused(call(engine, "GET", "/proxies/%FF"), 404, "proxy not found")


def test_unknown_protocol_is_refused(engine: ProxyEngine) -> None:
    body = json.dumps({"name": "p", "upstream": CLOSED, "protocol": "nope"})
    assert_refused(call(engine, "POST", "/proxies", body), 400, "unknown protocol")


def test_huge_numbers_are_400s(engine: ProxyEngine) -> None:
    assert call(engine, "POST", "/proxies", proxy_body("p")).status == 201
    for toxic in (
        '{"type":"latency","toxicity":1e999}',
        '{"type":"latency","attributes":{"latency":1e999}}',
        '{"type":"latency","attributes":{"latency":' + "9" * 5000 + "}}",
        '{"type":"latency","attributes":{"latency":-' + "9" * 5000 + "}}",
    ):
        assert_refused(call(engine, "POST", "/proxies/p/toxics", toxic), 400)
    ignored = '{"name":"q","upstream":"127.0.0.1:9","n":' + "9" * 5000 + ',"f":1e999}'
    assert call(engine, "POST", "/proxies", ignored).status == 201  # Go skips unknown keys


# ---- the library path validates the same way -------------------------------------------
@pytest.mark.parametrize(
    ("name", "listen", "upstream"),
    [
        ("\ud800", "127.0.0.1:0", CLOSED),
        ("a/b", "127.0.0.1:0", CLOSED),
        ("", "127.0.0.1:0", CLOSED),
        ("ok", "[::1", CLOSED),
        ("ok", "127.0.0.1:0", "bogus://x"),
        ("ok", "127.0.0.1:0", "\ud800:9"),
        ("ok", "a" * 64 + ":0", CLOSED),
    ],
)
def test_library_create_refuses_with_400(
    engine: ProxyEngine, name: str, listen: str, upstream: str
) -> None:
    with pytest.raises(ProxyError) as info:
        engine.create(name, listen=listen, upstream=upstream, enabled=False)
    assert info.value.status == 400
    assert isinstance(info.value, InvalidProxyRequest)
    assert engine.run(lambda: dict(engine.proxies)) == {}


def test_library_toxic_name_is_checked(engine: ProxyEngine) -> None:
    handle = engine.create("p", upstream=CLOSED)
    with pytest.raises(ProxyError) as info:
        handle.add_toxic("latency", name="a/b")
    assert info.value.status == 400
    assert handle.toxics() == []


def test_library_enable_failure_is_a_500_listen_error(engine: ProxyEngine) -> None:
    handle = engine.create("p", listen="garbage", upstream=CLOSED, enabled=False)
    with pytest.raises(ProxyError) as info:
        handle.enable()
    assert info.value.status == 500
    assert isinstance(info.value, ListenFailed)
    assert str(info.value).startswith("listen ")


# ---- typed errors in the library, HTTP statuses only in the API layer -------------------
@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidProxyRequest("x"), 400),
        (ProxyNotFound("x"), 404),
        (ProxyExists("x"), 409),
        (ListenFailed("x"), 500),
        (ProxyError("x"), 500),
    ],
)
def test_http_status_of_each_proxy_error(error: ProxyError, status: int) -> None:
    assert api.http_status(error) == status
    assert error.status == status  # the compatibility property asks the API layer


def test_library_raises_typed_errors(engine: ProxyEngine) -> None:
    handle = engine.create("p", upstream=CLOSED)
    with pytest.raises(ProxyExists):
        engine.create("p", upstream=CLOSED)
    with pytest.raises(ProxyNotFound):
        engine.proxy("nope")
    with pytest.raises(ProxyNotFound):
        handle.update_toxic("nope", latency=1)
    handle.add_toxic("noop", name="n")
    with pytest.raises(ProxyExists):
        handle.add_toxic("noop", name="n")
    with pytest.raises(InvalidProxyRequest):
        handle.add_toxic("noop", stream="sideways")
    with pytest.raises(InvalidProxyRequest):
        handle.add_toxic("noop", toxicity=1e39)  # beyond a float32 (2 is "always", as Toxiproxy)


def test_api_answers_typed_errors_with_their_status(engine: ProxyEngine) -> None:
    assert_refused(call(engine, "GET", "/proxies/nope"), 404, "proxy not found")
    body = {"name": "p", "upstream": CLOSED, "listen": "127.0.0.1:0"}
    assert call(engine, "POST", "/proxies", json.dumps(body)).status == 201
    assert_refused(call(engine, "POST", "/proxies", json.dumps(body)), 409, "already exists")
    bad = json.dumps({**body, "name": "a/b"})
    assert_refused(call(engine, "POST", "/proxies", bad), 400, "invalid proxy name")


# ---- the checks themselves ----------------------------------------------------------------
@pytest.mark.parametrize(
    "address",
    [
        "",
        ":0",
        "127.0.0.1:0",
        "localhost:8080",
        "[::1]:0",
        "[fe80::1%eth0]:80",
        "garbage",
        "host.docker.internal:5432",
        "my_service:80",
        "xn--mnchen-3ya.de:80",
        "münchen.de:80",
        "127.0.0.1:",
        "tcp://127.0.0.1:0",
        "tls://example.com:443",
        "unix:///tmp/x.sock",
        "unix://@abstract",
        "mq://name",
    ],
)
def test_well_formed_addresses(address: str) -> None:
    assert address_problem(address) is None


@pytest.mark.parametrize(
    "address",
    [
        "[::1",
        "[::1]x:1",
        "[127.0.0.1]:1",
        "::1:80",
        "h:65536",
        "h:http",
        "h:\u0661",
        "a" * 64 + ":1",
        ("a" * 60 + ".") * 5 + ":1",
        "a..b:1",
        "a b:1",
        "h\x00:1",
        "\ud800:1",
        "bogus://x",
        "tcp://[::1",
        "tcp://u@h:1",
        "tcp://h:99999",
        "://x",
    ],
)
def test_malformed_addresses(address: str) -> None:
    assert address_problem(address) is not None


def test_replacement_character_is_not_a_host_name() -> None:
    assert address_problem("\ufffd:1") is not None


def test_names() -> None:
    assert name_problem("a") is None
    assert name_problem("...") is None
    for bad in ("", ".", "..", "a/b", "a?", "#", "\x1f", "\x85", "\ud800"):
        assert name_problem(bad) is not None, bad


def test_query_uint() -> None:
    assert query_uint(None, "since", 3) == 3
    assert query_uint(["1", "22"], "since", 0) == 22
    with pytest.raises(ProxyError):
        query_uint(["9" * 19], "since", 0)


# ---- 408 in every phase of a stalled request ------------------------------------------
SHORT = 0.3


@pytest.fixture
def short_server(engine: ProxyEngine) -> Iterator[ApiServer]:
    server = ApiServer(engine, port=0, read_timeout=SHORT).start()
    yield server
    server.close()


def _stall(server: ApiServer, data: bytes) -> list[bytes]:
    """Send ``data``, then nothing; every response until the server closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return [b"HTTP/1.1" + part for part in out.split(b"HTTP/1.1")[1:]]


def _assert_408(response: bytes) -> None:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), response
    assert b"connection: close" in head.lower()
    error = json.loads(body)
    assert error["status"] == 408
    assert "request timeout" in error["error"]


def test_408_in_the_header_phase(short_server: ApiServer) -> None:
    responses = _stall(short_server, b"GET /version HTTP/1.1\r\nHost: x\r\nUser-Ag")
    assert len(responses) == 1
    _assert_408(responses[0])


def test_408_in_the_request_line(short_server: ApiServer) -> None:
    responses = _stall(short_server, b"GET /vers")
    assert len(responses) == 1
    _assert_408(responses[0])


def test_408_in_the_body_phase(short_server: ApiServer) -> None:
    head = b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n"
    responses = _stall(short_server, head + b'{"name": "stalled"')
    assert len(responses) == 1
    _assert_408(responses[0])


def test_408_for_a_stalled_pipelined_follow_up(
    short_server: ApiServer, engine: ProxyEngine
) -> None:
    first = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
    responses = _stall(short_server, first + b"POST /proxies HTTP/1.1\r\nHost: x\r\nCont")
    assert len(responses) == 2
    assert responses[0].startswith(b"HTTP/1.1 200 ")
    _assert_408(responses[1])


def test_408_for_a_pipelined_follow_up_stalled_in_its_body(short_server: ApiServer) -> None:
    first = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
    second = b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{"
    responses = _stall(short_server, first + second)
    assert [r[:12] for r in responses] == [b"HTTP/1.1 200", b"HTTP/1.1 408"]


def test_a_silent_connection_is_closed_without_a_response(engine: ProxyEngine) -> None:
    server = ApiServer(engine, port=0, read_timeout=SHORT, idle_timeout=SHORT).start()
    try:
        assert _stall(server, b"") == []
    finally:
        server.close()


def test_the_default_read_timeout_is_toxiproxys_15_s(engine: ProxyEngine) -> None:
    assert READ_TIMEOUT == 15.0
    assert ApiServer(engine).read_timeout == 15.0


def test_protocol_errors_have_json_bodies(short_server: ApiServer) -> None:
    for data in (
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
        b"\x00\x01garbage\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n",
    ):
        responses = _stall(short_server, data)
        assert len(responses) == 1
        head, _, body = responses[0].partition(b"\r\n\r\n")
        status = int(head.split()[1])
        assert 400 <= status < 500
        assert json.loads(body)["status"] == status


def test_handle_never_raises_on_weird_targets(engine: ProxyEngine) -> None:
    for target in ("", "*", "http://", "https://x", "/proxies/%", "/proxies/%zz", "/%00"):
        assert call(engine, "GET", target).status < 500, target


def test_framed_proxy_cannot_move_to_tls(engine: ProxyEngine) -> None:
    fields = {"name": "f", "upstream": CLOSED, "listen": "127.0.0.1:0", "framing": "lines"}
    body = json.dumps(fields)
    first = call(engine, "POST", "/proxies", body).json
    assert_refused(call(engine, "PATCH", "/proxies/f", '{"upstream": "tls://h:1"}'), 400, "TLS")
    assert state(engine)["f"] == first
