"""A proxy: a listen address, an upstream, toxics per direction, and live connections.

Runs inside the engine's event loop (see :mod:`faultlab.proxy.engine` for the
synchronous facade). ``listen`` and ``upstream`` accept Toxiproxy's
``host:port`` and faultlab URIs (``unix:///path``, ``fifo:///dir/name``,
``udp://...``). tcp, unix and tls (passed through as bytes: faults act below
TLS) use asyncio sockets; other transports are bridged through their sync
streams. Enable/disable closes the listener and every connection and rebinds
the same address, keeping the toxics.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import itertools
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from faultlab import transports
from faultlab.codecs.framing import hpack_decode
from faultlab.errors import AddressError, FaultlabError, TransportError
from faultlab.journal import Journal
from faultlab.proxy.dgram_endpoint import ClientDatagramEndpoint, DatagramEndpoint
from faultlab.proxy.endpoints import BridgeEndpoint, Endpoint, SocketEndpoint
from faultlab.proxy.h2relay import H2Relay
from faultlab.proxy.h2wire import H2Exchanges
from faultlab.proxy.link import Link
from faultlab.proxy.tlsendpoint import TlsEndpoint
from faultlab.proxy.tlsintercept import Interceptor, TlsSettings, TlsSettingsError, intercept
from faultlab.proxy.udprelay import UdpOptions, UdpRelay
from faultlab.proxy.wire import (
    DEFAULT_WIRE_HEADERS,
    RPC_STREAM_FRAMINGS,
    Exchanges,
    HttpExchanges,
    RpcExchanges,
)
from faultlab.toxics.base import InvalidToxic, Toxic, get_toxic_class

__all__ = [
    "Connection",
    "InvalidProxyRequest",
    "ListenFailed",
    "Proxy",
    "ProxyError",
    "ProxyExists",
    "ProxyNotFound",
    "ToxicEntry",
    "to_uri",
]

STREAMS = ("upstream", "downstream")
CONNECT_TIMEOUT = 10.0
ACCEPT_CANCEL_TIMEOUT = 5.0
SOCKET_SCHEMES = {"tcp", "tls", "unix"}


class ProxyError(FaultlabError):
    """A proxy operation failed; the subclass says how.

    Why classes, not HTTP statuses: the engine is a library, and only the API layer
    (:func:`faultlab.proxy.api.http_status`) decides what a failure looks like over HTTP.
    """

    @property
    def status(self) -> int:
        """The HTTP status the API answers this error with (kept for compatibility)."""
        from faultlab.proxy.api import http_status

        return http_status(self)


class InvalidProxyRequest(ProxyError):
    """Bad input: a name, address, framing, protocol, stream, toxic type or attribute."""


class ProxyNotFound(ProxyError):
    """No proxy (or toxic) of that name."""


class ProxyExists(ProxyError):
    """A proxy (or toxic) of that name already exists."""


class ListenFailed(ProxyError):
    """The proxy could not listen on its address (in use, unresolvable, not permitted)."""


def dual_stack_socket(port: int) -> socket.socket | None:
    """A TCP socket bound to ``[::]:port`` that takes IPv4 too (``IPV6_V6ONLY`` off), as Go
    listens for a wildcard address: a client that resolves ``localhost`` to ``::1`` first
    still connects. ``None`` where IPv6 is off (the caller binds ``0.0.0.0``); a bind error
    is raised as it is."""
    if not socket.has_ipv6:
        return None
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    except OSError:
        sock.close()
        return None
    try:
        sock.bind(("::", port))
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            return None  # no IPv6 here after all
        raise
    return sock


async def go_listen_host(host: str) -> str:
    """One address to bind, as Go's ``net.Listen`` picks it (``localhost``: 127.0.0.1 only,
    so port 0 gives one port rather than one per resolved address)."""
    if host in ("", "0.0.0.0"):
        return "0.0.0.0"
    try:
        ipaddress.ip_address(host.strip("[]"))
        return host.strip("[]")
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), 10)
    if not infos:
        raise OSError(f"lookup {host}: no such host")
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


def go_bind_error(host: str, port: int, code: int) -> str:
    """A failed TCP listen worded as Toxiproxy (Go's ``net.Listen``) words it, e.g.
    ``listen tcp 127.0.0.1:3310: bind: address already in use`` (``host`` as
    :func:`go_listen_host` resolved it; empty for ``:port``): clients and their test suites
    compare the message."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    text = os.strerror(code)
    return f"listen tcp {address}: bind: {text[:1].lower()}{text[1:]}"


def to_uri(address: str) -> str:
    """Toxiproxy's ``host:port`` (and ``:port``, ``[::1]:p``) become ``tcp://`` URIs."""
    if "://" in address:
        return address
    if not address or address.startswith(":"):
        address = "0.0.0.0" + address if address else "0.0.0.0:0"
    return "tcp://" + address


def toxiproxy_address(uri: str) -> str:
    """The reverse, for the API: tcp URIs are shown as ``host:port`` like Toxiproxy."""
    if uri.startswith("tcp://"):
        return uri[len("tcp://") :]
    return uri


@dataclass
class ToxicEntry:
    name: str
    toxic: Toxic
    stream: str
    toxicity: float
    generation: int = 0
    shared: dict[str, Any] = field(default_factory=dict)
    """State every link of this toxic shares (fail_first's proxy-wide count)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": dict(self.toxic.attributes),
            "name": self.name,
            "type": self.toxic.type_name,
            "stream": self.stream,
            "toxicity": self.toxicity,
        }


@dataclass(eq=False)
class Connection:
    proxy: Proxy
    ordinal: int
    client: Endpoint
    server: Endpoint
    links: dict[str, Link] = field(default_factory=dict)
    message_based: bool = False
    closed: bool = False
    exchanges: Exchanges | None = None
    """The exchanges journaled on this connection (HTTP framing, or an RPC stream)."""
    h2: H2Relay | None = None
    """With ``h2`` framing: what the relay drops, re-encodes or adds on this connection."""
    tls: tuple[TlsEndpoint, TlsEndpoint] | None = None
    """Intercepted TLS: the client's session and the upstream's (they count the bytes)."""

    def link_finished(self, link: Link) -> None:
        if all(each.done for each in self.links.values()):
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for link in self.links.values():
            link.stop()
        self.client.close()
        self.server.close()
        if self.exchanges is not None:
            self.exchanges.ended()
        self.proxy._forget(self)
        self._release()

    def _release(self) -> None:
        """Break the reference cycles between this connection, its links and endpoints,
        so a closed connection's memory is reused at once (not after a full GC)."""
        for link in self.links.values():
            link.release()
        self.client.unbind()
        self.server.unbind()
        self.links = {}
        self.h2 = None

    def held_bytes(self) -> int:
        """Bytes this connection holds in the proxy, both directions."""
        return sum(link.held_bytes() for link in self.links.values())

    def reset(self) -> None:
        if self.closed:
            return
        self.closed = True
        for link in self.links.values():
            link.stop()
        self.client.reset()
        self.server.reset()
        if self.exchanges is not None:
            self.exchanges.ended(reset=True)
        self.proxy.journal.record("reset", proxy=self.proxy.name, connection=self.ordinal)
        self.proxy._forget(self)
        self._release()

    def lost(self, side: str, exc: BaseException | None) -> None:
        """One socket is gone: the other side closes too (after pending EOF)."""
        if self.closed:
            return
        other = self.server if side == "client" else self.client
        if exc is not None:
            self.proxy.journal.record(
                "peer_error",
                proxy=self.proxy.name,
                connection=self.ordinal,
                side=side,
                error=str(exc),
            )
            self.closed = True
            for link in self.links.values():
                link.stop()
            other.reset() if isinstance(exc, ConnectionResetError) else other.close()
            (self.client if side == "client" else self.server).reset()  # its fds go too
            if self.exchanges is not None:
                if side == "client":
                    self.exchanges.client_eof()
                self.exchanges.ended(reset=isinstance(exc, ConnectionResetError))
            self.proxy._forget(self)
            self._release()
            return
        source_link = self.links["upstream" if side == "client" else "downstream"]
        source_link.feed_eof()


class Proxy:
    """One proxy in an engine; every method runs on the engine's loop."""

    def __init__(
        self,
        name: str,
        listen: str,
        upstream: str,
        *,
        journal: Journal,
        seed: int,
        framing: str | None = None,
        record_chunks: bool = False,
        protocol: str | None = None,
        journal_wire: bool = True,
        wire_headers: tuple[str, ...] | None = None,
        tls: TlsSettings | dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.protocol = protocol
        """The RPC protocol the proxy carries, for protocol-aware toxics (rpc_error...)."""
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.journal = journal
        self.seed = seed
        try:
            self.tls = TlsSettings.parse(tls)
        except TlsSettingsError as exc:
            raise InvalidProxyRequest(str(exc)) from None
        intercepting = self.tls is not None and self.tls.intercept
        opaque = not intercepting and any(
            to_uri(a).startswith("tls://") for a in (listen, upstream)
        )
        framing = effective_framing(framing, protocol, tls=opaque)
        if framing and opaque:
            raise InvalidProxyRequest(
                "a TLS proxy passes encrypted records through (faults act below TLS): "
                'it cannot see frames, so framing must not be set (or set "tls": '
                '{"mode": "intercept"} to read inside TLS)'
            )
        if intercepting:
            for role, address in (("listen", listen), ("upstream", upstream)):
                scheme = to_uri(address).split("://", 1)[0]
                if scheme not in SOCKET_SCHEMES:
                    raise InvalidProxyRequest(
                        f"TLS interception needs a socket {role} (tcp, tls or unix), got "
                        f"{scheme}://"
                    )
        self._interceptor = Interceptor(self.tls) if self.tls and self.tls.intercept else None
        self.framing = framing
        if framing == "h2":
            hpack_decode.warm()
        self.record_chunks = record_chunks
        self.journal_wire = journal_wire
        """With HTTP framing, journal each exchange (``wire_request``/``wire_response``)."""
        self.wire_headers = tuple(wire_headers or ()) + DEFAULT_WIRE_HEADERS
        self.toxics: dict[str, ToxicEntry] = {}
        self.connections: set[Connection] = set()
        self._ordinals = itertools.count()
        self._server: asyncio.AbstractServer | None = None
        self._bridge_listener: Any = None
        self._bridge_stop: threading.Event | None = None
        self._bound_uri: str | None = None
        self._udp: UdpRelay | None = None
        """A ``udp://`` listen: plain datagrams, one flow per client (faultlab.proxy.udprelay)."""
        self._accepting: set[asyncio.Task[None]] = set()
        """Clients still connecting upstream: owned here, cancelled by ``stop``."""

    # ---- JSON view -------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Toxiproxy's view, plus faultlab's ``framing`` and ``protocol`` when set."""
        view: dict[str, Any] = {
            "name": self.name,
            "listen": toxiproxy_address(self.listen),
            "upstream": toxiproxy_address(self.upstream),
            "enabled": self.enabled,
        }
        if self.framing is not None:
            view["framing"] = self.framing
        if self.protocol is not None:
            view["protocol"] = self.protocol
        if self.tls is not None:
            view["tls"] = self.tls.to_json()
        view["toxics"] = [e.to_json() for e in self.toxic_list()]
        return view

    def held_bytes(self) -> dict[int, int]:
        """Bytes each live connection holds in the proxy (the backpressure bound's witness)."""
        return {conn.ordinal: conn.held_bytes() for conn in self.connections}

    def toxic_list(self) -> list[ToxicEntry]:
        ups = [e for e in self.toxics.values() if e.stream.lower() == "upstream"]
        downs = [e for e in self.toxics.values() if e.stream.lower() == "downstream"]
        return ups + downs

    # ---- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        if self.enabled:
            return
        uri = to_uri(self.listen)
        try:
            scheme = transports.parse_address(uri).scheme
            if scheme in SOCKET_SCHEMES:
                await self._start_socket(uri, scheme)
            elif scheme == "udp":
                options = UdpOptions.from_options(transports.parse_address(uri).options)
                relay = UdpRelay(self, options)
                self.listen = await relay.start(uri)
                self._udp = relay
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, self._start_bridge, uri, loop)
        except ProxyError:
            raise
        except (OSError, ValueError, FaultlabError) as exc:  # ValueError: e.g. IDNA
            raise ListenFailed(f"listen {uri}: {exc}") from exc
        self.enabled = True
        self.journal.record("proxy_enabled", proxy=self.name, listen=self.listen)

    async def _start_socket(self, uri: str, scheme: str) -> None:
        parsed = transports.parse_address(uri)
        loop = asyncio.get_running_loop()
        if scheme == "unix":
            from faultlab.transports.unix import bind_unix

            sock, owner = bind_unix(parsed, socket.SOCK_STREAM)
            self._unix_owner = owner
            self._server = await loop.create_unix_server(self._accept_factory, sock=sock)
            self.listen = uri if "://" in self.listen else self.listen
            return
        host = parsed.host or "0.0.0.0"
        if parsed.port is None:
            raise AddressError(f"{uri}: a port is required")
        wildcard: socket.socket | None = None
        try:
            wildcard = dual_stack_socket(parsed.port) if host == "0.0.0.0" else None
            if wildcard is not None:
                self._server = await loop.create_server(
                    self._accept_factory, sock=wildcard, backlog=1024
                )
            else:
                self._server = await loop.create_server(
                    self._accept_factory, host, parsed.port, reuse_address=True, backlog=1024
                )
        except OSError as exc:
            if wildcard is not None:
                wildcard.close()
            if exc.errno is None:
                raise
            shown = parsed.host or ""
            with contextlib.suppress(OSError, TimeoutError, UnicodeError):
                shown = await go_listen_host(shown) if shown else shown
            raise ListenFailed(go_bind_error(shown, parsed.port, exc.errno)) from exc
        real = self._server.sockets[0].getsockname()
        if wildcard is not None:  # IPv4 and IPv6, shown as the IPv4 wildcard (see docs)
            real = ("0.0.0.0", real[1])
        shown = f"[{real[0]}]:{real[1]}" if ":" in real[0] else f"{real[0]}:{real[1]}"
        self.listen = (
            shown if "://" not in self.listen or scheme == "tcp" else (f"{scheme}://{shown}")
        )

    def _accept_factory(self) -> SocketEndpoint:
        endpoint = SocketEndpoint()
        self._adopt(endpoint)
        return endpoint

    def _adopt(self, client: Endpoint) -> None:
        """Connect ``client`` upstream in a task this proxy owns (``stop`` cancels it)."""
        task = asyncio.get_running_loop().create_task(self._on_client(client))
        self._accepting.add(task)
        task.add_done_callback(self._accepting.discard)

    async def _on_client(self, client: Endpoint) -> None:
        try:
            if isinstance(client, SocketEndpoint):
                try:
                    await client.connected
                except Exception:
                    return
                if self._interceptor is not None:
                    ordinal = next(self._ordinals)
                    ends = await intercept(self, self._interceptor, client, ordinal)
                    if ends is not None:
                        if not self.enabled:
                            ends[0].close()
                            ends[1].close()
                            return
                        self._wire(ordinal, ends[0], ends[1], tls=ends)
                    return
            await self._connect_upstream(client)
        except asyncio.CancelledError:
            client.close()  # stopped while connecting upstream: nobody else holds the client
            raise

    def _start_bridge(self, uri: str, loop: asyncio.AbstractEventLoop) -> None:
        """Listen with the faultlab transport; a thread accepts and hands clients to the loop."""
        listener = transports.listen(uri)
        self._bridge_listener = listener
        self.listen = listener.address
        stop = threading.Event()
        self._bridge_stop = stop

        def accept_loop() -> None:
            while not stop.is_set():
                try:
                    stream = listener.accept(timeout=0.25)
                except TransportError:
                    if stop.is_set():
                        return
                    continue
                endpoint = BridgeEndpoint(stream, loop)
                try:
                    loop.call_soon_threadsafe(self._adopt, endpoint)
                except RuntimeError:  # the loop is closed
                    stream.close()
                    return

        threading.Thread(
            target=accept_loop, daemon=True, name=f"faultlab-accept-{self.name}"
        ).start()

    async def stop(self) -> None:
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
            owner = getattr(self, "_unix_owner", None)
            if owner is not None:
                owner.release()
        if self._udp is not None:
            relay, self._udp = self._udp, None
            await relay.aclose()
        if self._bridge_stop is not None:
            self._bridge_stop.set()
        if self._bridge_listener is not None:
            self._bridge_listener.close()
            self._bridge_listener = None
        pending = list(self._accepting)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=ACCEPT_CANCEL_TIMEOUT)
        for conn in list(self.connections):
            conn.close()
        self.journal.record("proxy_disabled", proxy=self.name)

    # ---- connections -------------------------------------------------------
    async def _connect_upstream(self, client: Endpoint) -> None:
        ordinal = next(self._ordinals)
        uri = to_uri(self.upstream)
        loop = asyncio.get_running_loop()
        try:
            scheme = transports.parse_address(uri).scheme
            if scheme in SOCKET_SCHEMES:
                server: Endpoint = await asyncio.wait_for(self._open_socket(uri), CONNECT_TIMEOUT)
            elif scheme == "udp" and isinstance(client, ClientDatagramEndpoint) and self._udp:
                opening = self._udp.open_upstream(client, uri)
                server = await asyncio.wait_for(opening, CONNECT_TIMEOUT)
            else:
                connecting = loop.run_in_executor(
                    None, lambda: transports.connect(uri, timeout=CONNECT_TIMEOUT)
                )
                try:
                    stream = await asyncio.shield(connecting)
                except asyncio.CancelledError:  # the thread goes on: close what it connects
                    connecting.add_done_callback(_close_result)
                    raise
                server = BridgeEndpoint(stream, loop)
        except (OSError, ValueError, FaultlabError, TimeoutError) as exc:
            self.journal.record(
                "upstream_failed",
                proxy=self.name,
                connection=ordinal,
                upstream=self.upstream,
                error=str(exc) or type(exc).__name__,
            )
            client.close()
            return
        if not self.enabled or (isinstance(client, DatagramEndpoint) and client.closed):
            client.close()
            server.close()
            return
        self._wire(ordinal, client, server)

    def upstream_host(self) -> str:
        """The upstream's host name or address (what an intercepting proxy verifies)."""
        parsed = transports.parse_address(to_uri(self.upstream))
        return parsed.host or "localhost"

    async def open_upstream_socket(self) -> SocketEndpoint:
        return await self._open_socket(to_uri(self.upstream))

    async def _open_socket(self, uri: str) -> SocketEndpoint:
        parsed = transports.parse_address(uri)
        loop = asyncio.get_running_loop()
        if parsed.scheme == "unix":
            from faultlab.transports.unix import unix_sockaddr

            addr = unix_sockaddr(parsed)
            # Connect the socket ourselves: uvloop refuses abstract names ("\0name") as paths.
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, addr)
            except BaseException:
                sock.close()
                raise
            _, endpoint = await loop.create_unix_connection(SocketEndpoint, sock=sock)
        else:
            _, endpoint = await loop.create_connection(
                SocketEndpoint, parsed.host, parsed.port or 0
            )
        return endpoint

    def _wire(
        self,
        ordinal: int,
        client: Endpoint,
        server: Endpoint,
        *,
        tls: tuple[TlsEndpoint, TlsEndpoint] | None = None,
    ) -> None:
        message_based = any(
            isinstance(e, DatagramEndpoint)
            or (isinstance(e, BridgeEndpoint) and e.stream.kind == "message")
            for e in (client, server)
        )
        conn = Connection(self, ordinal, client, server, message_based=message_based, tls=tls)
        framing = None if message_based else self.framing
        if framing == "h2":
            conn.h2 = H2Relay(conn)
            if self.journal_wire:
                conn.exchanges = H2Exchanges(
                    self.journal, self.name, ordinal, protocol=None, headers=self.wire_headers
                )
        elif framing == "http" and self.journal_wire:
            conn.exchanges = HttpExchanges(
                self.journal, self.name, ordinal, protocol=self.protocol, headers=self.wire_headers
            )
        elif framing in RPC_STREAM_FRAMINGS and self.protocol and self.journal_wire:
            conn.exchanges = RpcExchanges(self.journal, self.name, ordinal, protocol=self.protocol)
        if conn.exchanges is not None and tls is not None:
            conn.exchanges.tls = True
        up = Link(conn, "upstream", client, server, framing)
        down = Link(conn, "downstream", server, client, framing)
        conn.links = {"upstream": up, "downstream": down}
        for stream in STREAMS:
            conn.links[stream].set_chain(self._entries(stream))
        # A sink's full buffer pauses the link that writes into it (and so that link's source).
        client.bind(
            up.feed,
            up.feed_eof,
            lambda exc: conn.lost("client", exc),
            down.sink_paused,
            down.sink_resumed,
        )
        server.bind(
            down.feed,
            down.feed_eof,
            lambda exc: conn.lost("server", exc),
            up.sink_paused,
            up.sink_resumed,
        )
        self.connections.add(conn)
        self.journal.record(
            "connection",
            proxy=self.name,
            connection=ordinal,
            client=client.description,
            upstream=self.upstream,
        )
        # What the client sent while the upstream connection was being made is journaled as
        # of when it arrived: a retry's wire_request then shows when the client sent it, not
        # when a busy server accepted the proxy's connection.
        exchanges = conn.exchanges
        arrived = client.pending_since
        if exchanges is not None and arrived is not None:
            exchanges.at = arrived - self.journal.origin
        try:
            client.start()
        finally:
            if exchanges is not None:
                exchanges.at = None
        server.start()

    def _forget(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            up, down = conn.links["upstream"], conn.links["downstream"]
            fields: dict[str, Any] = {  # the byte counts /metrics adds up (metrics.py)
                "listen": toxiproxy_address(self.listen),
                "upstream": toxiproxy_address(self.upstream),
                "bytes_from_client": up.bytes_in,
                "bytes_to_server": up.bytes_out,
                "bytes_from_server": down.bytes_in,
                "bytes_to_client": down.bytes_out,
            }
            if conn.tls is not None:  # what each side sent inside TLS: the refusal's witness
                fields["client_app_bytes"] = conn.tls[0].bytes_in
                fields["server_app_bytes"] = conn.tls[1].bytes_in
            self.journal.record(
                "connection_closed", proxy=self.name, connection=conn.ordinal, **fields
            )

    # ---- toxics ------------------------------------------------------------
    def _entries(self, stream: str) -> list[ToxicEntry]:
        return [e for e in self.toxics.values() if e.stream.lower() == stream]

    def _refresh(self, stream: str) -> None:
        entries = self._entries(stream)
        for conn in list(self.connections):
            conn.links[stream].set_chain(entries)

    def add_toxic(
        self,
        type_name: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        attributes: dict[str, Any] | None = None,
    ) -> ToxicEntry:
        if not isinstance(stream, str) or stream.lower() not in STREAMS:
            raise InvalidProxyRequest("stream was invalid, can be either upstream or downstream")
        name = name or f"{type_name}_{stream}"
        try:
            cls = get_toxic_class(type_name)
        except InvalidToxic as exc:
            raise InvalidProxyRequest(str(exc)) from None
        if name in self.toxics:
            raise ProxyExists("toxic already exists")
        _check_toxicity(toxicity)
        try:
            toxic = cls(**(attributes or {}))
        except InvalidToxic as exc:
            raise InvalidProxyRequest(str(exc)) from None
        self._check_expressible(toxic, stream.lower())
        entry = ToxicEntry(name, toxic, stream, float(toxicity))
        self.toxics[name] = entry
        self.journal.record("toxic_added", proxy=self.name, toxic=name, **entry.to_json())
        self._refresh(stream.lower())
        return entry

    def _check_expressible(self, toxic: Toxic, stream: str) -> None:
        if toxic.needs_tls_intercept and self._interceptor is None:
            raise InvalidProxyRequest(
                f"toxic {toxic.type_name!r} acts on the TLS handshake, and proxy {self.name!r} "
                'does not intercept TLS: create it with "tls": {"mode": "intercept"}'
            )
        kinds = {
            transports.get(transports.parse_address(to_uri(a)).scheme).capabilities.kind
            for a in (self.listen, self.upstream)
        }
        if toxic.needs_frames and self.framing is None and kinds == {"stream"}:
            raise InvalidProxyRequest(
                f"toxic {toxic.type_name!r} acts on whole messages, but proxy {self.name!r} "
                "carries a raw byte stream: set a framing on the proxy (length-prefix, lines, "
                'msgpack-stream, http, h2; for gRPC protocol="grpc") or use a message transport'
            )
        if self.framing == "h2" and toxic.needs_frames and not toxic.h2_aware:
            raise InvalidProxyRequest(
                f"toxic {toxic.type_name!r} acts on whole frames, and on proxy {self.name!r} "
                "(HTTP/2) those are HTTP/2 frames: dropping, repeating or reordering them "
                "would break the connection. Use the HTTP/2-aware toxics (rpc_error, "
                "fail_first, rst_stream, goaway, flow_stall, stream_latency, grpc_message: "
                "it drops, repeats or reorders gRPC messages inside a stream) or a byte toxic "
                "(latency, bandwidth, timeout, reset_peer, ...)"
            )
        reason = toxic.unsupported_reason(
            stream=stream,
            framing=self.framing,
            protocol=self.protocol,
            message_based="message" in kinds,
        )
        if reason is not None:
            raise InvalidProxyRequest(
                f"toxic {toxic.type_name!r} cannot act on proxy {self.name!r}: {reason}"
            )

    def update_toxic(
        self, name: str, *, toxicity: float | None = None, attributes: dict[str, Any] | None = None
    ) -> ToxicEntry:
        entry = self.toxics.get(name)
        if entry is None:
            raise ProxyNotFound("toxic not found")
        if toxicity is not None:
            _check_toxicity(toxicity)
        new = type(entry.toxic)(**entry.toxic.attributes)
        try:
            new.update(attributes or {})
        except InvalidToxic as exc:
            raise InvalidProxyRequest(str(exc)) from None
        self._check_expressible(new, entry.stream.lower())
        entry.toxic = new
        if toxicity is not None:
            entry.toxicity = float(toxicity)
        entry.generation += 1
        self.journal.record("toxic_updated", proxy=self.name, toxic=name, **entry.to_json())
        self._refresh(entry.stream.lower())
        return entry

    def remove_toxic(self, name: str) -> None:
        entry = self.toxics.pop(name, None)
        if entry is None:
            raise ProxyNotFound("toxic not found")
        self.journal.record("toxic_removed", proxy=self.name, toxic=name)
        self._refresh(entry.stream.lower())
        if entry.toxic.closes_on_remove:
            for conn in list(self.connections):
                conn.close()

    def remove_all_toxics(self) -> None:
        for name in list(self.toxics):
            self.remove_toxic(name)


def effective_framing(
    framing: str | None, protocol: str | None, *, tls: bool = False
) -> str | None:
    """gRPC travels in HTTP/2: a ``grpc`` proxy reads it with ``h2`` framing, also when it
    was created with ``framing="grpc"`` (bare length-prefixed messages never carry gRPC
    between a grpcio client and server). Over TLS the records stay opaque (passthrough)."""
    if protocol == "grpc" and framing in (None, "grpc") and not tls:
        return "h2"
    return framing


def _close_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


FLOAT32_OVERFLOW = 3.4028235677973366e38
"""The smallest magnitude a float32 rounds to infinity (the largest float32 plus half an ulp)."""


def _check_toxicity(toxicity: Any) -> None:
    """Any number a Go float32 holds, as Toxiproxy: the link acts when a draw from [0, 1) is
    below it, so 1 or more is always and 0 or less never."""
    if isinstance(toxicity, bool) or not isinstance(toxicity, int | float):
        raise InvalidProxyRequest("toxicity must be a number (1 or more: always; 0 or less: never)")
    if not abs(toxicity) < FLOAT32_OVERFLOW:  # also NaN and the infinities
        raise InvalidProxyRequest(
            f"toxicity must be a number a float32 holds (at most 3.4e38 either way), got {toxicity}"
        )
