"""Each toxic declares itself; validation, the catalogue and the strategies follow from that."""

from __future__ import annotations

import inspect
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import find, given, settings

from faultlab.journal import Journal
from faultlab.proxy.api import STANDARD_TOXICS, toxic_catalogue
from faultlab.proxy.engine import ProxyEngine, ProxyHandle
from faultlab.proxy.proxy import ProxyError
from faultlab.proxy.server import ApiServer
from faultlab.strategies import ToxicSpec, attribute_shape, faults, toxics
from faultlab.toxics import Attr, InvalidToxic, Toxic, get_toxic_class, toxic_types

QUIET = settings(database=None, max_examples=200, deadline=None, derandomize=True)
OWN = sorted(set(toxic_types()) - STANDARD_TOXICS)


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyHandle]:
    """A framed binrpc proxy whose upstream is never dialled (adding toxics needs no traffic)."""
    engine = ProxyEngine(seed=1, journal=Journal())
    try:
        yield engine.create(
            "declared", upstream="tcp://127.0.0.1:9", framing="length-prefix", protocol="binrpc"
        )
    finally:
        engine.close()


# ---- unknown attributes ------------------------------------------------------------------------
def test_the_standard_set_is_toxiproxys_eight() -> None:
    assert len(STANDARD_TOXICS) == 8
    assert set(toxic_types()) >= STANDARD_TOXICS
    assert len(OWN) >= 10


@pytest.mark.parametrize("type_name", OWN)
def test_faultlabs_own_toxics_refuse_unknown_attributes(type_name: str) -> None:
    cls = get_toxic_class(type_name)
    assert not cls.ignores_unknown_attributes
    known = ", ".join(cls.attributes_spec) or "none (it takes no attributes)"
    message = f"{type_name}: unknown attribute 'bogus'; known: {known}"
    with pytest.raises(InvalidToxic) as raised:
        cls(**cls.mildest(), bogus=1)
    assert str(raised.value) == message
    toxic = cls(**cls.mildest())
    before = dict(toxic.attributes)
    with pytest.raises(InvalidToxic, match="unknown attribute 'bogus'"):
        toxic.update({"bogus": 1})
    assert toxic.attributes == before  # a refused update changes nothing


@pytest.mark.parametrize("type_name", sorted(STANDARD_TOXICS))
def test_toxiproxys_eight_ignore_unknown_attributes(type_name: str) -> None:
    cls = get_toxic_class(type_name)
    assert cls.ignores_unknown_attributes
    toxic = cls(**cls.mildest(), bogus=1, Extra="x")
    assert "bogus" not in toxic.attributes
    # <=: latency hides its netem extension attributes while at their defaults (Toxiproxy's JSON)
    assert set(toxic.attributes) <= set(cls.attributes_spec)
    assert set(toxic.attributes) >= set(cls.mildest())


def test_known_names_still_match_case_insensitively() -> None:
    assert get_toxic_class("fail_first")(COUNT=3).attributes["count"] == 3


def test_a_misspelt_attribute_is_a_400_naming_the_known_ones(proxy: ProxyHandle) -> None:
    """The issue's case: ``n`` instead of ``count`` used to fail every request silently."""
    with pytest.raises(ProxyError) as raised:
        proxy.add_toxic("fail_first", name="ff", n=3)
    assert raised.value.status == 400
    assert str(raised.value) == (
        "fail_first: unknown attribute 'n'; "
        "known: count, scope, mode, protocol, kind, code, message, "
        "match_method, match_path, match_header, match_rpc_method, sequence, status, pushback_ms"
    )
    assert proxy.toxics() == []
    proxy.add_toxic("fail_first", name="ff", count=3)
    with pytest.raises(ProxyError, match="unknown attribute 'cuont'"):
        proxy.update_toxic("ff", cuont=1)
    assert [t["attributes"]["count"] for t in proxy.toxics()] == [3]
    proxy.remove_toxic("ff")
    proxy.add_toxic("latency", name="lat", latency=1, not_a_latency_field=2)  # Toxiproxy's
    assert [t["attributes"] for t in proxy.toxics()] == [{"latency": 1, "jitter": 0}]
    proxy.remove_toxic("lat")


