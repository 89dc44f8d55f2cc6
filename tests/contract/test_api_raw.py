"""The Toxiproxy v2.12 HTTP API, byte for byte: statuses, error texts, JSON shapes.

Each case comes from the reference's tables (routes, error statuses, populate and
update semantics); faultlab's deliberate deviations are asserted as such.
"""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

from faultlab.proxy.engine import ProxyEngine
from faultlab.proxy.server import ApiServer
from faultlab.toxics import toxic_types
from tests.contract.conftest import TIMEOUT, RawClient, echo_through, raw_exchange

pytestmark = pytest.mark.timeout(60)

TEXT = "text/plain; charset=utf-8"


def err(status: int, message: str) -> bytes:
    return json.dumps({"error": message, "status": status}, separators=(",", ":")).encode() + b"\n"


def create(raw: RawClient, name: str, upstream: str, **extra: object) -> dict[str, object]:
    body = {"name": name, "listen": "127.0.0.1:0", "upstream": upstream, **extra}
    reply = raw.request("POST", "/proxies", body)
    assert reply.status == 201, reply.body
    result: dict[str, object] = reply.json
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def needs(toxic: str) -> None:
    if toxic not in toxic_types():
        pytest.skip(f"toxic {toxic!r} is not registered in this build")


# ---- server basics ----------------------------------------------------------------
def test_version_body_and_headers(raw: RawClient) -> None:
    reply = raw.request("GET", "/version")
    assert reply.status == 200
    assert reply.body == b'{"version": "2.12.0"}\n'
    assert reply.headers["Content-Type"] == "application/json;charset=utf-8"
    assert re.fullmatch(r"[0-9a-v]{20}", reply.headers["X-Toxiproxy-Request-Id"])
    assert reply.headers["X-Faultlab-Version"]


def test_request_ids_differ(raw: RawClient) -> None:
    ids = {raw.request("GET", "/version").headers["X-Toxiproxy-Request-Id"] for _ in range(5)}
    assert len(ids) == 5


def test_empty_index_is_an_object(raw: RawClient) -> None:
    reply = raw.request("GET", "/proxies")
    assert (reply.status, reply.body, reply.headers["Content-Type"]) == (
        200,
        b"{}",
        "application/json",
    )


@pytest.mark.parametrize("path", ["/nope", "/proxies/", "/version/", "/proxies/a/toxics/b/c", "/"])
def test_unknown_paths_are_bare_404s(raw: RawClient, path: str) -> None:
    reply = raw.request("GET", path, headers={"User-Agent": "Mozilla/5.0"})
    assert (reply.status, reply.body) == (404, b"404 page not found\n")
    assert reply.headers["Content-Type"] == TEXT
    assert "X-Toxiproxy-Request-Id" not in reply.headers  # no middleware on unrouted requests


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/proxies"),
        ("DELETE", "/proxies"),
        ("HEAD", "/version"),
        ("GET", "/populate"),
        ("GET", "/reset"),
        ("DELETE", "/reset"),
        ("PUT", "/proxies/x"),
        ("PATCH", "/proxies/x/toxics"),
        ("PUT", "/proxies/x/toxics/y"),
        ("POST", "/version"),
        ("OPTIONS", "/proxies"),
    ],
)
def test_wrong_method_is_an_empty_405(raw: RawClient, method: str, path: str) -> None:
    reply = raw.request(method, path)
    assert (reply.status, reply.body) == (405, b"")
    assert "X-Toxiproxy-Request-Id" not in reply.headers


def test_browser_user_agent_is_refused(raw: RawClient) -> None:
    reply = raw.request("GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert (reply.status, reply.body) == (403, b"User agent not allowed\n")
    assert reply.headers["Content-Type"] == TEXT
    assert "X-Toxiproxy-Request-Id" in reply.headers
    assert raw.request("GET", "/proxies", headers={"User-Agent": "curl/8"}).status == 200


def test_keep_alive_serves_many_requests_on_one_connection(raw: RawClient) -> None:
    for _ in range(20):
        assert raw.request("GET", "/version").status == 200
    assert raw.conn.sock is not None  # never reconnected


def test_pipelined_requests_and_http10(api_url: str) -> None:
    req = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n"
    out = raw_exchange(api_url, req * 3)
    assert out.count(b'{"version": "2.12.0"}') == 3
    out = raw_exchange(api_url, b"GET /proxies HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ")
    assert out.endswith(b"{}")


def test_malformed_http_is_a_400(api_url: str) -> None:
    out = raw_exchange(api_url, b"this is not http\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")


def test_oversized_body_is_413(raw: RawClient) -> None:
    big = b'{"name": "' + b"x" * (2 << 20) + b'"}'
    reply = raw.request("POST", "/proxies", big)
    assert reply.status == 413
    assert reply.json["status"] == 413
    assert "too large" in reply.json["error"]
    assert raw.request("GET", "/proxies").json == {}


def test_oversized_chunked_body_is_413(api_url: str) -> None:
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(20)) + b"0\r\n\r\n"
    head = b"POST /populate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    out = raw_exchange(api_url, head + body)
    assert out.startswith(b"HTTP/1.1 413 ")


