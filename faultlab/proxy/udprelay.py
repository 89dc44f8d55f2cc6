"""A ``udp://`` proxy's listener: plain datagrams, one flow per client address.

Why: DNS resolvers, statsd and game clients send raw datagrams and expect raw
datagrams back. Each client address gets a *flow*, a
:class:`~faultlab.proxy.proxy.Connection` whose two ends are datagram endpoints
(:mod:`faultlab.proxy.dgram_endpoint`): replies leave through the listening socket,
and the flow has an upstream socket of its own (NAT-style), so the server sees
one source port per client and its replies find their way back. The link and its
toxics run unchanged, one datagram per frame.

A flow ends after ``idle_timeout`` seconds without a datagram either way (while its
toxics hold nothing), when the flow bound evicts it (the idlest goes first), when
its upstream refuses a datagram, or when the proxy stops; each end is journaled
(``udp_flow_closed``, then ``connection_closed``).

faultlab's own ``udp://`` transport opens a session with a 7-byte ``HELLO``
(:mod:`faultlab.transports.udp`). A new client whose first datagram is exactly
that gets the session it asks for (the transport's per-client socket, relayed
message by message as before), unless the listen says ``?session=off``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faultlab import transports
from faultlab.errors import AddressError
from faultlab.proxy.dgram_endpoint import (
    ClientDatagramEndpoint,
    DatagramEndpoint,
    QueueBound,
    UpstreamDatagramEndpoint,
)
from faultlab.proxy.endpoints import BridgeEndpoint
from faultlab.transports._dgram import ACK, BYE, HELLO, control
from faultlab.transports._sockets import translate_oserror
from faultlab.transports.tcp import format_host_port
from faultlab.transports.udp import big_buffers, datagram_stream

if TYPE_CHECKING:
    from faultlab.proxy.proxy import Connection, Proxy

__all__ = ["UdpOptions", "UdpRelay", "options_problem"]

SESSION_HELLO = control(HELLO)
"""The first datagram of a faultlab ``udp://`` session (type HELLO, zeros)."""
SESSION_BYE = control(BYE)
"""The last one: from a client whose session is over, it opens no flow."""
SESSION_GRACE = 10.0
"""Seconds after a session ends during which its client's stray datagrams (a late BYE, a
fragment) are ignored instead of opening a plain flow, as the udp transport ignores them."""
GRACE_ENTRIES = 4096
UPSTREAM_BUFFER = 1 << 20
"""Receive buffer asked for each flow's upstream socket (the kernel may cap it)."""
CLOSE_WAIT = 1.0
"""How long stopping waits for the listening socket to be closed (so it can rebind)."""
HELD_RECHECK = 1.0
"""An idle flow whose toxics still hold datagrams is looked at again after this long."""

_DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")
_INTEGER = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class UdpOptions:
    """A plain UDP proxy's bounds, from its listen address' query
    (``udp://127.0.0.1:5353?idle_timeout=5&max_flows=64``)."""

    idle_timeout: float = 60.0
    """Seconds without a datagram (either way) after which a flow ends."""
    max_flows: int = 1024
    """Live flows at most; a new client beyond it evicts the idlest flow."""
    queue: int = 64
    """Datagrams each end of a flow keeps while it may not deliver them (then drops)."""
    queue_bytes: int = 256 << 10
    """Bytes each end keeps likewise (at least one datagram of the largest size)."""
    session: bool = True
    """``session=auto`` (default): a faultlab ``HELLO`` opens a session; ``off``: never."""

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> UdpOptions:
        """The bounds in ``options``; :class:`AddressError` names a bad one."""
        problem = options_problem(options)
        if problem is not None:
            raise AddressError(problem)
        defaults = cls()
        return cls(
            idle_timeout=float(options.get("idle_timeout", defaults.idle_timeout)),
            max_flows=int(options.get("max_flows", defaults.max_flows)),
            queue=int(options.get("queue", defaults.queue)),
            queue_bytes=int(options.get("queue_bytes", defaults.queue_bytes)),
            session=options.get("session", "auto") == "auto",
        )


