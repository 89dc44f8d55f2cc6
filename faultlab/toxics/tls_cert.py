"""``tls_cert``: the intercepting proxy presents a bad certificate, per connection.

Why: a client that does not verify the server's certificate can be read and rewritten by
anyone on the path, and nothing shows it until an attacker does. On a proxy with
``"tls": {"mode": "intercept"}`` each new connection draws this toxic (``toxicity``, seeded
like every toxic) and, when it fires, the TLS handshake presents a certificate of ``kind``:

- on the ``downstream`` stream, the server certificate the *client* sees: ``untrusted``
  (a root the client does not trust), ``expired``, ``not_yet_valid``, ``wrong_host`` (for
  ``wrong-host.faultlab.invalid``), ``self_signed``, ``missing_intermediate`` (the leaf
  without the intermediate that links it to the lab root), ``weak`` (a 1024-bit RSA key,
  under the security level clients keep by default), or ``rotate`` (a fresh, valid key and
  serial from the lab CA on every connection: a client must accept it, unless it pins one);
- on the ``upstream`` stream, the client certificate the proxy presents to an mTLS server:
  the same kinds, and ``none`` (no certificate at all). The server must refuse all but
  ``rotate``.

A verifying client refuses the handshake and sends no application byte: the journal's
``tls_handshake`` events and ``check_tls_verification`` show which did not. The toxic does
nothing to the bytes of a connection once it is open.
"""

from __future__ import annotations

from faultlab.proxy.tlscerts import CERT_FAULTS, CLIENT_CERT_FAULTS
from faultlab.toxics.base import Attr, Toxic, register_toxic

__all__ = ["TlsCert"]


@register_toxic
class TlsCert(Toxic):
    type_name = "tls_cert"
    description = "present a bad TLS certificate (intercepting TLS proxies)"
    drawn_by_default = False  # a proxy must intercept TLS: plans name it where it applies
    needs_tls_intercept = True
    attributes_spec = {
        "kind": Attr(
            str,
            "untrusted",
            help="untrusted | expired | not_yet_valid | wrong_host | self_signed | "
            "missing_intermediate | weak | rotate (upstream also: none)",
            choices=CLIENT_CERT_FAULTS,
        ),
    }

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        if stream == "downstream" and self.attributes["kind"] not in CERT_FAULTS:
            return (
                f"kind {self.attributes['kind']!r} is a client certificate fault: "
                "add it on the upstream stream (the certificate the proxy shows the server)"
            )
        return None