def test_expect_100_continue(api_url: str, echo: str) -> None:
    body = json.dumps({"name": "cont", "upstream": echo, "listen": "127.0.0.1:0"}).encode()
    head = (
        b"POST /proxies HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    host, _, port = api_url.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
        sock.sendall(head)
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 ")
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 201 ")


def test_slow_request_times_out(engine: ProxyEngine) -> None:
    server = ApiServer(engine, port=0, read_timeout=0.3).start()
    try:
        host, _, port = server.url.removeprefix("http://").rpartition(":")
        with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
            sock.sendall(b"POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{")
            start = time.monotonic()
            out = sock.recv(65536)
            assert out.startswith(b"HTTP/1.1 408 ")
            assert time.monotonic() - start < 3
    finally:
        server.close()


# ---- proxies --------------------------------------------------------------------------
def test_create_shape_and_real_port(raw: RawClient, echo: str) -> None:
    reply = raw.request(
        "POST", "/proxies", {"name": "shape", "listen": "127.0.0.1:0", "upstream": echo}
    )
    assert reply.status == 201
    assert reply.headers["Content-Type"] == "application/json"
    data = reply.json
    assert list(data) == ["name", "listen", "upstream", "enabled", "Logger", "toxics"]
    assert data["listen"].startswith("127.0.0.1:")
    assert not data["listen"].endswith(":0")
    assert (data["upstream"], data["enabled"], data["Logger"], data["toxics"]) == (
        echo,
        True,
        {},
        [],
    )
    assert echo_through(data["listen"]) == b"ping"
    assert raw.request("GET", "/proxies/shape").json == data


def test_create_resolves_localhost(raw: RawClient, echo: str) -> None:
    reply = raw.request(
        "POST", "/proxies", {"name": "lh", "listen": "localhost:0", "upstream": echo}
    )
    assert reply.json["listen"].startswith("127.0.0.1:")


def test_create_without_listen_binds_a_wildcard_port(raw: RawClient, echo: str) -> None:
    data = raw.request("POST", "/proxies", {"name": "nolisten", "upstream": echo}).json
    assert int(data["listen"].rpartition(":")[2]) > 0
    assert echo_through(data["listen"]) == b"ping"


def test_disabled_create_keeps_listen_verbatim(raw: RawClient, echo: str) -> None:
    reply = raw.request(
        "POST", "/proxies", {"name": "off", "listen": "garbage", "upstream": echo, "enabled": False}
    )
    assert reply.status == 201
    assert (reply.json["listen"], reply.json["enabled"]) == ("garbage", False)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"upstream": "x:1"}, "missing required field: name"),
        ({"name": "", "upstream": "x:1"}, "missing required field: name"),
        ({"name": "n"}, "missing required field: upstream"),
        ({"name": "n", "upstream": None}, "missing required field: upstream"),
        (
            {"name": 5, "upstream": "x:1"},
            "bad request body: json: cannot unmarshal number into Go struct field Proxy.name "
            "of type string",
        ),
        (
            {"name": "n", "upstream": "x:1", "enabled": "yes"},
            "bad request body: json: cannot unmarshal string into Go struct field Proxy.enabled "
            "of type bool",
        ),
        (
            [1],
            "bad request body: json: cannot unmarshal array into Go value of type toxiproxy.Proxy",
        ),
        ("", "bad request body: EOF"),
        ("   \n", "bad request body: EOF"),
        ('{"name": "n"', "bad request body: unexpected EOF"),
        ("nope", "bad request body: invalid character 'n' looking for beginning of value"),
        ("NaN", "bad request body: invalid character 'N' looking for beginning of value"),
    ],
)
def test_create_errors(raw: RawClient, body: object, message: str) -> None:
    reply = raw.request("POST", "/proxies", body)
    assert (reply.status, reply.body) == (400, err(400, message))
    assert reply.headers["Content-Type"] == TEXT
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_create_reads_go_style(raw: RawClient, echo: str) -> None:
    """Keys match case-insensitively, unknown keys (toxics!) are ignored, trailing data too."""
    body = json.dumps({"NAME": "go", "Upstream": echo, "listen": "127.0.0.1:0", "toxics": [1]})
    reply = raw.request("POST", "/proxies", body + " trailing")
    assert reply.status == 201
    assert (reply.json["name"], reply.json["toxics"]) == ("go", [])