_LIMITS: dict[str, tuple[re.Pattern[str], float, float, str]] = {
    "idle_timeout": (_DECIMAL, 0.001, 86400, "seconds"),
    "max_flows": (_INTEGER, 1, 65536, "flows"),
    "queue": (_INTEGER, 1, 65536, "datagrams"),
    "queue_bytes": (_INTEGER, 65536, 1 << 26, "bytes"),
}


def options_problem(options: Mapping[str, str]) -> str | None:
    """Why the query of a ``udp://`` listen address cannot be used, or None."""
    for key, value in options.items():
        if key == "session":
            if value not in ("auto", "off"):
                return f"udp option session must be 'auto' or 'off', got {value!r}"
            continue
        limit = _LIMITS.get(key)
        if limit is None:
            known = ", ".join([*_LIMITS, "session"])
            return f"unknown udp option {key[:40]!r}; known: {known}"
        pattern, low, high, unit = limit
        if not pattern.fullmatch(value) or not low <= float(value) <= high:
            return (
                f"udp option {key} must be a number from {low:g} to {high:g} ({unit}), "
                f"got {value[:40]!r}"
            )
    return None


@dataclass(eq=False)
class _Flow:
    """One client address: its ends, its idle clock, its connection once wired."""

    client: ClientDatagramEndpoint
    last: float
    timer: asyncio.TimerHandle | None = None
    server: UpstreamDatagramEndpoint | None = None
    conn: Connection | None = None
    reason: str | None = None


