"""A Pair: a server, a journaled fault proxy in front of it, and a client through the proxy.

``Lab.pair()`` starts the server on an address from the transport registry
(in a thread or a subprocess), puts a proxy in front of it on the same
scheme, and connects an instrumented client through the proxy. Ready means
ready: the server has answered a probe call. A Pair is cheap to reuse:
:meth:`Pair.clear_faults` removes toxics and heals process faults without
restarting a healthy server.

The service may also be a black box (:mod:`faultlab.lab.services`): a
``Command`` faultlab runs or an ``Address`` someone else runs. Then readiness is
the service's declared check (:mod:`faultlab.lab.readiness`), and
``protocol="http"`` means a plain HTTP service with no faultlab client: the
user points their own client at :attr:`Pair.url`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from faultlab import transports
from faultlab._seed import new_seed
from faultlab.errors import FaultlabError, TransportError
from faultlab.journal import Journal
from faultlab.lab.backends.base import BackendError, ServerHandle, ServerSpec, get_backend
from faultlab.lab.backends.command import AddressServer, CommandServer
from faultlab.lab.client import CallRecord, InstrumentedClient, logical_call
from faultlab.lab.services import Address, Command, Image
from faultlab.proxy.engine import ProxyEngine, ProxyHandle
from faultlab.proxy.proxy import effective_framing
from faultlab.proxy.tlsintercept import TlsSettings, TlsSettingsError
from faultlab.rpc.base import get_protocol
from faultlab.rpc.errors import MethodNotFound, RpcError

__all__ = [
    "DEFAULT_SERVICE",
    "HTTP",
    "BlackBoxError",
    "Lab",
    "NoClientError",
    "Pair",
    "incompatibility",
]

DEFAULT_SERVICE = "faultlab.examples.calc:Calc"
HTTP = "http"
"""The protocol of a plain HTTP black-box service: no faultlab client, an HTTP-framed proxy."""
PROXY_FRAMINGS = ("length-prefix", "lines", "msgpack-stream", "http")
READY_TIMEOUT = 15.0


class BlackBoxError(FaultlabError):
    """What a black-box service (a Command or an Address) cannot give: faultlab's own
    client for ``protocol="http"``, the server's side effects."""


class NoClientError(BlackBoxError):
    """``protocol="http"`` has no faultlab client: point your own client at ``pair.url``."""


BlackBox = Command | Address | Image


def incompatibility(protocol: str, transport: str) -> str | None:
    """Why ``protocol`` cannot run over ``transport`` (None when it can)."""
    if protocol == HTTP:
        return None if transport == "tcp" else "a plain HTTP service is fronted over tcp only"
    return get_protocol(protocol).incompatibility(transport)