def test_duplicate_is_409_before_binding(raw: RawClient, echo: str) -> None:
    first = create(raw, "dup", echo)
    reply = raw.request(
        "POST", "/proxies", {"name": "dup", "listen": first["listen"], "upstream": echo}
    )
    assert (reply.status, reply.body) == (409, err(409, "proxy already exists"))


def test_bind_failure_is_500_worded_as_go(raw: RawClient, echo: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        reply = raw.request(
            "POST", "/proxies", {"name": "busy", "listen": f"localhost:{port}", "upstream": echo}
        )
        assert reply.status == 500
        assert reply.json["status"] == 500
        # Go's wording, with the name resolved (Toxiproxy's own api_test compares it whole)
        assert reply.json["error"] == f"listen tcp 127.0.0.1:{port}: bind: address already in use"
    assert raw.request("GET", "/proxies/busy").status == 404


def test_index_is_sorted_by_name(raw: RawClient, echo: str) -> None:
    for name in ("b", "c", "a"):
        create(raw, name, echo)
    assert list(raw.request("GET", "/proxies").json) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/proxies/ghost", None),
        ("POST", "/proxies/ghost", "{}"),
        ("PATCH", "/proxies/ghost", "garbage"),
        ("DELETE", "/proxies/ghost", None),
        ("GET", "/proxies/ghost/toxics", None),
        ("POST", "/proxies/ghost/toxics", '{"type": "latency"}'),
        ("GET", "/proxies/ghost/toxics/t", None),
        ("PATCH", "/proxies/ghost/toxics/t", "{}"),
        ("DELETE", "/proxies/ghost/toxics/t", None),
    ],
)
def test_unknown_proxy_is_404(raw: RawClient, method: str, path: str, body: str | None) -> None:
    reply = raw.request(method, path, body)
    assert (reply.status, reply.body) == (404, err(404, "proxy not found"))


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_disable_enable_keeps_the_resolved_port(raw: RawClient, echo: str, method: str) -> None:
    proxy = create(raw, "toggle", echo)
    listen = str(proxy["listen"])
    reply = raw.request(method, "/proxies/toggle", {"enabled": False})
    assert reply.status == 200
    assert (reply.json["enabled"], reply.json["listen"]) == (False, listen)
    with pytest.raises(ConnectionRefusedError):
        echo_through(listen)
    reply = raw.request(method, "/proxies/toggle", {"enabled": True})
    assert (reply.json["enabled"], reply.json["listen"]) == (True, listen)
    assert echo_through(listen, b"again") == b"again"


def test_update_keeps_toxics_and_merges(raw: RawClient, echo: str) -> None:
    create(raw, "merge", echo)
    raw.request("POST", "/proxies/merge/toxics", {"type": "latency", "attributes": {"latency": 1}})
    reply = raw.request("PATCH", "/proxies/merge", {"enabled": False, "name": "ignored"})
    assert reply.json["name"] == "merge"
    assert [t["name"] for t in reply.json["toxics"]] == ["latency_downstream"]
    reply = raw.request("PATCH", "/proxies/merge", {"enabled": True})
    assert [t["name"] for t in reply.json["toxics"]] == ["latency_downstream"]


def test_update_same_address_spelled_differently_keeps_connections(
    raw: RawClient, echo: str
) -> None:
    proxy = create(raw, "same", echo)
    port = str(proxy["listen"]).rpartition(":")[2]
    host, _, p = str(proxy["listen"]).rpartition(":")
    with socket.create_connection((host, int(p)), timeout=TIMEOUT) as sock:
        sock.sendall(b"1")
        assert sock.recv(10) == b"1"
        reply = raw.request("POST", "/proxies/same", {"listen": f"localhost:{port}"})
        assert reply.status == 200
        sock.sendall(b"2")
        assert sock.recv(10) == b"2"  # not restarted: the connection survived


def test_update_upstream_restarts_on_the_new_one(raw: RawClient, echo: str) -> None:
    proxy = create(raw, "move", "127.0.0.1:9")
    listen = str(proxy["listen"])
    reply = raw.request("POST", "/proxies/move", {"upstream": echo})
    assert (reply.status, reply.json["upstream"], reply.json["listen"]) == (200, echo, listen)
    assert echo_through(listen) == b"ping"


