"""Fixtures for the Toxiproxy API contract: our ApiServer on a free port, an echo upstream,
and a keep-alive raw HTTP client. Real sockets everywhere; every blocking call has a timeout."""

from __future__ import annotations

import http.client
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from faultlab.proxy.engine import ProxyEngine
from faultlab.proxy.server import ApiServer

TIMEOUT = 5.0


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(TIMEOUT * 2)
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except OSError:
            pass


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"


@pytest.fixture(scope="session")
def echo() -> Iterator[str]:
    """``host:port`` of a TCP echo server (the upstream of every proxy in these tests)."""
    server = EchoServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    yield server.address
    server.shutdown()
    server.server_close()
    thread.join(TIMEOUT)


def echo_through(listen: str, payload: bytes = b"ping", timeout: float = TIMEOUT) -> bytes:
    """Send ``payload`` through a proxy listening on ``listen`` and read it back."""
    host, _, port = listen.rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0", "[::]") else host.strip("[]")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


@pytest.fixture(scope="module")
def engine() -> Iterator[ProxyEngine]:
    with ProxyEngine(seed=20260101) as eng:
        yield eng


@pytest.fixture(scope="module")
def api_server(engine: ProxyEngine) -> Iterator[ApiServer]:
    server = ApiServer(engine, host="127.0.0.1", port=0).start()
    yield server
    server.close()


@pytest.fixture
def api_url(api_server: ApiServer, engine: ProxyEngine) -> Iterator[str]:
    """The API URL; every proxy is deleted after the test."""
    yield api_server.url
    names = list(engine.run(lambda: list(engine.proxies)))
    for name in names:
        engine.delete(name)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class RawClient:
    """One keep-alive connection; ``request`` sends bytes exactly as given."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").rpartition(":")
        self.host, self.port = host, int(port)
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        if body is not None and not isinstance(body, bytes | str):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        hdrs = {"User-Agent": "contract-tests"}
        hdrs.update(headers or {})
        try:
            self.conn.request(method, path, body, hdrs)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
            self.conn.request(method, path, body, hdrs)
            response = self.conn.getresponse()
        data = response.read()
        if response.will_close:
            self.conn.close()
        return Reply(response.status, response.headers, data)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def raw(api_url: str) -> Iterator[RawClient]:
    client = RawClient(api_url)
    yield client
    client.close()


def raw_exchange(url: str, data: bytes, timeout: float = TIMEOUT) -> bytes:
    """Send raw bytes on a fresh connection, half-close, return all that comes back."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out
