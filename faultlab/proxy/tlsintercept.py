"""TLS interception: the proxy ends the client's TLS with a lab certificate and opens its own.

Why: a passthrough proxy sees only encrypted records, so no request, wire event, per-call
fault or gRPC relay works over TLS. Intercepting, the proxy reads the ClientHello (the name
the client asked for, the protocols it offers), connects to the upstream with the same name
and ALPN list (verified against the system's roots and the lab CA, or ``upstream_ca``), then
answers the client with a certificate for that name from the lab CA and the upstream's ALPN
choice. The links between the two TLS sessions carry plaintext: every toxic, wire event and
oracle works as in clear. ``tls_cert`` toxics choose, per connection, a bad certificate
instead (and, upstream, a bad client certificate for mTLS).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import ssl
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faultlab._seed import derive
from faultlab.codecs.framing.tls_hello import ClientHello
from faultlab.errors import FaultlabError
from faultlab.journal.schema import TLS_HANDSHAKE
from faultlab.proxy.endpoints import SocketEndpoint
from faultlab.proxy.tlscerts import GOOD, CertFactory, Issued, load_chain
from faultlab.proxy.tlsendpoint import HANDSHAKE_TIMEOUT, TlsEndpoint, describe_tls_error

if TYPE_CHECKING:
    from faultlab.proxy.proxy import Proxy

__all__ = ["MODES", "TLS_HANDSHAKE", "TlsSettings", "TlsSettingsError", "intercept"]

MODES = ("passthrough", "intercept")
MAX_PEM = 1 << 20
_CONTEXTS = 64


class TlsSettingsError(FaultlabError, ValueError):
    """A proxy's ``tls`` field is not valid (the API answers 400)."""