def test_update_listen_moves_the_proxy(raw: RawClient, echo: str) -> None:
    create(raw, "relisten", echo)
    port = free_port()
    reply = raw.request("PATCH", "/proxies/relisten", {"listen": f"127.0.0.1:{port}"})
    assert reply.json["listen"] == f"127.0.0.1:{port}"
    assert echo_through(f"127.0.0.1:{port}") == b"ping"


def test_update_bad_listen_is_500(raw: RawClient, echo: str) -> None:
    create(raw, "badlisten", echo)
    reply = raw.request("POST", "/proxies/badlisten", {"listen": "no-port-here"})
    assert reply.status == 500
    assert "missing port" in reply.json["error"]


def test_update_bad_body_is_400(raw: RawClient, echo: str) -> None:
    create(raw, "badbody", echo)
    reply = raw.request("POST", "/proxies/badbody", "")
    assert (reply.status, reply.body) == (400, err(400, "bad request body: EOF"))


def test_delete_is_204_then_404(raw: RawClient, echo: str) -> None:
    proxy = create(raw, "gone", echo)
    reply = raw.request("DELETE", "/proxies/gone")
    assert (reply.status, reply.body) == (204, b"")
    assert "Content-Length" not in reply.headers
    assert raw.request("GET", "/proxies/gone").status == 404
    with pytest.raises(ConnectionRefusedError):
        echo_through(str(proxy["listen"]))


def test_names_are_url_decoded_and_json_is_html_safe(raw: RawClient, echo: str) -> None:
    create(raw, "a b<&>", echo)
    reply = raw.request("GET", "/proxies/a%20b%3C%26%3E")
    assert reply.status == 200
    assert b'"name":"a b\\u003c\\u0026\\u003e"' in reply.body


# ---- toxics -----------------------------------------------------------------------------
def test_toxic_create_defaults_and_shape(raw: RawClient, echo: str) -> None:
    create(raw, "tx", echo)
    reply = raw.request("POST", "/proxies/tx/toxics", {"type": "latency"})
    assert reply.status == 200  # not 201
    assert reply.body == (
        b'{"attributes":{"latency":0,"jitter":0},"name":"latency_downstream",'
        b'"type":"latency","stream":"downstream","toxicity":1}'
    )


def test_toxicity_renders_as_float32(raw: RawClient, echo: str) -> None:
    create(raw, "f32", echo)
    reply = raw.request("POST", "/proxies/f32/toxics", {"type": "noop", "toxicity": 0.2})
    assert b'"toxicity":0.2}' in reply.body
    reply = raw.request(
        "POST", "/proxies/f32/toxics", {"type": "noop", "name": "n2", "toxicity": 0.1 + 0.2}
    )
    assert b'"toxicity":0.3}' in reply.body


def test_stream_is_case_insensitive_but_stored_as_sent(raw: RawClient, echo: str) -> None:
    create(raw, "case", echo)
    reply = raw.request("POST", "/proxies/case/toxics", {"type": "latency", "stream": "UPSTREAM"})
    assert (reply.json["name"], reply.json["stream"]) == ("latency_UPSTREAM", "UPSTREAM")


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"type": "latency", "stream": "sideways"},
            400,
            "stream was invalid, can be either upstream or downstream",
        ),
        (
            {"type": "latency", "stream": ""},
            400,
            "stream was invalid, can be either upstream or downstream",
        ),
        ({"type": "nope"}, 400, "invalid toxic type"),
        ({}, 400, "invalid toxic type"),
        ({"type": "down"}, 400, "invalid toxic type"),
        ("", 400, "bad request body: EOF"),
        (
            {"type": 3},
            400,
            "bad request body: json: cannot unmarshal number into Go struct field "
            "ToxicWrapper.type of type string",
        ),
        (
            {"type": "latency", "toxicity": "1"},
            400,
            "bad request body: json: cannot unmarshal string into Go struct field "
            "ToxicWrapper.toxicity of type float32",
        ),
    ],
)
def test_toxic_create_errors(
    raw: RawClient, echo: str, body: object, status: int, message: str
) -> None:
    create(raw, "bad", echo)
    reply = raw.request("POST", "/proxies/bad/toxics", body)
    assert (reply.status, reply.body) == (status, err(status, message))


def test_toxic_names_share_one_namespace(raw: RawClient, echo: str) -> None:
    create(raw, "ns", echo)
    body = {"type": "latency", "name": "lag", "stream": "upstream"}
    assert raw.request("POST", "/proxies/ns/toxics", body).status == 200
    reply = raw.request("POST", "/proxies/ns/toxics", {**body, "stream": "downstream"})
    assert (reply.status, reply.body) == (409, err(409, "toxic already exists"))