def _host_port(address: str) -> tuple[str, int]:
    """(host, port) of ``tcp://host:port`` / ``host:port`` (brackets of IPv6 removed)."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, _, port = rest.rpartition(":")
    return host.strip("[]"), int(port)


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _proxy_framing(
    protocol: str, transport: str, framing: str | None, *, intercept: bool = False
) -> str | None:
    """The framing the proxy decodes for frame-aware toxics (None: raw bytes)."""
    if transports.get(transport).capabilities.kind == "message":
        return None
    if transport == "tls" and not intercept:  # passed through: records, not frames
        return None
    if protocol == HTTP:  # a plain HTTP black box: whole HTTP messages
        return "http"
    framings = get_protocol(protocol).framings
    if not framings:  # its library owns the connection (gRPC's HTTP/2): bytes only
        return None
    chosen = framing or framings[0]
    return chosen if chosen in PROXY_FRAMINGS else None


def _framing_reason(
    protocol: str, transport: str, framing: str, *, intercept: bool = False
) -> str | None:
    """Why a proxy with ``framing`` could not cut this protocol's traffic (a refusal when
    the pair is made, never a hang at the first call), or ``None``."""
    if transports.get(transport).capabilities.kind == "message":
        return "a message transport carries whole messages already: no framing applies"
    if transport == "tls" and not intercept:
        return (
            "the proxy passes TLS through and sees encrypted records, not frames "
            '(tls="intercept" reads inside TLS)'
        )
    if protocol == HTTP:
        return None if framing == "http" else "a plain HTTP service is framed with 'http'"
    if framing not in PROXY_FRAMINGS:
        return f"the pair's proxy frames with one of {', '.join(PROXY_FRAMINGS)}"
    framings = get_protocol(protocol).framings
    if framing not in framings:
        carried = ", ".join(framings) if framings else "its library's own (bytes only)"
        return f"{protocol} is framed with {carried}"
    return None


class Pair:
    """Server + proxy + client, sharing the lab's journal."""

    def __init__(
        self,
        lab: Lab,
        name: str,
        spec: ServerSpec,
        server: ServerHandle,
        proxy: ProxyHandle,
        client_timeout: float,
        service: BlackBox | None = None,
    ) -> None:
        self.lab = lab
        self.name = name
        self.spec = spec
        self.server = server
        self.proxy = proxy
        self.protocol = spec.protocol
        self.journal = lab.journal
        self.client_timeout = client_timeout
        self.service = service
        """The black-box service (a Command, Address or Image); None for a Python factory."""
        self._client: InstrumentedClient | None = (
            None if self.protocol == HTTP else self.new_client()
        )

    # where to point a client
    @property
    def address(self) -> str:
        """The proxy's address as a URI (``tcp://host:port`` over tcp)."""
        return self.proxy.address

    @property
    def host(self) -> str:
        """The proxy's listen host (tcp only)."""
        return self._proxy_host_port()[0]

    @property
    def port(self) -> int:
        """The proxy's listen port (tcp only)."""
        return self._proxy_host_port()[1]

    @property
    def url(self) -> str:
        """``http://host:port`` of the proxy (``https://`` when it intercepts TLS): where a
        user's own HTTP client points."""
        url = _http_url(*self._proxy_host_port())
        tls = self.proxy.info().get("tls") or {}
        return "https" + url[4:] if tls.get("mode") == "intercept" else url

    @property
    def server_url(self) -> str:
        """``http://host:port`` of the server itself, bypassing the proxy (tcp only)."""
        if not self.server.address.startswith("tcp://"):
            raise BackendError(f"server_url needs a tcp server, not {self.server.address}")
        return _http_url(*_host_port(self.server.address))

    def _proxy_host_port(self) -> tuple[str, int]:
        address = self.proxy.address
        if not address.startswith("tcp://"):
            raise BackendError(
                f"pair {self.name} listens on {address}, not tcp: it has no host, port or URL"
            )
        return _host_port(address)

    # clients
    @property
    def client(self) -> InstrumentedClient:
        """The pair's journaled client through the proxy (not for ``protocol="http"``)."""
        if self._client is None:
            raise self._no_client("pair.client")
        return self._client

    @client.setter
    def client(self, value: InstrumentedClient) -> None:
        self._client = value

    def _no_client(self, what: str) -> NoClientError:
        return NoClientError(
            f"{what}: protocol 'http' has no faultlab client; point your own HTTP client "
            f"(requests, httpx, ...) at pair.url ({self.url}), or at pair.server_url to "
            "bypass the proxy"
        )

    def _plain_client(self, address: str, timeout: float) -> Any:
        if self.protocol == HTTP:
            raise self._no_client("a faultlab client")
        return get_protocol(self.protocol).connect(
            address, framing=self.spec.framing, timeout=timeout, **self.spec.options
        )

    def new_client(self, *, timeout: float | None = None) -> InstrumentedClient:
        """Another journaled client through the proxy (e.g. one per resilient wrapper)."""
        inner = self._plain_client(self.proxy.address, timeout or self.client_timeout)
        return InstrumentedClient(inner, journal=self.journal)

    def direct_client(self, *, timeout: float = 10.0) -> Any:
        """A plain client straight to the server, bypassing the proxy (for probes and truth)."""
        return self._plain_client(self.server.address, timeout)

    # logical calls
    @contextmanager
    def logical_call(
        self,
        label: str = "",
        *,
        method: str | None = None,
        idempotent: bool = True,
        params: Any = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
    ) -> Iterator[CallRecord]:
        """One logical call around the block: the attempts inside (journaled by faultlab's
        client, or seen on this pair's proxy for your own client) belong to it."""
        with logical_call(
            self.journal,
            label,
            method=method,
            idempotent=idempotent,
            params=params,
            proxy=self.name,
            idempotency_key=idempotency_key,
            request_id=request_id,
        ) as record:
            yield record

    def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        label: str = "",
        method: str | None = None,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(client, *args, **kwargs)`` as one logical call; return its value.

        ``client`` is the pair's faultlab client, or ``None`` for ``protocol="http"`` (``fn``
        then calls through its own client at :attr:`url`)."""
        with self.logical_call(
            label or getattr(fn, "__name__", ""), method=method, idempotent=idempotent, params=args
        ) as record:
            value = fn(self._client, *args, **kwargs)
            record.value = value
            return value

    # faults
    def clear_faults(self) -> None:
        """Remove every toxic and heal process faults, without restarting a healthy server.

        The client's connection is renewed too (same client object), so no state of the
        faulted run (a gRPC channel in reconnect backoff, a half-read frame) leaks into
        the next one. A Command is resumed or restarted (waiting for its declared check);
        an Address is left alone (faultlab does not own it).
        """
        self.proxy.clear()
        if self._client is not None:
            self._client.inner.close()
            self._client.inner = self._plain_client(self.proxy.address, self.client_timeout)
        if isinstance(self.service, Address):
            return
        heal = getattr(self.server, "heal", None)
        if callable(heal):
            heal()
        if self.server.paused:
            self.server.resume()
        if not self.server.alive:
            self.server.restart()
            self.lab._wait_ready(self)

    def pause_server(self) -> None:
        self.server.pause()

    def resume_server(self) -> None:
        self.server.resume()

    def kill_server(self) -> None:
        self.server.kill()

    def stop_server(self) -> None:
        self.server.stop()

    def restart_server(self) -> None:
        self.server.restart()
        self.lab._wait_ready(self)

    # truth from the server
    def server_effects(self) -> list[dict[str, Any]]:
        """Side effects the service applied (calc: ``counter.effects``), asked directly."""
        if self.service is not None:
            raise BlackBoxError(
                f"server_effects asks faultlab's example service (counter.effects); the "
                f"black-box service {self.service} has no such method: read its effects "
                "through its own API (e.g. GET what your test created)"
            )
        with self.direct_client() as client:
            effects: list[dict[str, Any]] = client.call("counter.effects")
        return effects

    def events(self, **filters: Any) -> list[dict[str, Any]]:
        """The journal so far, with the server process's events merged in."""
        merge = getattr(self.server, "merge_events", None)
        if callable(merge):
            merge()
        return self.journal.events(**filters)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        try:
            self.proxy.delete()
        except FaultlabError:
            pass
        self.server.close()

    def __enter__(self) -> Pair:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Lab:
    """Provisions pairs that share one seed, one proxy engine and one journal."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        journal: Journal | None = None,
        backend: str = "thread",
        client_timeout: float = 5.0,
    ) -> None:
        self.seed = new_seed() if seed is None else seed
        self.journal = journal if journal is not None else Journal()
        self.backend = backend
        self.client_timeout = client_timeout
        self.engine = ProxyEngine(seed=self.seed, journal=self.journal)
        self.pairs: list[Pair] = []
        self._names = itertools.count()

    def pair(
        self,
        service: str | Callable[[], Any] | Command | Address | Image = DEFAULT_SERVICE,
        *,
        protocol: str = "binrpc",
        transport: str = "tcp",
        backend: str | None = None,
        framing: str | None = None,
        client_timeout: float | None = None,
        options: dict[str, Any] | None = None,
        proxy_framing: str | None = "auto",
        tls: str | dict[str, Any] | None = None,
    ) -> Pair:
        """Start a server, a proxy in front of it and a client through the proxy.

        ``proxy_framing="auto"`` lets the proxy decode the protocol's frames (so
        frame-aware toxics work, and HTTP exchanges are journaled); ``None`` keeps it a
        raw byte relay (byte-level toxics such as the slicer need that); a framing named
        explicitly must be able to cut the protocol's traffic, or the pair is refused.

        ``service`` may be a black box: a :class:`~faultlab.lab.services.Command`
        (faultlab runs it, whatever the backend), an
        :class:`~faultlab.lab.services.Address` (already running) or an
        :class:`~faultlab.lab.services.Image` (a local container image, always on the
        Docker backend), over tcp; the pair is ready when its declared check passes.
        ``protocol="http"`` is a plain HTTP service: no faultlab client, point your own at
        :attr:`Pair.url`.

        ``tls="intercept"`` (or the proxy API's ``{"mode": "intercept", ...}``) makes the proxy
        end the client's TLS with a lab certificate and open its own to the server, so frames,
        wire events and ``tls_cert`` faults work over TLS: over ``transport="tls"``, or over tcp
        for a black box that serves TLS itself (then :attr:`Pair.url` is ``https://``).
        """
        name = f"pair{next(self._names)}"
        scheme = transport.split("://", 1)[0]
        black_box = isinstance(service, Command | Address | Image)
        if protocol == HTTP and not black_box:
            raise BackendError(
                "protocol 'http' is for black-box services (faultlab.Command, "
                "faultlab.Address, faultlab.Image): a Python factory needs an RPC protocol"
            )
        reason = incompatibility(protocol, scheme)
        if reason is not None:
            raise BackendError(f"cannot pair {protocol} with {scheme}: {reason}")
        try:
            tls_settings = TlsSettings.parse(tls)
        except TlsSettingsError as exc:
            raise BackendError(str(exc)) from None
        intercept = tls_settings is not None and tls_settings.intercept
        if intercept and not (scheme == "tls" or (black_box and scheme == "tcp")):
            raise BackendError(
                f'tls="intercept" needs a TLS server: transport="tls", or a black box serving '
                f"TLS over tcp (not {scheme})"
            )
        if proxy_framing not in ("auto", None):
            reason = _framing_reason(protocol, scheme, proxy_framing, intercept=intercept)
            if reason is not None:
                raise BackendError(
                    f"proxy_framing={proxy_framing!r} cannot decode {protocol} over {scheme}: "
                    f"{reason} (use 'auto', or None for a raw byte relay)"
                )
        if black_box and scheme != "tcp":
            raise BackendError(
                f"a {type(service).__name__} service is reached over tcp, not {scheme}"
            )
        server: ServerHandle
        if isinstance(service, Command | Address | Image):  # started ready, or raises
            if isinstance(service, Image):  # always a container, whatever the lab's backend
                from faultlab.lab.backends.docker import ImageServer

                server = ImageServer(service, self.journal)
            elif isinstance(service, Command):
                server = CommandServer(service, self.journal)
            else:
                server = AddressServer(service, self.journal)
            spec = ServerSpec(str(service), protocol, server.address, framing, dict(options or {}))
        else:
            address = transports.get(scheme).example_address(f"{name}-srv")
            spec = ServerSpec(service, protocol, address, framing, dict(options or {}))
            server = get_backend(backend or self.backend)(spec, self.journal)
        proxy: ProxyHandle | None = None
        try:
            listen = (
                "127.0.0.1:0"
                if scheme == "tcp"
                else (transports.get(scheme).example_address(f"{name}-proxy"))
            )
            proxy = self.engine.create(
                name,
                listen=listen,
                upstream=server.address,
                # a raw relay asked for (proxy_framing=None) stays raw: a protocol that implies
                # a framing (gRPC: HTTP/2) is not given to the proxy, or it would read frames
                protocol=(
                    None
                    if protocol == HTTP
                    or (proxy_framing is None and effective_framing(None, protocol) is not None)
                    else protocol
                ),
                framing=(
                    _proxy_framing(protocol, scheme, framing, intercept=intercept)
                    if proxy_framing == "auto"
                    else proxy_framing
                ),
                tls=tls_settings,
            )
            pair = Pair(
                self,
                name,
                spec,
                server,
                proxy,
                client_timeout or self.client_timeout,
                service if isinstance(service, Command | Address | Image) else None,
            )
            self._wait_ready(pair)
        except BaseException:
            if proxy is not None:
                proxy.delete()
            server.close()
            raise
        self.pairs.append(pair)
        return pair

    def _wait_ready(self, pair: Pair) -> None:
        """Probe the server directly until it answers (an unknown method is an answer).

        Not for a black-box service: its handle waits for the declared readiness check
        when it starts and restarts (and a dead process fails at once, with its stderr).
        """
        if isinstance(pair.server, CommandServer | AddressServer) or isinstance(
            pair.service, Image
        ):
            return
        deadline = time.monotonic() + READY_TIMEOUT
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                with pair.direct_client(timeout=2) as client:
                    client.call("__faultlab_ready__")
            except (MethodNotFound, RpcError):
                return
            except (TransportError, FaultlabError) as exc:
                last = exc
                time.sleep(0.02)
        raise BackendError(
            f"server at {pair.server.address} did not answer within {READY_TIMEOUT:g} s: {last}"
        )

    def close(self) -> None:
        for pair in self.pairs:
            try:
                pair.close()
            except FaultlabError:
                pass
        self.pairs.clear()
        self.engine.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
