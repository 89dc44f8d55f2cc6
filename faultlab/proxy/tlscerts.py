"""The certificates an intercepting proxy presents: the lab's good ones, and each fault.

Why one place: a certificate fault is a certificate a verifying client must refuse (signed by a
root it does not trust, expired, for another host...), and the TLS contexts that carry them
are costly to build (a key, a signature, a file load), so they are made once per name and
kind and kept in a bounded cache. ``rotate`` is the exception: a new key and serial on every
connection, from the trusted lab CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faultlab._cleanup import private_dir, runtime_dir

__all__ = [
    "CERT_FAULTS",
    "CLIENT_CERT_FAULTS",
    "GOOD",
    "CertFactory",
    "Issued",
]

GOOD = "lab"
"""The kind of a certificate from the lab CA, valid and for the right name (no fault)."""
CERT_FAULTS = (
    "untrusted",
    "expired",
    "not_yet_valid",
    "wrong_host",
    "self_signed",
    "missing_intermediate",
    "weak",
    "rotate",
)
"""The ``tls_cert`` toxic's kinds, for the certificate the proxy shows a client."""
CLIENT_CERT_FAULTS = (*CERT_FAULTS, "none")
"""Upstream (mTLS), the proxy may also present no client certificate at all."""
WRONG_HOST = "wrong-host.faultlab.invalid"
CACHE_SIZE = 128
_LOAD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Issued:
    """One certificate chain and its key, as PEM, and what it is."""

    kind: str
    chain_pem: bytes
    key_pem: bytes

    @property
    def weak(self) -> bool:
        return self.kind == "weak"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _san(name: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _build(
    names: Sequence[str],
    key: Any,
    *,
    issuer_name: Any,
    issuer_key: Any,
    algorithm: Any,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> bytes:
    """A leaf certificate (cryptography), for the kinds trustme does not make."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    from cryptography.hazmat.primitives import serialization

    cert = builder.sign(issuer_key, algorithm)
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


class CertFactory:
    """Issues the proxy's certificates from the lab CA (and from a root nobody trusts)."""

    def __init__(self, ca: Any) -> None:
        self.ca = ca
        self._untrusted: Any = None
        self._intermediate: Any = None
        self._lock = threading.Lock()
        self._issued: OrderedDict[tuple[str, tuple[str, ...]], Issued] = OrderedDict()

    # ---- certificates ----------------------------------------------------------------------
    def issue(self, kind: str, names: Sequence[str]) -> Issued:
        """The certificate of ``kind`` for ``names`` (cached, except ``rotate``)."""
        names = tuple(dict.fromkeys(n for n in names if n)) or ("localhost",)
        if kind == "rotate":
            return self._make("rotate", names)
        key = (kind, names)
        with self._lock:
            found = self._issued.get(key)
            if found is not None:
                self._issued.move_to_end(key)
                return found
        made = self._make(kind, names)
        with self._lock:
            self._issued[key] = made
            while len(self._issued) > CACHE_SIZE:
                self._issued.popitem(last=False)
        return made

    def _make(self, kind: str, names: tuple[str, ...]) -> Issued:
        if kind in (GOOD, "rotate"):
            return self._trustme(kind, self.ca.issue_cert(*names))
        if kind == "untrusted":
            return self._trustme(kind, self._other_root().issue_cert(*names))
        if kind == "expired":
            now = _now()
            cert = self.ca.issue_cert(
                *names, not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
            )
            return self._trustme(kind, cert)
        if kind == "not_yet_valid":
            now = _now()
            cert = self.ca.issue_cert(
                *names, not_before=now + dt.timedelta(days=1), not_after=now + dt.timedelta(days=30)
            )
            return self._trustme(kind, cert)
        if kind == "wrong_host":
            return self._trustme(kind, self.ca.issue_cert(WRONG_HOST))
        if kind == "missing_intermediate":
            leaf = self._child_ca().issue_cert(*names)
            # the leaf alone: the intermediate that links it to the trusted root is left out
            return Issued(kind, leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes())
        if kind == "self_signed":
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec

            key = ec.generate_private_key(ec.SECP256R1())
            now = _now()
            pem = _build(
                names,
                key,
                issuer_name=None,
                issuer_key=key,
                algorithm=hashes.SHA256(),
                not_before=now - dt.timedelta(hours=1),
                not_after=now + dt.timedelta(days=30),
            )
            return Issued(kind, pem, _key_pem(key))
        if kind == "weak":
            return self._weak(names)
        raise ValueError(f"unknown certificate kind {kind!r}")

    def _weak(self, names: tuple[str, ...]) -> Issued:
        """A 1024-bit RSA key (80 bits of security), signed by the lab CA: trusted, but under
        the 112 bits OpenSSL's security level 2 demands (Python's default since 3.10), so a
        client that keeps its defaults refuses it ("EE certificate key too weak")."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        ca_key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)
        now = _now()
        pem = _build(
            names,
            key,
            issuer_name=ca_cert.subject,
            issuer_key=ca_key,
            algorithm=hashes.SHA256(),
            not_before=now - dt.timedelta(hours=1),
            not_after=now + dt.timedelta(days=30),
        )
        return Issued("weak", pem, _key_pem(key))

    @staticmethod
    def _trustme(kind: str, cert: Any) -> Issued:
        chain = b"".join(p.bytes() for p in cert.cert_chain_pems)
        return Issued(kind, chain, cert.private_key_pem.bytes())

    @property
    def untrusted_root_pem(self) -> bytes:
        """The root the ``untrusted`` fault signs with: trust it in a test client to play one
        configured with the wrong CA (it then accepts what it must refuse)."""
        return bytes(self._other_root().cert_pem.bytes())

    def _other_root(self) -> Any:
        with self._lock:
            if self._untrusted is None:
                import trustme

                self._untrusted = trustme.CA(organization_name="faultlab untrusted root")
            return self._untrusted

    def _child_ca(self) -> Any:
        with self._lock:
            if self._intermediate is None:
                self._intermediate = self.ca.create_child_ca()
            return self._intermediate

    # ---- contexts --------------------------------------------------------------------------
    def server_context(self, issued: Issued, alpn: Sequence[str] = ()) -> ssl.SSLContext:
        """A server-side context presenting ``issued`` (to a client of the proxy)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if issued.weak:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # else OpenSSL will not load the weak key
        load_chain(ctx, issued)
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        return ctx


def load_chain(ctx: ssl.SSLContext, issued: Issued) -> None:
    """Load a chain and key from memory (through a private file removed at once: OpenSSL's
    ``load_cert_chain`` reads only files)."""
    folder = private_dir(runtime_dir() / "tls")
    with _LOAD_LOCK:
        fd, path = tempfile.mkstemp(prefix=".chain-", suffix=".pem", dir=folder)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(issued.key_pem + issued.chain_pem)
            ctx.load_cert_chain(path)
        finally:
            os.unlink(path)