def test_toxic_order_upstream_first(raw: RawClient, echo: str) -> None:
    create(raw, "order", echo)
    for name, stream in (
        ("d1", "downstream"),
        ("u1", "upstream"),
        ("d2", "downstream"),
        ("u2", "upstream"),
    ):
        raw.request(
            "POST", "/proxies/order/toxics", {"type": "noop", "name": name, "stream": stream}
        )
    names = [t["name"] for t in raw.request("GET", "/proxies/order/toxics").json]
    assert names == ["u1", "u2", "d1", "d2"]
    assert [t["name"] for t in raw.request("GET", "/proxies/order").json["toxics"]] == names


def test_toxic_show_and_missing(raw: RawClient, echo: str) -> None:
    create(raw, "show", echo)
    raw.request(
        "POST",
        "/proxies/show/toxics",
        {"type": "latency", "name": "l", "attributes": {"latency": 5}},
    )
    reply = raw.request("GET", "/proxies/show/toxics/l")
    assert reply.json["attributes"] == {"latency": 5, "jitter": 0}
    reply = raw.request("GET", "/proxies/show/toxics/nope")
    assert (reply.status, reply.body) == (404, err(404, "toxic not found"))


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_toxic_update_merges(raw: RawClient, echo: str, method: str) -> None:
    create(raw, "upd", echo)
    body = {
        "type": "latency",
        "name": "l",
        "toxicity": 0.5,
        "attributes": {"latency": 10, "jitter": 3},
    }
    raw.request("POST", "/proxies/upd/toxics", body)
    reply = raw.request(
        method,
        "/proxies/upd/toxics/l",
        {"attributes": {"latency": 20}, "name": "x", "type": "noop", "stream": "upstream"},
    )
    assert reply.status == 200
    assert reply.json == {
        "attributes": {"latency": 20, "jitter": 3},
        "name": "l",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 0.5,
    }
    reply = raw.request(method, "/proxies/upd/toxics/l", {"toxicity": 1})
    assert (reply.json["toxicity"], reply.json["attributes"]["latency"]) == (1, 20)


def test_toxic_update_errors(raw: RawClient, echo: str) -> None:
    create(raw, "upderr", echo)
    raw.request("POST", "/proxies/upderr/toxics", {"type": "latency", "name": "l"})
    reply = raw.request("PATCH", "/proxies/upderr/toxics/nope", "garbage")
    assert (reply.status, reply.body) == (404, err(404, "toxic not found"))  # before decoding
    reply = raw.request("PATCH", "/proxies/upderr/toxics/l", "")
    assert (reply.status, reply.body) == (400, err(400, "bad request body: EOF"))
    reply = raw.request("PATCH", "/proxies/upderr/toxics/l", {"attributes": {"latency": 1.5}})
    assert reply.status == 400  # Go cannot store a fraction in an int64 either
    assert raw.request("GET", "/proxies/upderr/toxics/l").json["attributes"]["latency"] == 0


def test_toxic_delete(raw: RawClient, echo: str) -> None:
    create(raw, "del", echo)
    raw.request("POST", "/proxies/del/toxics", {"type": "latency", "name": "l"})
    reply = raw.request("DELETE", "/proxies/del/toxics/l")
    assert (reply.status, reply.body) == (204, b"")
    reply = raw.request("DELETE", "/proxies/del/toxics/l")
    assert (reply.status, reply.body) == (404, err(404, "toxic not found"))


def test_noop_and_null_attributes(raw: RawClient, echo: str) -> None:
    create(raw, "noop", echo)
    reply = raw.request("POST", "/proxies/noop/toxics", {"type": "noop", "attributes": None})
    assert (reply.status, reply.json["attributes"]) == (200, {})
    reply = raw.request(
        "POST", "/proxies/noop/toxics", {"Type": "latency", "Attributes": {"Latency": 7}}
    )
    assert reply.json["attributes"] == {"latency": 7, "jitter": 0}


def test_exact_integer_floats_are_accepted(raw: RawClient, echo: str) -> None:
    """A deviation: Go rejects 100.0 for an int attribute; Python clients send it."""
    create(raw, "floats", echo)
    reply = raw.request(
        "POST", "/proxies/floats/toxics", {"type": "latency", "attributes": {"latency": 100.0}}
    )
    assert reply.status == 200
    assert b'"latency":100,' in reply.body


