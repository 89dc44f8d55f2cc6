"""TLS1, TLS2 and M1 on hand-built journals: each property passes, fails and is vacuous, with
messages that name the connection, the certificate and what the peer sent."""

from __future__ import annotations

from typing import Any

from faultlab.oracles import check_mtls_enforced, check_tls_verification

_seq = iter(range(1_000_000))


def ev(kind: str, connection: int = 0, **fields: Any) -> dict[str, Any]:
    return {"seq": next(_seq), "t": 0.0, "kind": kind, "proxy": "p", "connection": connection,
            **fields}  # fmt: skip


def client_shake(cert: str, ok: bool, connection: int = 0, **extra: Any) -> dict[str, Any]:
    return ev("tls_handshake", connection, side="client", ok=ok, cert=cert, sni="api", **extra)


def closed(connection: int = 0, client: int = 0, server: int = 0) -> dict[str, Any]:
    return ev("connection_closed", connection, client_app_bytes=client, server_app_bytes=server)


def test_no_fault_shown_is_vacuous() -> None:
    verdict = check_tls_verification([client_shake("lab", True), closed(client=100)])
    assert verdict.passed
    assert verdict.vacuous


def test_a_refused_handshake_passes_tls1() -> None:
    events = [client_shake("expired", False, error="sslv3 alert certificate expired")]
    verdict = check_tls_verification(events)
    assert verdict.passed
    assert not verdict.vacuous


def test_a_client_that_closes_after_the_handshake_without_a_byte_refused() -> None:
    verdict = check_tls_verification([client_shake("untrusted", True), closed(client=0)])
    assert verdict.passed


def test_a_client_that_sent_bytes_fails_tls1_with_its_request() -> None:
    events = [
        client_shake("wrong_host", True),
        ev("wire_request", method="POST", target="/pay", size=90, tls=True),
        closed(client=90, server=20),
    ]
    verdict = check_tls_verification(events)
    assert not verdict.passed
    assert verdict.property.startswith("TLS1")
    assert "accepted a wrong_host certificate and sent 90 byte(s)" in verdict.message
    assert "POST /pay" in verdict.message
    assert any(e["kind"] == "wire_request" for e in verdict.evidence)


def test_an_open_connection_after_a_bad_certificate_fails_tls1() -> None:
    verdict = check_tls_verification([client_shake("self_signed", True)])
    assert not verdict.passed
    assert "kept the connection open" in verdict.message


def test_rotation_accepted_passes_and_refused_fails_tls2() -> None:
    ok = check_tls_verification([client_shake("rotate", True), closed(client=50)])
    assert ok.passed
    assert not ok.vacuous
    pinned = check_tls_verification([client_shake("rotate", True), closed(client=0)])
    assert not pinned.passed
    assert pinned.property.startswith("TLS2")
    assert "pin" in pinned.message
    # declared a pinning client: a rotated certificate must be refused, as it was
    assert check_tls_verification(
        [client_shake("rotate", True), closed(client=0)], accept=()
    ).passed


def test_a_certificate_the_proxy_could_not_make_is_no_pass() -> None:
    events = [client_shake("weak", False, error="boom", proxy_error=True)]
    verdict = check_tls_verification(events)
    assert not verdict.passed
    assert "could not present" in verdict.message


def test_one_proxy_only() -> None:
    other = client_shake("expired", True)
    other["proxy"] = "q"
    events = [other, {**closed(client=10), "proxy": "q"}]
    assert not check_tls_verification(events).passed
    assert check_tls_verification(events, proxy="p").vacuous


def up_shake(cert: str, ok: bool, connection: int = 0, **extra: Any) -> dict[str, Any]:
    return ev(
        "tls_handshake",
        connection,
        side="upstream",
        ok=ok,
        client_cert=cert,
        server_name="svc",
        **extra,
    )


def test_m1_passes_when_the_server_refuses() -> None:
    refused_in_handshake = [up_shake("expired", False, error="tlsv1 alert unknown ca")]
    assert check_mtls_enforced(refused_in_handshake).passed
    alert_after = [
        up_shake("none", True),
        ev("peer_error", side="server", error="tlsv13 alert certificate required"),
    ]
    assert check_mtls_enforced(alert_after).passed
    silent_close = [up_shake("untrusted", True), closed(client=80, server=0)]
    verdict = check_mtls_enforced(silent_close)
    assert verdict.passed
    assert not verdict.vacuous


def test_m1_fails_when_the_server_answers() -> None:
    events = [
        up_shake("none", True),
        ev("wire_request", method="GET", target="/admin", size=40),
        ev("wire_response", status=200, size=70),
        closed(client=40, server=70),
    ]
    verdict = check_mtls_enforced(events)
    assert not verdict.passed
    assert "accepted no client certificate and answered 70 byte(s)" in verdict.message
    assert "GET /admin" in verdict.message


def test_m1_is_vacuous_with_good_client_certs() -> None:
    assert check_mtls_enforced([up_shake("lab", True), closed(server=5)]).vacuous
