"""TLS oracles: the client refuses bad certificates; an mTLS server refuses bad client ones.

Read from what an intercepting proxy journals (``tls_handshake``, the ``fault`` that chose a
certificate, ``wire_request``/``wire_response``, and ``connection_closed`` with the
application bytes each side sent inside TLS), so they judge any client and any server:

- ``TLS1 bad certificate refused``: on every connection where the proxy showed the client a
  bad certificate (``tls_cert`` downstream: untrusted, expired, wrong host...), the client
  sent no application byte: it failed the handshake, or closed right after it (a client that
  checks a pin after the handshake). A client that sent a request is caught, with the bytes.
- ``TLS2 rotated certificate accepted``: a valid new certificate (``rotate``) is accepted (the
  handshake completes and the client does not close without sending); a client that refuses
  it pins a certificate that will change.
- ``M1 bad client certificate refused`` (:func:`check_mtls_enforced`): on every connection
  where the proxy showed an mTLS server no client certificate or a bad one, the server sent
  no application byte back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from faultlab.journal import schema as ev
from faultlab.journal.timeline import Source, Timeline, events_of
from faultlab.oracles._common import PropertyCheck
from faultlab.oracles.verdict import Verdict, combine

__all__ = ["check_mtls_enforced", "check_tls_verification", "tls_checks"]

ORACLE = "tls"
TLS1 = "TLS1 bad certificate refused"
TLS2 = "TLS2 rotated certificate accepted"
M1 = "M1 bad client certificate refused"
GOOD_CERTS = frozenset({"lab"})


class _Connection:
    """What the journal says about one intercepted connection."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.client: dict[str, Any] | None = None
        self.upstream: dict[str, Any] | None = None
        self.closed: dict[str, Any] | None = None
        self.requests: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []


def _connections(events: Iterable[dict[str, Any]], proxy: str | None) -> dict[Any, _Connection]:
    found: dict[Any, _Connection] = defaultdict(_Connection)
    for e in events:
        if proxy is not None and e.get("proxy") != proxy:
            continue
        key = (e.get("proxy"), e.get("connection"))
        kind = e.get("kind")
        if kind == ev.TLS_HANDSHAKE:
            conn = found[key]
            conn.events.append(e)
            if e.get("side") == "client":
                conn.client = e
            else:
                conn.upstream = e
        elif key in found:
            conn = found[key]
            if kind == ev.CONNECTION_CLOSED:
                conn.closed = e
            elif kind == ev.WIRE_REQUEST:
                conn.requests.append(e)
            elif kind == ev.WIRE_RESPONSE:
                conn.responses.append(e)
            elif kind == ev.PEER_ERROR:
                conn.errors.append(e)
            else:
                continue
            conn.events.append(e)
    return found


def _sent(conn: _Connection, field: str, wire: list[dict[str, Any]]) -> int | None:
    """Application bytes one side sent, or None while the connection is open and silent."""
    if conn.closed is not None and isinstance(conn.closed.get(field), int):
        return int(conn.closed[field])
    if wire:
        return sum(int(e.get("size") or 0) for e in wire) or 1
    return None


def _events(source: Source | Timeline) -> list[dict[str, Any]]:
    return source.events if isinstance(source, Timeline) else events_of(source)


def _what(e: dict[str, Any]) -> str:
    name = e.get("sni") or "no SNI"
    return f"connection {e.get('connection')} ({name})"


def _first_request(conn: _Connection) -> str:
    if not conn.requests:
        return ""
    r = conn.requests[0]
    return f": {r.get('method')} {r.get('target')}"


