"""The proxy API's TLS extension: the ``tls`` field, ``GET /faultlab/ca.pem`` and ``tls_cert``.

A Toxiproxy client never sends ``tls`` and never sees it (a proxy without it shows none);
every bad value is a 400 that says what is wrong, and nothing is created by a refused request.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from faultlab.transports import tls as tls_transport
from tests.contract.conftest import RawClient

pytestmark = pytest.mark.timeout(60)
INTERCEPT = {"mode": "intercept"}


def create(raw: RawClient, name: str, **extra: object) -> tuple[int, dict[str, object]]:
    body = {"name": name, "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9", **extra}
    reply = raw.request("POST", "/proxies", body)
    return reply.status, reply.json


def test_a_proxy_without_tls_shows_none(raw: RawClient) -> None:
    status, shown = create(raw, "plain")
    assert status == 201
    assert "tls" not in shown


def test_an_intercepting_proxy_shows_its_settings(raw: RawClient) -> None:
    status, shown = create(raw, "mitm", tls={**INTERCEPT, "upstream_verify": False})
    assert status == 201
    assert shown["tls"] == {"mode": "intercept", "upstream_verify": False}
    assert raw.request("GET", "/proxies/mitm").json["tls"] == shown["tls"]


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ("intercept", "Go struct field Proxy.tls"),
        (["intercept"], "Go struct field Proxy.tls"),
        ({"mode": "mitm"}, "mode must be one of passthrough, intercept"),
        ({"mode": "intercept", "verify": False}, "unknown field 'verify'"),
        ({"mode": "intercept", "upstream_verify": "no"}, "upstream_verify must be true or false"),
        ({"mode": "intercept", "upstream_ca": "/no/such/ca.pem"}, "no such file"),
        ({"mode": "intercept", "upstream_ca": ""}, "upstream_ca must be a non-empty string"),
        ({"mode": "intercept", "client_cert": "/no/such/cert.pem"}, "tls: "),
        (
            {"mode": "intercept", "upstream_ca": "-----BEGIN CERTIFICATE-----\nnope\n"},
            "tls: ",
        ),
    ],
)
def test_bad_tls_settings_are_400_and_create_nothing(
    raw: RawClient, tls: object, message: str
) -> None:
    reply = raw.request(
        "POST", "/proxies", {"name": "bad", "listen": "127.0.0.1:0", "upstream": "x:1", "tls": tls}
    )
    assert reply.status == 400, reply.body
    assert message in reply.json["error"]
    assert raw.request("GET", "/proxies/bad").status == 404


def test_tls_cert_needs_an_intercepting_proxy(raw: RawClient) -> None:
    create(raw, "plain")
    reply = raw.request(
        "POST", "/proxies/plain/toxics", {"type": "tls_cert", "attributes": {"kind": "expired"}}
    )
    assert reply.status == 400
    assert 'create it with "tls": {"mode": "intercept"}' in reply.json["error"]


def test_tls_cert_kinds_and_streams(raw: RawClient) -> None:
    create(raw, "mitm", tls=INTERCEPT)
    ok = raw.request(
        "POST", "/proxies/mitm/toxics", {"type": "tls_cert", "attributes": {"kind": "weak"}}
    )
    assert ok.status == 200, ok.body
    assert ok.json["attributes"] == {"kind": "weak"}
    unknown = raw.request(
        "POST",
        "/proxies/mitm/toxics",
        {"type": "tls_cert", "name": "x", "attributes": {"kind": "revoked"}},
    )
    assert unknown.status == 400
    assert "kind" in unknown.json["error"]
    none_downstream = raw.request(
        "POST",
        "/proxies/mitm/toxics",
        {"type": "tls_cert", "name": "y", "attributes": {"kind": "none"}},
    )
    assert none_downstream.status == 400
    assert "upstream stream" in none_downstream.json["error"]
    none_upstream = raw.request(
        "POST",
        "/proxies/mitm/toxics",
        {"type": "tls_cert", "name": "z", "stream": "upstream", "attributes": {"kind": "none"}},
    )
    assert none_upstream.status == 200


def test_tls_cannot_change_on_a_live_proxy(raw: RawClient) -> None:
    create(raw, "mitm", tls=INTERCEPT)
    same = raw.request("POST", "/proxies/mitm", {"tls": INTERCEPT, "enabled": True})
    assert same.status == 200
    changed = raw.request("POST", "/proxies/mitm", {"tls": {"mode": "passthrough"}})
    assert changed.status == 400
    assert "tls cannot change" in changed.json["error"]
    assert raw.request("GET", "/proxies/mitm").json["tls"] == INTERCEPT


def test_populate_takes_tls_and_checks_it_first(raw: RawClient) -> None:
    good = {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9", "tls": INTERCEPT}
    bad = {"name": "b", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9", "tls": {"mode": 1}}
    refused = raw.request("POST", "/populate", [good, bad])
    assert refused.status == 400
    assert "at proxy 2" in refused.json["error"]
    assert raw.request("GET", "/proxies/a").status == 404  # nothing applied
    done = raw.request("POST", "/populate", [good])
    assert done.status == 201
    assert done.json["proxies"][0]["tls"] == INTERCEPT


def test_framing_over_tls_needs_interception(raw: RawClient) -> None:
    body = {"listen": "127.0.0.1:0", "upstream": "tls://127.0.0.1:9", "framing": "http"}
    opaque = raw.request("POST", "/proxies", {"name": "p", **body})
    assert opaque.status == 400
    assert "intercept" in opaque.json["error"]
    ok = raw.request("POST", "/proxies", {"name": "i", **body, "tls": INTERCEPT})
    assert ok.status == 201, ok.body


def test_the_lab_ca_is_served(raw: RawClient) -> None:
    reply = raw.request("GET", "/faultlab/ca.pem")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/x-pem-file"
    assert reply.body == Path(tls_transport.test_ca_files()[0]).read_bytes()
    ctx = ssl.create_default_context(cadata=reply.body.decode())  # a loadable root
    assert ctx.cert_store_stats()["x509_ca"] == 1