@pytest.mark.parametrize(
    ("toxic", "attributes", "fragment"),
    [  # what Go's decoder cannot store in Toxiproxy's toxic struct, in Go's words
        ("latency", {"latency": 2**63}, "number 9223372036854775808 into Go struct field"),
        ("latency", {"latency": "100"}, "string into Go struct field LatencyToxic.attributes"),
        ("latency", {"latency": 100.5}, "number 100.5 into Go struct field LatencyToxic"),
        ("latency", {"jitter": True}, "bool into Go struct field LatencyToxic.attributes.jitter"),
        ("bandwidth", {"rate": [1]}, "array into Go struct field BandwidthToxic.attributes.rate"),
        ("slicer", {"average_size": {}}, "SlicerToxic.attributes.average_size of type int"),
        ("timeout", {"timeout": -(2**63) - 1}, "TimeoutToxic.attributes.timeout of type int64"),
    ],
)
def test_bad_attributes_are_clear_400s(
    raw: RawClient, echo: str, toxic: str, attributes: dict[str, object], fragment: str
) -> None:
    needs(toxic)
    create(raw, "attrs", echo)
    reply = raw.request("POST", "/proxies/attrs/toxics", {"type": toxic, "attributes": attributes})
    assert reply.status == 400, reply.body
    assert reply.json["error"].startswith("bad request body: json: cannot unmarshal ")
    assert fragment in reply.json["error"]
    assert raw.request("GET", "/proxies/attrs/toxics").json == []


def test_attributes_must_be_an_object(raw: RawClient, echo: str) -> None:
    create(raw, "attrobj", echo)
    reply = raw.request("POST", "/proxies/attrobj/toxics", {"type": "latency", "attributes": [1]})
    assert reply.status == 400
    assert reply.json["error"].startswith("bad request body: json: cannot unmarshal array")


@pytest.mark.parametrize("toxicity", [1.5, -0.1, 7, -3])
def test_toxicity_outside_unit_range_is_accepted(
    raw: RawClient, echo: str, toxicity: float
) -> None:
    """As Toxiproxy: any float32; a draw from [0, 1) below it acts, so >= 1 always, <= 0 never."""
    create(raw, "tox", echo)
    reply = raw.request("POST", "/proxies/tox/toxics", {"type": "latency", "toxicity": toxicity})
    assert reply.status == 200, reply.body
    assert reply.json["toxicity"] == toxicity


def test_toxicity_beyond_float32_is_gos_400(raw: RawClient, echo: str) -> None:
    create(raw, "tox32", echo)
    reply = raw.request("POST", "/proxies/tox32/toxics", {"type": "latency", "toxicity": 3.5e38})
    assert reply.status == 400
    assert reply.json["error"] == (
        "bad request body: json: cannot unmarshal number 3.5e+38 into Go struct field "
        "ToxicWrapper.toxicity of type float32"
    )


def test_latency_toxic_applies_to_traffic(raw: RawClient, echo: str) -> None:
    proxy = create(raw, "slow", echo)
    raw.request("POST", "/proxies/slow/toxics", {"type": "latency", "attributes": {"latency": 150}})
    start = time.monotonic()
    assert echo_through(str(proxy["listen"])) == b"ping"
    assert time.monotonic() - start >= 0.14
    raw.request("DELETE", "/proxies/slow/toxics/latency_downstream")
    start = time.monotonic()
    assert echo_through(str(proxy["listen"])) == b"ping"
    assert time.monotonic() - start < 0.14


# ---- populate and reset ---------------------------------------------------------------------
def test_populate_creates_and_reports(raw: RawClient, echo: str) -> None:
    body = [
        {"name": "p1", "listen": "127.0.0.1:0", "upstream": echo},
        {"name": "p2", "listen": "127.0.0.1:0", "upstream": echo, "enabled": False},
    ]
    reply = raw.request("POST", "/populate", body)
    assert reply.status == 201
    assert reply.headers["Content-Type"] == "application/json"
    proxies = reply.json["proxies"]
    assert list(reply.json) == ["proxies"]
    assert [(p["name"], p["enabled"]) for p in proxies] == [("p1", True), ("p2", False)]
    assert list(proxies[0]) == ["name", "listen", "upstream", "enabled", "Logger", "toxics"]
    assert echo_through(proxies[0]["listen"]) == b"ping"


def test_populate_keeps_identical_and_replaces_changed(raw: RawClient, echo: str) -> None:
    keep = create(raw, "keep", echo)
    change = create(raw, "change", echo)
    for name in ("keep", "change"):
        raw.request("POST", f"/proxies/{name}/toxics", {"type": "latency", "name": "t"})
    body = [
        {"name": "keep", "listen": keep["listen"], "upstream": echo, "enabled": False},
        {"name": "change", "listen": change["listen"], "upstream": "127.0.0.1:9"},
    ]
    reply = raw.request("POST", "/populate", body)
    assert reply.status == 201, reply.body
    kept, changed = reply.json["proxies"]
    assert [t["name"] for t in kept["toxics"]] == ["t"]
    assert kept["enabled"] is True  # populate does not compare enabled
    assert (changed["toxics"], changed["upstream"]) == ([], "127.0.0.1:9")
    assert changed["listen"] == change["listen"]