def tls_checks(
    source: Source | Timeline, *, accept: Iterable[str] = ("rotate",), proxy: str | None = None
) -> list[Verdict]:
    """TLS1 and TLS2 (see the module); ``accept``: the certificate kinds a client should
    accept (``rotate`` by default)."""
    events = _events(source)
    accepted = frozenset(accept) | GOOD_CERTS
    refuse = PropertyCheck(ORACLE, TLS1)
    rotate = PropertyCheck(ORACLE, TLS2)
    for conn in _connections(events, proxy).values():
        hs = conn.client
        if hs is None or hs.get("cert") in (None, *GOOD_CERTS):
            continue
        cert = str(hs["cert"])
        if hs.get("proxy_error"):  # nothing was shown: no client decided anything
            (rotate if cert in accepted else refuse).fail(
                f"{_what(hs)}: the proxy could not present the {cert} certificate "
                f"({hs.get('error')}), so this connection tested nothing",
                conn.events,
                connection=hs.get("connection"),
                cert=cert,
            )
            continue
        sent = _sent(conn, "client_app_bytes", conn.requests) if hs.get("ok") else 0
        if cert in accepted:
            rotate.checked += 1
            if sent == 0:
                why = hs.get("error") or "it closed the connection without sending a byte"
                rotate.fail(
                    f"{_what(hs)}: the client refused a valid certificate ({cert}: a new key "
                    f"and serial from the same CA): {why}. Does it pin the certificate it "
                    "saw first?",
                    conn.events,
                    connection=hs.get("connection"),
                    cert=cert,
                )
            continue
        refuse.checked += 1
        if sent == 0:
            continue
        if sent is None:
            refuse.fail(
                f"{_what(hs)}: the client completed the TLS handshake with a {cert} "
                "certificate and kept the connection open (a client that refuses closes it)",
                conn.events,
                connection=hs.get("connection"),
                cert=cert,
            )
            continue
        refuse.fail(
            f"{_what(hs)}: the client accepted a {cert} certificate and sent {sent} byte(s) "
            f"of application data{_first_request(conn)}; a verifying client refuses the "
            "handshake and sends nothing",
            conn.events,
            connection=hs.get("connection"),
            cert=cert,
            sent=sent,
        )
    if refuse.checked == 0:
        refuse.vacuous_reason = f"{TLS1}: no connection was shown a bad certificate"
    if rotate.checked == 0:
        rotate.vacuous_reason = f"{TLS2}: no connection was shown a rotated certificate"
    return [refuse.verdict(), rotate.verdict()]


def check_tls_verification(
    source: Source | Timeline, *, accept: Iterable[str] = ("rotate",), proxy: str | None = None
) -> Verdict:
    """One verdict over TLS1 and TLS2: the client refused every bad certificate the proxy
    showed it and accepted the valid ones (``accept``)."""
    return combine(ORACLE, tls_checks(source, accept=accept, proxy=proxy))


def check_mtls_enforced(
    source: Source | Timeline, *, accept: Iterable[str] = ("rotate",), proxy: str | None = None
) -> Verdict:
    """M1: the server answered nothing on a connection where the proxy showed it no client
    certificate or a bad one (``tls_cert`` on the upstream stream)."""
    events = _events(source)
    accepted = frozenset(accept) | GOOD_CERTS
    check = PropertyCheck(ORACLE, M1)
    for conn in _connections(events, proxy).values():
        hs = conn.upstream
        if hs is None or hs.get("client_cert") in (None, *accepted):
            continue
        cert = str(hs["client_cert"])
        check.checked += 1
        if hs.get("proxy_error"):
            check.fail(
                f"connection {hs.get('connection')}: the proxy could not present "
                f"{_client_cert(cert)} ({hs.get('error')}), so this connection tested nothing",
                conn.events,
                connection=hs.get("connection"),
                client_cert=cert,
            )
            continue
        if not hs.get("ok"):
            continue  # refused in the handshake (TLS 1.2)
        answered = _sent(conn, "server_app_bytes", conn.responses)
        if answered == 0:
            continue
        where = f"connection {hs.get('connection')} to {hs.get('server_name')}"
        if answered is None:
            if conn.errors:
                continue  # the server's alert ended it (TLS 1.3 refuses after the handshake)
            check.fail(
                f"{where}: the server took the handshake with {_client_cert(cert)} and the "
                "connection is still open (a server that enforces mTLS ends it)",
                conn.events,
                connection=hs.get("connection"),
                client_cert=cert,
            )
            continue
        check.fail(
            f"{where}: the server accepted {_client_cert(cert)} and answered {answered} "
            f"byte(s){_first_request(conn)}; an mTLS server refuses it",
            conn.events,
            connection=hs.get("connection"),
            client_cert=cert,
            answered=answered,
        )
    if check.checked == 0:
        check.vacuous_reason = f"{M1}: no connection showed the server a bad client certificate"
    return combine(ORACLE, [check.verdict()])


def _client_cert(kind: str) -> str:
    return "no client certificate" if kind == "none" else f"a {kind} client certificate"
