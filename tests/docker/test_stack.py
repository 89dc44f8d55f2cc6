"""The compose stack: calc behind a standalone ``faultlab proxy``, driven by its Toxiproxy API.

In ``docker/compose.yaml`` the suite container runs this module with ``FAULTLAB_STACK_API``
(the proxy's API URL), ``FAULTLAB_STACK_UPSTREAM`` (calc as the proxy sees it) and
``FAULTLAB_STACK_HOST`` (where proxied ports answer). Without them, and with an engine,
the same stack is started here with the Docker backend: a calc container and a proxy
container on one bridge network.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from faultlab.errors import BrokenResourceError, EndOfStream, TransportTimeout
from faultlab.journal import Journal
from faultlab.lab.backends.base import ServerSpec
from faultlab.lab.pair import DEFAULT_SERVICE
from faultlab.rpc.client import Client

_ports = itertools.count(int(os.environ.get("FAULTLAB_STACK_FIRST_PORT", "9000")))


@dataclass(frozen=True)
class Stack:
    api: str
    upstream: str
    host: str

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.api}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def proxy(self, name: str) -> str:
        """Create a proxy to calc; return the client address."""
        port = next(_ports)
        self.request(
            "POST",
            "/proxies",
            {"name": name, "listen": f"0.0.0.0:{port}", "upstream": self.upstream},
        )
        return f"tcp://{self.host}:{port}"


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """The compose stack from the environment, or one started here (shared by the module)."""
    api = os.environ.get("FAULTLAB_STACK_API")
    if api:
        host = os.environ.get("FAULTLAB_STACK_HOST") or urlsplit(api).hostname or "127.0.0.1"
        yield Stack(api, os.environ.get("FAULTLAB_STACK_UPSTREAM", "calc:7000"), host)
        return
    pytest.importorskip("faultlab.cli.proxy_cmd", reason="`faultlab proxy` is not built yet")
    request.getfixturevalue("docker_ready")
    from faultlab.lab.backends.docker import CONTAINER_PORT, DockerServer

    spec = ServerSpec(DEFAULT_SERVICE, "binrpc", "tcp://127.0.0.1:0")
    server = DockerServer(spec, Journal())
    try:
        proxy = server.start_proxy()
        yield Stack(proxy.api_url, f"{server.ip}:{CONTAINER_PORT}", proxy.host)
    finally:
        server.close()


@pytest.fixture
def name(stack: Stack, request: pytest.FixtureRequest) -> Iterator[str]:
    """A proxy name for this test; the proxy is deleted afterwards (the stack is shared)."""
    proxy_name = f"calc_{request.node.name.replace('[', '_').rstrip(']')}"
    yield proxy_name
    try:
        stack.request("DELETE", f"/proxies/{proxy_name}")
    except OSError:
        pass


def call(address: str, timeout: float = 5.0) -> Any:
    with Client(address, "binrpc", timeout=timeout) as client:
        return client.call("add", 2, 3)


def test_version_answers(stack: Stack) -> None:
    req = urllib.request.Request(f"{stack.api}/version")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def test_calls_work_through_the_standalone_proxy(stack: Stack, name: str) -> None:
    address = stack.proxy(name)
    assert call(address) == 5
    listed = stack.request("GET", "/proxies")
    assert name in listed


def test_latency_toxic_delays_replies(stack: Stack, name: str) -> None:
    address = stack.proxy(name)
    stack.request(
        "POST",
        f"/proxies/{name}/toxics",
        {"name": "slow", "type": "latency", "stream": "downstream", "attributes": {"latency": 300}},
    )
    start = time.monotonic()
    assert call(address) == 5
    assert time.monotonic() - start >= 0.3


def test_timeout_toxic_times_out_then_heals(stack: Stack, name: str) -> None:
    address = stack.proxy(name)
    stack.request(
        "POST",
        f"/proxies/{name}/toxics",
        {"name": "hole", "type": "timeout", "attributes": {"timeout": 0}},
    )
    with pytest.raises((TransportTimeout, BrokenResourceError, EndOfStream)):
        call(address, timeout=1.0)
    stack.request("DELETE", f"/proxies/{name}/toxics/hole")
    assert call(address) == 5