@dataclass(frozen=True)
class TlsSettings:
    """A proxy's ``"tls"`` field: ``{"mode": "intercept" | "passthrough", ...}``.

    ``upstream_ca``: PEM text or a file path the upstream's certificate is verified against
    (default: the system's roots and the lab CA); ``upstream_verify: false`` skips that
    check (a service with a throwaway certificate); ``upstream_name``: the name to verify
    and send as SNI (default: the upstream's host); ``client_cert``: the client certificate
    shown to an mTLS upstream, PEM text or a path holding the key and chain (default: one
    from the lab CA).
    """

    mode: str = "passthrough"
    upstream_ca: str | None = None
    upstream_verify: bool = True
    upstream_name: str | None = None
    client_cert: str | None = None

    @property
    def intercept(self) -> bool:
        return self.mode == "intercept"

    @classmethod
    def parse(cls, value: Any) -> TlsSettings | None:
        """From the API's JSON (or a TlsSettings, or None); a clear error for anything else."""
        if value is None or isinstance(value, TlsSettings):
            return value
        if isinstance(value, str):
            value = {"mode": value}
        if not isinstance(value, Mapping):
            raise TlsSettingsError(
                f'tls must be an object such as {{"mode": "intercept"}}, got {type(value).__name__}'
            )
        known = {"mode", "upstream_ca", "upstream_verify", "upstream_name", "client_cert"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise TlsSettingsError(
                f"tls: unknown field {unknown[0]!r}; known: {', '.join(sorted(known))}"
            )
        mode = value.get("mode", "passthrough")
        if mode not in MODES:
            raise TlsSettingsError(f"tls: mode must be one of {', '.join(MODES)}, got {mode!r}")
        for name in ("upstream_ca", "upstream_name", "client_cert"):
            field = value.get(name)
            if field is not None and (not isinstance(field, str) or not field):
                raise TlsSettingsError(f"tls: {name} must be a non-empty string")
            if isinstance(field, str) and len(field) > MAX_PEM:
                raise TlsSettingsError(f"tls: {name} is longer than {MAX_PEM} characters")
        verify = value.get("upstream_verify", True)
        if not isinstance(verify, bool):
            raise TlsSettingsError("tls: upstream_verify must be true or false")
        settings = cls(
            mode,
            value.get("upstream_ca"),
            verify,
            value.get("upstream_name"),
            value.get("client_cert"),
        )
        if settings.intercept:
            settings.check_files()
        return settings

    def check_files(self) -> None:
        """Load what was given once, now: a bad path or PEM is a 400, not a failed connection."""
        try:
            _verify_context(self)
            if self.client_cert is not None:
                ssl.create_default_context().load_cert_chain(_as_file(self.client_cert))
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise TlsSettingsError(f"tls: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        view: dict[str, Any] = {"mode": self.mode}
        if self.upstream_ca is not None:
            view["upstream_ca"] = self.upstream_ca
        if not self.upstream_verify:
            view["upstream_verify"] = False
        if self.upstream_name is not None:
            view["upstream_name"] = self.upstream_name
        if self.client_cert is not None:
            view["client_cert"] = self.client_cert
        return view


def _is_pem(text: str) -> bool:
    return "-----BEGIN " in text


def _as_file(text: str) -> str:
    """A PEM given inline is written to a private file (OpenSSL loads chains from files)."""
    if not _is_pem(text):
        return text
    from faultlab._cleanup import private_dir, runtime_dir

    folder = private_dir(runtime_dir() / "tls")
    import hashlib

    path = folder / f"given-{hashlib.sha256(text.encode()).hexdigest()[:16]}.pem"
    if not path.exists():
        from faultlab._cleanup import write_private

        write_private(path, text.encode())
    return str(path)


def _verify_context(settings: TlsSettings) -> ssl.SSLContext:
    from faultlab.transports.tls import test_ca_files

    ctx = ssl.create_default_context()
    if not settings.upstream_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if settings.upstream_ca is None:
        ctx.load_verify_locations(cafile=str(test_ca_files()[0]))
    elif _is_pem(settings.upstream_ca):
        ctx.load_verify_locations(cadata=settings.upstream_ca)
    else:
        if not os.path.isfile(settings.upstream_ca):
            raise ValueError(f"upstream_ca: no such file {settings.upstream_ca!r}")
        ctx.load_verify_locations(cafile=settings.upstream_ca)
    return ctx


class Interceptor:
    """One proxy's TLS state: its settings, certificates and cached contexts."""

    def __init__(self, settings: TlsSettings) -> None:
        from faultlab.transports.tls import lab_ca

        self.settings = settings
        self.certs = CertFactory(lab_ca())
        self._lock = threading.Lock()
        self._contexts: OrderedDict[tuple[Any, ...], ssl.SSLContext] = OrderedDict()

    def _cached(self, key: tuple[Any, ...], make: Any) -> ssl.SSLContext:
        with self._lock:
            found = self._contexts.get(key)
            if found is not None:
                self._contexts.move_to_end(key)
                return found
        made: ssl.SSLContext = make()
        with self._lock:
            self._contexts[key] = made
            while len(self._contexts) > _CONTEXTS:
                self._contexts.popitem(last=False)
        return made

    def client_side(self, kind: str, names: tuple[str, ...], alpn: str | None) -> ssl.SSLContext:
        """The context that answers a client: a certificate of ``kind`` for ``names``."""
        offer = (alpn,) if alpn else ()
        if kind == "rotate":
            return self.certs.server_context(self.certs.issue(kind, names), offer)
        return self._cached(
            ("client", kind, names, alpn),
            lambda: self.certs.server_context(self.certs.issue(kind, names), offer),
        )

    def upstream_side(self, alpn: tuple[str, ...], kind: str) -> ssl.SSLContext:
        """The context the proxy connects upstream with (client certificate of ``kind``)."""

        def make() -> ssl.SSLContext:
            ctx = _verify_context(self.settings)
            if alpn:
                ctx.set_alpn_protocols(list(alpn))
            if kind == GOOD and self.settings.client_cert is not None:
                ctx.load_cert_chain(_as_file(self.settings.client_cert))
            elif kind != "none":
                issued: Issued = self.certs.issue(kind, ("faultlab-proxy",))
                if issued.weak:
                    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                load_chain(ctx, issued)
            return ctx

        if kind == "rotate":
            return make()
        return self._cached(("upstream", alpn, kind), make)


def choose_cert(proxy: Proxy, ordinal: int, stream: str) -> str:
    """The certificate kind this connection gets on ``stream``: the first ``tls_cert`` toxic
    whose seeded per-connection draw fires (the same draw its link stage records), else the
    lab's good one."""
    for entry in proxy.toxic_list():
        if entry.stream.lower() != stream or entry.toxic.type_name != "tls_cert":
            continue
        rng = derive(proxy.seed, proxy.name, ordinal, stream, entry.name, entry.generation)
        draw = rng.random()
        if draw < entry.toxicity:
            kind = str(entry.toxic.attributes["kind"])
            proxy.journal.record(
                "fault",
                proxy=proxy.name,
                connection=ordinal,
                direction=stream,
                toxic=entry.name,
                type="tls_cert",
                decision="certificate",
                cert=kind,
                draw=round(draw, 6),
                toxicity=entry.toxicity,
            )
            return kind
    return GOOD


def _names(hello: ClientHello, client: SocketEndpoint) -> tuple[str, ...]:
    """The names the client asked for: its SNI, else the address it connected to."""
    if hello.server_name:
        return (hello.server_name,)
    sockname = client.transport.get_extra_info("sockname") if client.transport else None
    host = str(sockname[0]) if sockname else "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return (host,)
    return (host, "localhost")


def _handshake_fields(tls: TlsEndpoint) -> dict[str, Any]:
    obj = tls.ssl_object
    if obj is None:
        return {}
    fields: dict[str, Any] = {"version": obj.version()}
    cipher = obj.cipher()
    if cipher:
        fields["cipher"] = cipher[0]
    fields["alpn"] = obj.selected_alpn_protocol()
    return fields


async def _wait(future: asyncio.Future[Any]) -> Any:
    return await asyncio.wait_for(asyncio.shield(future), HANDSHAKE_TIMEOUT)


async def intercept(
    proxy: Proxy, interceptor: Interceptor, client: SocketEndpoint, ordinal: int
) -> tuple[TlsEndpoint, TlsEndpoint] | None:
    """Both handshakes of one connection, journaled; the two TLS endpoints, or None (refused,
    failed or timed out: everything is closed and the reason is in the journal)."""
    journal = proxy.journal
    down = TlsEndpoint(client, server_side=True)

    def failed(side: str, exc: BaseException, **fields: Any) -> None:
        journal.record(
            TLS_HANDSHAKE,
            proxy=proxy.name,
            connection=ordinal,
            side=side,
            ok=False,
            error=describe_tls_error(exc) if not isinstance(exc, TimeoutError) else "timed out",
            **fields,
        )

    try:
        hello: ClientHello = await _wait(down.hello)
    except (FaultlabError, OSError, TimeoutError) as exc:
        failed("client", exc, cert=None)
        down.close()
        return None
    settings = interceptor.settings
    host = proxy.upstream_host()
    upstream_name = settings.upstream_name or host
    up: TlsEndpoint | None = None
    try:
        server = await asyncio.wait_for(proxy.open_upstream_socket(), HANDSHAKE_TIMEOUT)
    except (OSError, ValueError, FaultlabError, TimeoutError) as exc:
        journal.record(
            "upstream_failed",
            proxy=proxy.name,
            connection=ordinal,
            upstream=proxy.upstream,
            error=str(exc) or type(exc).__name__,
        )
        down.close()
        return None
    try:
        up = TlsEndpoint(server, server_side=False)
        client_kind = choose_cert(proxy, ordinal, "upstream")
        target = {"server_name": upstream_name, "client_cert": client_kind}
        try:
            ctx = interceptor.upstream_side(hello.alpn, client_kind)
        except Exception as exc:  # the proxy's own failure: the upstream saw nothing
            failed("upstream", exc, proxy_error=True, **target)
            up.reset()
            down.reset()
            return None
        try:
            up.begin(ctx, server_hostname=upstream_name)
            await _wait(up.handshake)
        except Exception as exc:  # the upstream's refusal (or ours of its certificate)
            failed("upstream", exc, **target)
            up.close()
            down.close()
            return None
        up_fields = _handshake_fields(up)
        journal.record(
            TLS_HANDSHAKE,
            proxy=proxy.name,
            connection=ordinal,
            side="upstream",
            ok=True,
            **target,
            **up_fields,
        )
        kind = choose_cert(proxy, ordinal, "downstream")
        names = _names(hello, client)
        shown = {"cert": kind, "sni": hello.server_name, "offered": list(hello.alpn)}
        try:
            ctx = interceptor.client_side(kind, names, up_fields.get("alpn"))
        except Exception as exc:  # the proxy's own failure: no certificate was shown at all
            failed("client", exc, proxy_error=True, **shown)
            up.close()
            down.reset()
            return None
        try:
            down.begin(ctx)
            await _wait(down.handshake)
        except Exception as exc:  # the client's refusal, or a timeout
            failed("client", exc, **shown)
            up.close()
            down.close()
            return None
        journal.record(
            TLS_HANDSHAKE,
            proxy=proxy.name,
            connection=ordinal,
            side="client",
            ok=True,
            **shown,
            **_handshake_fields(down),
        )
    except BaseException:  # cancelled (the proxy stops): nothing is left open
        if up is not None:
            up.reset()
        else:
            server.reset()
        down.reset()
        raise
    return down, up