# ---- declarations are consistent ---------------------------------------------------------------
@pytest.mark.parametrize("type_name", sorted(toxic_types()))
def test_what_tests_draw_is_legal(type_name: str) -> None:
    cls = get_toxic_class(type_name)
    for name, attr in cls.attributes_spec.items():
        drawn = list(attr.draw_values()) + list(attr.also)
        bounds = attr.draw_range()
        if bounds is not None:
            drawn += list(bounds)
            assert attr.kind in (int, float)
        for value in drawn:
            attr.check(type_name, name, value)  # raises if out of the legal range
    mildest = cls.mildest()
    assert set(mildest) <= set(cls.attributes_spec)
    cls(**mildest)  # the mildest setting is valid


def test_generate_is_written_mildest_first() -> None:
    rate = Attr(int, 0, 0, 10_000, generate=(1000, 1))
    assert rate.mildest() == 1000
    assert attribute_shape(rate) == faults.Num(1, 1000, "high")
    plain = Attr(float, 0.0, 0.0, 1.0)
    assert plain.draw_range() == (0.0, 1.0)
    assert attribute_shape(plain) == faults.Num(0.0, 1.0, "low", 1000)
    assert attribute_shape(Attr(str, "x")) is None
    assert attribute_shape(Attr(str, "a", choices=("a", "b"))) == faults.Choice(("a", "b"))
    assert attribute_shape(Attr(bool, False)) == faults.Choice((False, True))
    assert Attr(int, 0, 5, 20).draw_range() == (5, 20)  # generic: from the minimum, capped


def test_choices_are_checked_by_the_attribute() -> None:
    attr = Attr(str, "a", choices=("a", "b"))
    assert attr.check("t", "x", "b") == "b"
    with pytest.raises(InvalidToxic, match="'x' must be one of a, b"):
        attr.check("t", "x", "c")


def test_fix_restores_cross_attribute_rules() -> None:
    slicer = get_toxic_class("slicer")
    assert slicer.fix({"average_size": 4, "size_variation": 9}) == {
        "average_size": 4,
        "size_variation": 3,
    }
    slicer(**slicer.fix({"average_size": 1, "size_variation": 32}))  # valid after the fix
    fail_first = get_toxic_class("fail_first")
    assert "kind" not in fail_first.fix({"mode": "close", "kind": "unavailable"})
    assert fail_first.fix({"mode": "error", "kind": "internal_error"})["kind"] == "internal_error"


def test_strategies_know_no_toxic_by_name() -> None:
    """What the strategies need per toxic lives in the toxic's module, nowhere else."""
    source = inspect.getsource(faults)
    for type_name in toxic_types():
        assert f'"{type_name}"' not in source
        assert f"'{type_name}'" not in source
    assert not hasattr(faults, "SHAPES")


# ---- the catalogue -----------------------------------------------------------------------------
def test_catalogue_is_the_declarations() -> None:
    catalogue = toxic_catalogue()
    assert set(catalogue) == set(toxic_types())
    for type_name, entry in catalogue.items():
        cls = get_toxic_class(type_name)
        standard = type_name in STANDARD_TOXICS
        assert entry["unknown_attributes"] == ("ignored" if standard else "refused")
        assert entry["mildest"] == cls.mildest()
        assert list(entry["attributes"]) == list(cls.attributes_spec)
        for name, shown in entry["attributes"].items():
            attr = cls.attributes_spec[name]
            assert (shown["default"], shown["minimum"], shown["maximum"]) == (
                attr.default,
                attr.minimum,
                attr.maximum,
            )
            assert shown["choices"] == (list(attr.choices) or None)
    assert catalogue["bandwidth"]["attributes"]["rate"]["drawn"] == {
        "range": [1000, 1],
        "also": [],
        "step": None,
    }
    assert catalogue["timeout"]["attributes"]["timeout"]["drawn"]["also"] == [0]
    assert catalogue["fail_first"]["attributes"]["mode"]["drawn"] == {
        "values": ["error", "close", "reset"]
    }
    assert catalogue["fail_first"]["attributes"]["message"]["drawn"] is None


# ---- strategies from the declarations ----------------------------------------------------------
@pytest.mark.parametrize(
    ("protocol", "mildest"),
    [
        (None, {"count": 1, "scope": "connection", "mode": "close", "code": 0}),
        (
            "binrpc",
            {
                "count": 1,
                "scope": "connection",
                "mode": "error",
                "protocol": "binrpc",
                "kind": "unavailable",
                "code": 0,
            },
        ),
    ],
)
def test_a_choice_the_proxy_refuses_is_not_drawn(
    protocol: str | None, mildest: dict[str, Any]
) -> None:
    """fail_first's native errors need a protocol: without one it shrinks to ``close``."""
    strategy = toxics(allow=["fail_first"], protocol=protocol)
    assert dict(find(strategy, lambda s: True, settings=QUIET).attributes) == mildest

    @settings(database=None, max_examples=50, deadline=None)
    @given(strategy)
    def modes(spec: ToxicSpec) -> None:
        assert protocol is not None or spec.attributes["mode"] in {"close", "reset"}

    modes()


