"""The Toxiproxy-compatible HTTP/1.1 server: h11 on the engine's loop, :mod:`api` behind it.

Only transport lives here (keep-alive, Content-Length, timeouts, bounded
requests); every API rule is in :mod:`faultlab.proxy.api`. Timeouts follow
``toxiproxy-server``: 15 s to read a request, 60 s idle keep-alive, 25 s per
handler (then 503, while the handler finishes in the background so proxy state
is never left half-changed), 30 s to write a response.

The read timeout runs from a request's first byte, whichever phase then stalls
(request line and headers, body, or a pipelined request that arrived with the
previous one), and ends in a 408 with a JSON error body; a connection that
sends nothing is closed quietly after the idle timeout.

``GET /metrics`` exists only when ``proxy_metrics`` or ``runtime_metrics`` is on, as
``toxiproxy-server`` registers it only behind ``-proxy-metrics``/``-runtime-metrics``
(:mod:`faultlab.proxy.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import socket
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import h11

from faultlab.errors import FaultlabError
from faultlab.proxy import api
from faultlab.proxy.engine import ProxyEngine
from faultlab.proxy.metrics import Metrics, compress_if_accepted
from faultlab.proxy.proxy import dual_stack_socket, go_listen_host

__all__ = ["ApiServer"]

log = logging.getLogger("faultlab.proxy.server")

READ_TIMEOUT = 15.0
IDLE_TIMEOUT = 60.0
HANDLER_TIMEOUT = 25.0
WRITE_TIMEOUT = 30.0
MAX_HEADER_BYTES = 64 * 1024
_TIMEOUT_BODY = b"<html><head><title>Timeout</title></head><body><h1>Timeout</h1></body></html>"


class _Timeout(Exception):
    """The client took too long: idle (close quietly) or mid-request (408)."""

    def __init__(self, mid_request: bool) -> None:
        super().__init__()
        self.mid_request = mid_request


def load_catalogues() -> None:
    """Import every built-in toxic, transport, protocol and framer now. Each catalogue
    loads on its first lookup, and the first ``POST /proxies`` and the first toxic would
    otherwise pay for it (40-60 ms here; a client test that times its first call sees it)."""
    from faultlab.codecs.framing import framer_names
    from faultlab.rpc.base import protocol_names
    from faultlab.toxics.base import toxic_types
    from faultlab.transports import all_transports

    toxic_types()
    all_transports()
    protocol_names()
    framer_names()


class ApiServer:
    """Serve the Toxiproxy API for one :class:`ProxyEngine` (``port=0``: any free port).

    ``start()``/``close()`` are synchronous (they cross into the engine loop);
    ``start_async()``/``close_async()`` are for code already on that loop.
    ``proxy_metrics``/``runtime_metrics`` turn on ``GET /metrics`` (Toxiproxy's
    ``-proxy-metrics``/``-runtime-metrics``); its counters count from ``start()`` on.
    """

    def __init__(
        self,
        engine: ProxyEngine,
        host: str = "127.0.0.1",
        port: int = 8474,
        *,
        extensions: bool = True,
        max_body: int = api.MAX_BODY,
        read_timeout: float = READ_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        handler_timeout: float = HANDLER_TIMEOUT,
        proxy_metrics: bool = False,
        runtime_metrics: bool = False,
    ) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self.extensions = extensions
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.handler_timeout = handler_timeout
        self.metrics: Metrics | None = None
        if proxy_metrics or runtime_metrics:
            self.metrics = Metrics(engine, proxy=proxy_metrics, runtime=runtime_metrics)
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[Any]] = set()

    # ---- lifecycle ----------------------------------------------------------
    @property
    def url(self) -> str:
        """Where a client on this machine reaches the API (wildcards become loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> ApiServer:
        load_catalogues()  # before listening, not on the first request (off the loop)
        self.engine.call(self.start_async)
        return self

    async def start_async(self) -> None:
        if self._server is not None:
            return
        if self.metrics is not None:
            self.metrics.attach()
        host = await go_listen_host(self.host)
        wildcard = dual_stack_socket(self.port) if host == "0.0.0.0" else None  # as Go's
        if wildcard is not None:
            try:
                self._server = await asyncio.start_server(self._serve, sock=wildcard, backlog=256)
            except BaseException:
                wildcard.close()
                raise
        else:
            self._server = await asyncio.start_server(
                self._serve, host, self.port, reuse_address=True, backlog=256
            )
        sockname = self._server.sockets[0].getsockname()
        self.host, self.port = host, int(sockname[1])
        log.info("Starting Toxiproxy-compatible HTTP server at %s", self.url)
        self.engine.journal.record("api_started", url=self.url)

    def close(self) -> None:
        """Stop listening and drop open API connections (proxies keep running)."""
        if self._server is None:
            return
        with contextlib.suppress(FaultlabError):
            self.engine.call(self.close_async, timeout=10)

    async def close_async(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        if self.metrics is not None:
            self.metrics.detach()
        server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- config file ---------------------------------------------------------
    def load_config(self, path: str | Path) -> bool:
        """Populate from a JSON file (``-config``); like Toxiproxy, failures are logged and
        startup goes on. True if every entry was applied."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            log.error("Error reading config file %s: %s", path, exc)
            return False
        response = self.engine.call(lambda: api.populate(self.engine, data))
        payload = _loads(response.body)
        proxies = payload.get("proxies") or []
        if response.status >= 300:
            log.error(
                "Failed to populate proxies from file %s: %s (%d applied)",
                path,
                payload.get("error", f"HTTP {response.status}"),
                len(proxies),
            )
            return False
        log.info("Populated %d proxies from file %s", len(proxies), path)
        return True

    # ---- one connection --------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        try:
            while await self._one_request(conn, reader, writer):
                if conn.our_state is h11.MUST_CLOSE:
                    break
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    break
        except (ConnectionError, asyncio.CancelledError, TimeoutError, OSError):
            pass
        except Exception:
            log.exception("API connection failed")
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _next_event(
        self, conn: h11.Connection, reader: asyncio.StreamReader, deadline: list[float]
    ) -> Any:
        """The next h11 event, reading as needed: idle wait first, then the read deadline."""
        loop = asyncio.get_running_loop()
        while True:
            event = conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            if deadline:
                timeout = deadline[0] - loop.time()
                if timeout <= 0:
                    raise _Timeout(True)
            else:
                timeout = self.idle_timeout
            try:
                async with asyncio.timeout(timeout):  # no task per read, unlike wait_for
                    data = await reader.read(65536)
            except TimeoutError:
                raise _Timeout(bool(deadline)) from None
            if data and not deadline:
                deadline.append(loop.time() + self.read_timeout)
            conn.receive_data(data)

    def _start_clock(self, conn: h11.Connection, deadline: list[float]) -> None:
        """A pipelined request already buffered has begun: its read timeout runs now."""
        if conn.trailing_data[0] and not deadline:
            deadline.append(asyncio.get_running_loop().time() + self.read_timeout)

    async def _one_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Read one request, answer it; False when the connection must end."""
        deadline: list[float] = []
        self._start_clock(conn, deadline)
        try:
            event = await self._next_event(conn, reader, deadline)
            if isinstance(event, h11.ConnectionClosed):
                return False
            assert isinstance(event, h11.Request)
            length = _content_length(event.headers)
            if length is not None and length > self.max_body:
                await self._send(conn, writer, self._too_large(), close=True)
                await _linger(reader, writer)
                return False
            if conn.they_are_waiting_for_100_continue:
                writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            body = bytearray()
            while True:
                part = await self._next_event(conn, reader, deadline)
                if isinstance(part, h11.Data):
                    body += part.data
                    if len(body) > self.max_body:
                        await self._send(conn, writer, self._too_large(), close=True)
                        await _linger(reader, writer)
                        return False
                elif isinstance(part, h11.EndOfMessage):
                    break
                else:  # ConnectionClosed mid-body
                    return False
        except _Timeout as exc:
            # IDLE too: h11 lets a server answer a request whose head has not all arrived
            if exc.mid_request and conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                message = f"request timeout: not read within {self.read_timeout:g} s"
                with contextlib.suppress(Exception):
                    await self._send(conn, writer, api.error_response(408, message), close=True)
            return False
        except h11.RemoteProtocolError as exc:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                status = exc.error_status_hint
                message = f"{http.HTTPStatus(status).phrase.lower()}: {exc}"
                with contextlib.suppress(Exception):
                    await self._send(conn, writer, api.error_response(status, message), True)
            return False
        method = event.method.decode("latin-1")
        target = event.target.decode("latin-1")
        response = await self._dispatch(method, target, bytes(body), event.headers)
        if self.metrics is not None:  # promhttp gzips /metrics for a client that accepts it
            accept = next((v for k, v in event.headers if k == b"accept-encoding"), b"")
            response = compress_if_accepted(response, accept.decode("latin-1"))
        await self._send(conn, writer, response, close=False, head=method == "HEAD")
        return True

    def _too_large(self) -> api.ApiResponse:
        return api.error_response(413, f"request body too large: limit is {self.max_body} bytes")

    async def _dispatch(
        self, method: str, target: str, body: bytes, headers: Any
    ) -> api.ApiResponse:
        try:
            async with asyncio.timeout(self.handler_timeout):
                return await api.handle(
                    self.engine,
                    method,
                    target,
                    body,
                    list(headers),
                    extensions=self.extensions,
                    metrics=self.metrics.handle if self.metrics is not None else None,
                )
        except TimeoutError:
            pass
        except Exception as exc:  # a bug: still an answer, and the connection lives on
            log.exception("API %s %s failed", method, target)
            return api.error_response(500, f"internal error: {type(exc).__name__}: {exc}")
        # like Go's TimeoutHandler: the client gets 503, while api.handle lets a handler
        # that binds or closes sockets finish in the background
        log.warning("API %s %s took over %g s", method, target, self.handler_timeout)
        return api.ApiResponse(503, "text/html; charset=utf-8", _TIMEOUT_BODY)

    async def _send(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        response: api.ApiResponse,
        close: bool,
        head: bool = False,
    ) -> None:
        headers = [("Date", _http_date())]
        if response.content_type is not None:
            headers.append(("Content-Type", response.content_type))
        if response.status != 204:
            headers.append(("Content-Length", str(len(response.body))))
        headers.extend(response.headers)
        if close:
            headers.append(("Connection", "close"))
        reason = http.HTTPStatus(response.status).phrase if response.status < 600 else ""
        data = conn.send(
            h11.Response(status_code=response.status, headers=headers, reason=reason.encode())
        )
        if response.body and not head and response.status != 204:
            data += conn.send(h11.Data(data=response.body))
        data += conn.send(h11.EndOfMessage())
        writer.write(data)
        async with asyncio.timeout(WRITE_TIMEOUT):
            await writer.drain()


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    """The Date header, formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After refusing a body: half-close, then swallow what the client still sends (1 s,
    16 MiB at most), so closing with unread data does not reset the 413 away."""
    with contextlib.suppress(Exception):
        if writer.can_write_eof():
            writer.write_eof()
        loop = asyncio.get_running_loop()
        end, budget = loop.time() + 1.0, 16 << 20
        while budget > 0 and (left := end - loop.time()) > 0:
            chunk = await asyncio.wait_for(reader.read(65536), left)
            if not chunk:
                break
            budget -= len(chunk)


def _content_length(headers: Any) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)
    return None


def _loads(body: bytes) -> dict[str, Any]:
    import json

    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