def test_populate_validates_everything_first(raw: RawClient, echo: str) -> None:
    body = [{"name": "v1", "upstream": echo}, {"name": "v2"}]
    reply = raw.request("POST", "/populate", body)
    assert reply.status == 400
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.body == (
        b'{"error":"missing required field: upstream at proxy 2","status":400,"proxies":null}'
    )
    assert raw.request("GET", "/proxies").json == {}
    reply = raw.request("POST", "/populate", [{"upstream": echo}])
    assert reply.json["error"] == "missing required field: name at proxy 1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "bad request body: EOF"),
        (
            {"name": "x"},
            "bad request body: json: cannot unmarshal object into Go value of type "
            '[]struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }',  # Go's words
        ),
    ],
)
def test_populate_bad_body(raw: RawClient, body: object, message: str) -> None:
    reply = raw.request("POST", "/populate", body)
    assert reply.json == {"error": message, "status": 400, "proxies": None}


def test_populate_empty_is_null(raw: RawClient) -> None:
    reply = raw.request("POST", "/populate", [])
    assert (reply.status, reply.body) == (201, b'{"proxies":null}')


def test_populate_stops_at_first_failure(raw: RawClient, echo: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        body = [
            {"name": "ok1", "listen": "127.0.0.1:0", "upstream": echo},
            {"name": "fails", "listen": f"127.0.0.1:{port}", "upstream": echo},
            {"name": "never", "listen": "127.0.0.1:0", "upstream": echo},
        ]
        reply = raw.request("POST", "/populate", body)
    assert reply.status == 500
    assert list(reply.json) == ["error", "status", "proxies"]
    assert "address already in use" in reply.json["error"].lower()
    assert [p["name"] for p in reply.json["proxies"]] == ["ok1"]
    assert sorted(raw.request("GET", "/proxies").json) == ["ok1"]


def test_reset_enables_and_clears(raw: RawClient, echo: str) -> None:
    proxy = create(raw, "r", echo)
    raw.request("POST", "/proxies/r/toxics", {"type": "latency"})
    raw.request("POST", "/proxies/r", {"enabled": False})
    reply = raw.request("POST", "/reset", "ignored body")
    assert (reply.status, reply.body) == (204, b"")
    data = raw.request("GET", "/proxies/r").json
    assert (data["enabled"], data["toxics"], data["listen"]) == (True, [], proxy["listen"])
    assert echo_through(str(proxy["listen"])) == b"ping"


# ---- faultlab extensions -----------------------------------------------------------------------
def test_ext_seed(raw: RawClient, engine: ProxyEngine) -> None:
    assert raw.request("GET", "/faultlab/seed").json == {"seed": engine.seed}


def test_ext_toxics_catalogue(raw: RawClient) -> None:
    catalogue = raw.request("GET", "/faultlab/toxics").json
    assert set(toxic_types()) == set(catalogue)
    latency = catalogue["latency"]
    assert latency["standard"] is True
    assert latency["attributes"]["latency"]["type"] == "int"
    assert latency["attributes"]["latency"]["default"] == 0
    # Toxiproxy's eight take any Go int64 (docs/proxy.md, the parity table)
    assert catalogue["bandwidth"]["attributes"]["rate"]["minimum"] == -(2**63)
    assert catalogue["slicer"]["attributes"]["average_size"]["maximum"] == 2**63 - 1
    if "drop" in catalogue:
        assert catalogue["drop"]["standard"] is False


def test_ext_events(raw: RawClient, echo: str) -> None:
    create(raw, "ev1", echo)
    create(raw, "ev2", echo)
    raw.request("POST", "/proxies/ev1/toxics", {"type": "latency"})
    everything = raw.request("GET", "/faultlab/events").json
    assert {"events", "next", "dropped", "seed"} <= set(everything)
    mine = raw.request("GET", "/faultlab/proxies/ev1/events").json
    assert mine["events"]
    assert all(e["proxy"] == "ev1" for e in mine["events"])
    assert "toxic_added" in [e["kind"] for e in mine["events"]]
    later = raw.request("GET", f"/faultlab/proxies/ev1/events?since={mine['next']}").json
    assert later["events"] == []
    assert later["next"] == mine["next"]
    kinds = raw.request("GET", "/faultlab/events?kind=proxy_created,toxic_added").json["events"]
    assert {e["kind"] for e in kinds} == {"proxy_created", "toxic_added"}
    reply = raw.request("GET", "/faultlab/events?since=-1")
    assert reply.status == 400
    reply = raw.request("GET", "/faultlab/proxies/never-existed/events")
    assert (reply.status, reply.body) == (404, err(404, "proxy not found"))
    assert raw.request("POST", "/faultlab/events").status == 405


def test_extensions_can_be_hidden(engine: ProxyEngine) -> None:
    server = ApiServer(engine, port=0, extensions=False).start()
    try:
        client = RawClient(server.url)
        assert client.request("GET", "/faultlab/seed").status == 404
        assert client.request("GET", "/version").status == 200
        client.close()
    finally:
        server.close()


def test_slow_handler_is_503_and_still_finishes(
    engine: ProxyEngine, raw: RawClient, echo: str
) -> None:
    """Go's TimeoutHandler answers 503; the proxy change is completed, never cut halfway."""
    server = ApiServer(engine, port=0, handler_timeout=0).start()
    try:
        client = RawClient(server.url)
        body = {"name": "late", "listen": "127.0.0.1:0", "upstream": echo}
        reply = client.request("POST", "/proxies", body)
        assert reply.status == 503
        assert b"<title>Timeout</title>" in reply.body
        client.close()
    finally:
        server.close()
    deadline = time.monotonic() + TIMEOUT
    while raw.request("GET", "/proxies/late").status != 200:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert echo_through(raw.request("GET", "/proxies/late").json["listen"]) == b"ping"


def test_framing_extension_unlocks_frame_toxics(raw: RawClient, echo: str) -> None:
    """faultlab-only keys on create: Toxiproxy ignores unknown keys, so clients are unaffected."""
    needs("drop")
    create(raw, "bytes", echo)
    reply = raw.request("POST", "/proxies/bytes/toxics", {"type": "drop"})
    assert reply.status == 400
    assert "framing" in reply.json["error"]
    data = create(raw, "framed", echo, framing="lines")
    assert list(data) == ["name", "listen", "upstream", "enabled", "Logger", "framing", "toxics"]
    reply = raw.request("POST", "/proxies/framed/toxics", {"type": "drop"})
    assert reply.status == 200, reply.body
    reply = raw.request("POST", "/proxies", {"name": "f", "upstream": echo, "framing": "morse"})
    assert reply.status == 400
    assert reply.json["error"].startswith("unknown framing 'morse'")
    assert raw.request("GET", "/proxies/f").status == 404
    reply = raw.request(
        "POST", "/populate", [{"name": "framed", "upstream": echo, "listen": data["listen"]}]
    )
    assert "framing" not in reply.json["proxies"][0]  # a different kind of proxy: replaced


@pytest.mark.parametrize("listen", ["", ":0", "0.0.0.0:0"])
def test_a_wildcard_listen_takes_ipv4_and_ipv6_and_shows_the_ipv4_form(
    raw: RawClient, echo: str, listen: str
) -> None:
    """Go listens on ``[::]`` with IPv4 mapped for a wildcard; so does faultlab, so a client
    that resolves ``localhost`` to ``::1`` first connects. It reports ``0.0.0.0:P``
    (Toxiproxy: ``[::]:P``, which toxiproxy-python's own ``split(":")`` cannot read)."""
    body = {"name": "wild", "upstream": echo, **({"listen": listen} if listen else {})}
    reply = raw.request("POST", "/proxies", body)
    assert reply.status == 201, reply.body
    host, _, port = reply.json["listen"].rpartition(":")
    assert host == "0.0.0.0"
    assert echo_through(f"127.0.0.1:{port}") == b"ping"
    if socket.has_ipv6 and _loopback6():
        with socket.create_connection(("::1", int(port)), timeout=5) as conn:
            conn.sendall(b"ping6")
            assert conn.recv(16) == b"ping6"


def _loopback6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_an_api_on_the_wildcard_answers_over_ipv4_and_ipv6(engine: ProxyEngine) -> None:
    with ApiServer(engine, host="0.0.0.0", port=0).start() as server:
        hosts = ["127.0.0.1"] + (["::1"] if socket.has_ipv6 and _loopback6() else [])
        for host in hosts:
            request = b"GET /version HTTP/1.1\r\nHost: faultlab\r\n\r\n"
            reply = raw_exchange(f"http://{host}:{server.port}", request)
            assert reply.startswith(b"HTTP/1.1 200"), (host, reply[:80])