@pytest.fixture(scope="module")
def http_proxy() -> Iterator[ProxyHandle]:
    """An HTTP-framed proxy (http_error answers HTTP requests only), never dialled either."""
    engine = ProxyEngine(seed=1, journal=Journal())
    try:
        yield engine.create("declared-http", upstream="tcp://127.0.0.1:9", framing="http")
    finally:
        engine.close()


H2_ONLY = {"rst_stream", "goaway", "flow_stall", "stream_latency", "grpc_message"}


@pytest.fixture(scope="module")
def h2_proxy() -> Iterator[ProxyHandle]:
    """A gRPC proxy (HTTP/2 framing), never dialled."""
    engine = ProxyEngine(seed=1, journal=Journal())
    try:
        yield engine.create("declared-h2", upstream="tcp://127.0.0.1:9", protocol="grpc")
    finally:
        engine.close()


@pytest.fixture(scope="module")
def tls_proxy() -> Iterator[ProxyHandle]:
    """A proxy that intercepts TLS (tls_cert acts on its handshakes), never dialled."""
    engine = ProxyEngine(seed=1, journal=Journal())
    try:
        yield engine.create(
            "declared-tls", upstream="tcp://127.0.0.1:9", framing="http", tls={"mode": "intercept"}
        )
    finally:
        engine.close()


@pytest.mark.parametrize(
    "type_name", [t for t in sorted(toxic_types()) if t not in {"noop", "partition"}]
)
def test_each_toxic_shrinks_to_its_declared_mildest(
    type_name: str,
    proxy: ProxyHandle,
    http_proxy: ProxyHandle,
    h2_proxy: ProxyHandle,
    tls_proxy: ProxyHandle,
) -> None:
    cls: type[Toxic] = get_toxic_class(type_name)
    framing = None if type_name == "slicer" else "length-prefix"
    streams: tuple[str, ...] = ("downstream", "upstream")
    target = proxy
    if type_name in ("http_error", "auth_error"):  # HTTP requests only: an HTTP proxy, upstream
        framing, streams, target = "http", ("upstream",), http_proxy
    if type_name in H2_ONLY:  # HTTP/2 streams: a gRPC proxy (goaway: requests, upstream)
        framing, target = "h2", h2_proxy
        streams = ("upstream",) if type_name == "goaway" else streams
    if type_name == "tls_cert":  # a TLS handshake: an intercepting proxy
        framing, target = "http", tls_proxy
    spec = find(
        toxics(allow=[type_name], framing=framing, protocol="binrpc", streams=streams),
        lambda s: True,
        settings=QUIET,
    )
    expected = cls.mildest()
    if "protocol" in cls.attributes_spec:
        expected = cls.fix({**expected, "protocol": "binrpc"})
    assert dict(spec.attributes) == expected
    if framing is not None:
        spec.add_to(target, name="mild")  # a real proxy accepts the mildest setting
        target.remove_toxic("mild")


def test_over_http_an_unknown_attribute_is_a_400_and_toxiproxys_keep_their_tolerance() -> None:
    """What the docs show with curl, through the real API server."""

    def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(url, json.dumps(body).encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    with ProxyEngine(seed=1, journal=Journal()) as engine:
        server = ApiServer(engine, port=0).start()
        try:
            base = server.url.rstrip("/")
            body = {"name": "api", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}
            assert post(f"{base}/proxies", {**body, "framing": "length-prefix"})[0] == 201
            status, reply = post(
                f"{base}/proxies/api/toxics", {"type": "fail_first", "attributes": {"n": 3}}
            )
            assert (status, reply) == (
                400,
                {
                    "error": "fail_first: unknown attribute 'n'; "
                    "known: count, scope, mode, protocol, kind, code, message, "
                    "match_method, match_path, match_header, match_rpc_method, sequence, "
                    "status, pushback_ms",
                    "status": 400,
                },
            )
            status, reply = post(
                f"{base}/proxies/api/toxics",
                {"type": "latency", "attributes": {"latency": 5, "extra": True}},
            )
            assert (status, reply["attributes"]) == (200, {"latency": 5, "jitter": 0})
        finally:
            server.close()