class _Listening(asyncio.DatagramProtocol):
    """The listening socket's protocol: every datagram goes to the relay."""

    def __init__(self, relay: UdpRelay) -> None:
        self.relay = relay
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.relay.datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        """An unconnected socket hears no ICMP errors of its peers: nothing to do."""

    def pause_writing(self) -> None:
        for flow in list(self.relay.flows.values()):
            flow.client.listening_paused()

    def resume_writing(self) -> None:
        for flow in list(self.relay.flows.values()):
            flow.client.listening_resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class UdpRelay:
    """Owns a ``udp://`` proxy's listening socket and its flows (on the engine's loop)."""

    def __init__(self, proxy: Proxy, options: UdpOptions) -> None:
        self.proxy = proxy
        self.options = options
        self.loop = asyncio.get_running_loop()
        self.flows: dict[Any, _Flow] = {}
        self.bound = QueueBound(options.queue, options.queue_bytes)
        self.family: int = socket.AF_INET
        self._local: Any = None
        self._transport: asyncio.DatagramTransport | None = None
        self._sock: socket.socket | None = None
        self._protocol: _Listening | None = None
        self._sessions: set[Any] = set()
        """Clients with a faultlab session (their own connected socket, on the same port)."""
        self._ended: dict[Any, float] = {}
        """Clients whose session ended, and when (see SESSION_GRACE)."""

    # ---- lifecycle -----------------------------------------------------------
    async def start(self, uri: str) -> str:
        """Bind and start reading; returns the address to show (port 0 resolved)."""
        parsed = transports.parse_address(uri)
        if parsed.port is None:
            raise AddressError(f"{uri}: a port is required")
        family, sockaddr = await self._resolve(parsed.host or "0.0.0.0", parsed.port, True)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if self.options.session:  # the session's per-client sockets share the port
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            big_buffers(sock)
            sock.bind(sockaddr)
            sock.setblocking(False)
            self._local = sock.getsockname()
            shown = format_host_port("udp", self._local[0], self._local[1])
            transport, protocol = await self.loop.create_datagram_endpoint(
                lambda: _Listening(self), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        self.family = family
        self._sock = sock
        self._transport = transport
        self._protocol = protocol
        query = uri.partition("?")[2]
        return f"{shown}?{query}" if query else shown

    async def aclose(self) -> None:
        """Close every flow, then the listening socket (waiting, so it can rebind)."""
        for flow in list(self.flows.values()):
            self._close_flow(flow, "stopped")
        transport, protocol = self._transport, self._protocol
        self._transport = self._protocol = None
        if transport is not None and protocol is not None:
            transport.close()
            try:
                await asyncio.wait_for(asyncio.shield(protocol.closed), CLOSE_WAIT)
            except TimeoutError:
                pass

    async def _resolve(self, host: str, port: int, passive: bool) -> tuple[int, Any]:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            infos = await self.loop.getaddrinfo(
                host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE if passive else 0
            )
            if not infos:
                raise AddressError(f"{host!r} resolves to no address") from None
            return infos[0][0], infos[0][4]
        family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return family, (host, port)

    # ---- datagrams from clients ------------------------------------------------
    def datagram(self, data: bytes, addr: Any) -> None:
        flow = self.flows.get(addr)
        if flow is None:
            if self._transport is None:
                return  # closing: no new flow
            if self.options.session and not self._plain(data, addr):
                return
            flow = self._new_flow(addr)
        flow.client.arrived(data)

    def _plain(self, data: bytes, addr: Any) -> bool:
        """Whether a new client's datagram opens a plain flow; if not, it was handled here."""
        if addr in self._sessions:
            return False  # a repeated HELLO, before the session's own socket took over
        ended = self._ended.pop(addr, None)
        if data == SESSION_HELLO:
            self._open_session(addr)
            return False
        if ended is not None and self.loop.time() - ended < SESSION_GRACE:
            self._ended[addr] = ended
            return False  # what a finished session's client still sends: ignored
        return data != SESSION_BYE

    def _open_session(self, addr: Any) -> None:
        """A faultlab client: the udp transport's per-client socket (bound to the listening
        port with SO_REUSEPORT, connected to the client), relayed message by message."""
        conn = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            big_buffers(conn)
            conn.bind(self._local)
            conn.connect(addr)
            conn.send(control(ACK))
        except OSError as exc:
            conn.close()
            error = translate_oserror(exc, "accept")
            self.proxy.journal.record(
                "udp_session", proxy=self.proxy.name, client=str(addr), error=str(error)
            )
            return
        self._sessions.add(addr)
        stream = datagram_stream(conn, on_close=lambda: self._call(self._session_ended, addr))
        self.proxy.journal.record("udp_session", proxy=self.proxy.name, client=str(addr))
        self.proxy._adopt(BridgeEndpoint(stream, self.loop))

    def _call(self, fn: Any, *args: Any) -> None:
        """From a bridge thread to the loop (nothing to do once the loop is closed)."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass

    def _session_ended(self, addr: Any) -> None:
        self._sessions.discard(addr)
        self._ended[addr] = self.loop.time()
        while len(self._ended) > GRACE_ENTRIES:
            del self._ended[next(iter(self._ended))]

    def _new_flow(self, addr: Any) -> _Flow:
        if len(self.flows) >= self.options.max_flows:
            idlest = min(self.flows.values(), key=lambda f: f.last)
            self._close_flow(idlest, "evicted")
        assert self._transport is not None
        assert self._sock is not None

        def touch() -> None:
            flow.last = self.loop.time()

        client = ClientDatagramEndpoint(
            self._transport,
            self._sock,
            addr,
            self.bound,
            self.family,
            on_activity=touch,
            on_overflow=self._overflow,
            on_close=self._forget,
        )
        flow = _Flow(client, self.loop.time())
        self.flows[addr] = flow
        flow.timer = self.loop.call_later(self.options.idle_timeout, self._check_idle, flow)
        self.proxy._adopt(client)
        return flow

    # ---- the upstream side -----------------------------------------------------
    async def open_upstream(self, client: ClientDatagramEndpoint, uri: str) -> DatagramEndpoint:
        """This flow's own socket, connected to the upstream (the server sees its port)."""
        flow = self.flows.get(client.addr)
        if flow is None or flow.client is not client:
            raise ConnectionAbortedError("the flow ended before its upstream was opened")
        parsed = transports.parse_address(uri)
        if parsed.port is None or not parsed.host:
            raise AddressError(f"{uri!r} needs a host and a port")
        family, sockaddr = await self._resolve(parsed.host, parsed.port, False)
        server = UpstreamDatagramEndpoint(
            self.bound, family, on_activity=client.on_activity, on_overflow=self._overflow
        )
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UPSTREAM_BUFFER)
            except OSError:
                pass
            sock.connect(sockaddr)  # UDP: nothing is sent, only the peer is fixed
            server.sock = sock
            await self.loop.create_datagram_endpoint(lambda: server, sock=sock)
        except BaseException:
            sock.close()
            raise
        flow.server = server
        return server

    # ---- flow bookkeeping --------------------------------------------------------
    def _conn(self, flow: _Flow) -> Connection | None:
        """The flow's connection once wired (found once, then kept)."""
        if flow.conn is None and flow.client.started:
            for conn in self.proxy.connections:
                if conn.client is flow.client:
                    flow.conn = conn
                    break
        return flow.conn

    def _check_idle(self, flow: _Flow) -> None:
        flow.timer = None
        if flow.client.closed:
            return
        timeout = self.options.idle_timeout
        remaining = flow.last + timeout - self.loop.time()
        conn = self._conn(flow)
        if remaining > 0:
            delay = remaining
        elif conn is not None and conn.held_bytes() > 0:
            delay = min(timeout, HELD_RECHECK)  # its toxics still hold datagrams
        else:
            self._close_flow(flow, "idle")
            return
        flow.timer = self.loop.call_later(delay, self._check_idle, flow)

    def _close_flow(self, flow: _Flow, reason: str) -> None:
        flow.reason = flow.reason or reason
        conn = self._conn(flow)
        if conn is not None:
            conn.close()
        else:
            flow.client.close()
            if flow.server is not None:
                flow.server.close()

    def _forget(self, client: ClientDatagramEndpoint) -> None:
        """The client end closed (every path): journal the flow's end, drop its state."""
        flow = self.flows.get(client.addr)
        if flow is None or flow.client is not client:
            return
        del self.flows[client.addr]
        if flow.timer is not None:
            flow.timer.cancel()
            flow.timer = None
        server = flow.server
        reason = flow.reason or (
            "upstream_refused" if server is not None and server.refused else "closed"
        )
        conn = self._conn(flow)
        self.proxy.journal.record(
            "udp_flow_closed",
            proxy=self.proxy.name,
            connection=None if conn is None else conn.ordinal,
            client=client.description,
            reason=reason,
            idle=round(self.loop.time() - flow.last, 6),
            datagrams_in=client.received,
            datagrams_out=0 if server is None else server.received,
            dropped_client=client.dropped,
            dropped_server=0 if server is None else server.dropped,
            oversize=client.oversize + (0 if server is None else server.oversize),
        )

    def _overflow(self, endpoint: DatagramEndpoint) -> None:
        """An end started dropping datagrams (its queue is full): journal it once."""
        flow: _Flow | None = None
        if isinstance(endpoint, ClientDatagramEndpoint):
            flow = self.flows.get(endpoint.addr)
        else:
            flow = next((f for f in self.flows.values() if f.server is endpoint), None)
        conn = None if flow is None else self._conn(flow)
        self.proxy.journal.record(
            "udp_overflow",
            proxy=self.proxy.name,
            connection=None if conn is None else conn.ordinal,
            side=endpoint.side,
            client=None if flow is None else flow.client.description,
            dropped=endpoint.dropped,
            queue=self.bound.datagrams,
            queue_bytes=self.bound.bytes,
        )
