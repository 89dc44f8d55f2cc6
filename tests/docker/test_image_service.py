"""A user's own image as the service: ``Lab.pair(faultlab.Image(...), protocol="http")``.

The image is built here, without a registry, from faultlab's local base image (this
host's Python) and a small ``http.server`` app; the lab's default backend is the thread
backend, since an Image always runs in Docker. Its container is reached on its bridge IP
behind the HTTP-framed proxy; process faults act on the container; close, failure and
interpreter exit leave no container and no network behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

import faultlab
from faultlab.lab import Lab
from faultlab.lab.backends import docker as docker_backend
from faultlab.lab.docker_image import build_local, ensure_base_image
from faultlab.lab.pair import Pair
from faultlab.lab.readiness import ReadinessTimeout, ServiceExited
from faultlab.lab.services import InvalidService
from tests.docker.conftest import session_resources

TAG = "faultlab-test-http:latest"
# the client's deadline plus scheduling slack on a shared 2-core machine
DEADLINE_SLACK = 0.75

APP = textwrap.dedent(
    """
    import json, os, signal, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/health":
                body = b"ok"
            elif self.path == "/env":
                body = json.dumps({"GREETING": os.environ.get("GREETING")}).encode()
            else:
                body = ("hello " + self.path).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    # PID 1 has no default SIGTERM action: exit on it, so a graceful stop is quick
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("listening on 8080", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
    """
).encode()


@pytest.fixture(scope="session")
def http_image(docker_ready: None) -> str:
    """``faultlab-test-http:latest``: the local base (no registry) plus the app above."""
    client = docker_backend.docker_client()
    base = ensure_base_image(client)
    dockerfile = (
        f"FROM {base}\nCOPY app.py /srv/app.py\nEXPOSE 8080\n"
        'CMD ["/usr/local/bin/python3", "-u", "/srv/app.py"]\n'
    )
    return build_local(client, TAG, dockerfile, {"app.py": APP})


@pytest.fixture
def lab(http_image: str) -> Iterator[Lab]:
    with Lab() as lab:  # the thread backend by default: an Image runs in Docker anyway
        yield lab


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def image(**overrides: Any) -> faultlab.Image:
    fields: dict[str, Any] = {"port": 8080, "ready": faultlab.ready.http("/health")}
    return faultlab.Image(TAG, **{**fields, **overrides})


def server(pair: Pair) -> docker_backend.ImageServer:
    assert isinstance(pair.server, docker_backend.ImageServer)
    return pair.server


def state(srv: docker_backend.ImageServer) -> tuple[bool, bool, str | None]:
    """(alive, paused, partitioned), read afresh."""
    return srv.alive, srv.paused, srv.partitioned


def wait_for(pair: Pair, kind: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The proxy journals from its own loop thread: wait (bounded) for ``count`` events."""
    deadline = time.monotonic() + timeout
    while True:
        found = pair.events(kinds=[kind])
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def containers(**filters: str) -> list[str]:
    """``docker ps -a -q`` with these filters (the CLI, as a user would check)."""
    args = [arg for key, value in filters.items() for arg in ("--filter", f"{key}={value}")]
    out = subprocess.run(
        ["docker", "ps", "-a", "-q", *args], capture_output=True, text=True, timeout=30, check=True
    )
    return out.stdout.split()


def networks(name: str) -> list[str]:
    out = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", f"name={name}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.split()


def test_an_image_is_served_through_the_proxy(lab: Lab, http: requests.Session) -> None:
    pair = lab.pair(image(env={"GREETING": "hi"}), protocol="http")
    srv = server(pair)
    assert srv.address == f"tcp://{srv.ip}:8080"  # the container's bridge IP, its own port
    assert pair.url.startswith("http://127.0.0.1:")
    assert isinstance(pair.service, faultlab.Image)

    assert http.get(pair.url + "/env", timeout=5).json() == {"GREETING": "hi"}
    response = http.get(pair.url + "/items/1?x=2", timeout=5)
    assert (response.status_code, response.text) == (200, "hello /items/1?x=2")
    assert http.get(pair.server_url + "/health", timeout=5).text == "ok"  # bypassing the proxy

    requests_seen = wait_for(pair, "wire_request", 2)
    responses = wait_for(pair, "wire_response", 2)
    assert [(r["method"], r["target"]) for r in requests_seen] == [
        ("GET", "/env"),
        ("GET", "/items/1?x=2"),
    ]
    assert [r["status"] for r in responses] == [200, 200]
    assert {r["proxy"] for r in requests_seen + responses} == {pair.name}

    labels = docker_backend.docker_client().api.inspect_container(srv.name)["Config"]["Labels"]
    assert labels["faultlab.image"] == TAG
    assert labels[docker_backend.LABEL] == "1"
    with pytest.raises(faultlab.lab.NoClientError):
        _ = pair.client


def test_process_faults_on_an_image(lab: Lab, http: requests.Session) -> None:
    pair = lab.pair(image(stop_timeout=5), protocol="http")
    srv = server(pair)
    address, url = srv.address, pair.url + "/health"

    pair.pause_server()
    assert state(srv) == (True, True, None)
    start = time.monotonic()
    with pytest.raises(requests.Timeout):
        http.get(url, timeout=0.5)
    assert time.monotonic() - start < 0.5 + DEADLINE_SLACK
    pair.resume_server()
    assert state(srv) == (True, False, None)
    assert http.get(url, timeout=5).text == "ok"

    first_pid = srv.pid
    pair.kill_server()
    assert state(srv) == (False, False, None)
    # a dead container has no IP on its bridge: a new connection is not refused but
    # unanswered (no route to host once ARP gives up, ~3 s), so the client's deadline acts
    start = time.monotonic()
    with pytest.raises((requests.ConnectionError, requests.Timeout)):
        http.get(url, timeout=0.5)
    assert time.monotonic() - start < 0.5 + DEADLINE_SLACK
    pair.restart_server()  # returns once the declared check passes again
    assert state(srv) == (True, False, None)
    assert srv.address == address
    assert srv.pid != first_pid
    assert http.get(url, timeout=5).text == "ok"

    pair.stop_server()  # SIGTERM: the app exits at once
    assert state(srv) == (False, False, None)
    pair.clear_faults()  # restarts the stopped container
    assert state(srv) == (True, False, None)
    assert srv.address == address
    assert http.get(url, timeout=5).text == "ok"

    events = pair.events(kinds=["process"])
    assert [e["action"] for e in events] == [
        "pause", "resume", "kill", "restart", "stop", "restart",
    ]  # fmt: skip
    assert {e["target"] for e in events} == {"server"}
    assert {e["container"] for e in events} == {srv.name}
    assert all(e["pid"] for e in events)


@pytest.mark.parametrize("direction", ["both", "inbound"])
def test_a_partitioned_image_times_out_then_heals(
    lab: Lab, http: requests.Session, direction: str
) -> None:
    pair = lab.pair(image(), protocol="http")
    srv = server(pair)
    url = pair.url + "/health"
    assert http.get(url, timeout=5).text == "ok"
    http.close()  # no kept-alive connection across the partition
    srv.partition(direction)  # type: ignore[arg-type]
    assert state(srv)[2] == direction
    start = time.monotonic()
    with pytest.raises((requests.Timeout, requests.ConnectionError)):
        http.get(url, timeout=0.5)
    assert time.monotonic() - start < 0.5 + DEADLINE_SLACK
    pair.clear_faults()  # heals
    assert state(srv)[2] is None
    assert http.get(url, timeout=5).text == "ok"
    actions = [(e["action"], e.get("direction")) for e in pair.events(kinds=["process"])]
    assert actions == [("partition", direction), ("heal", direction)]


def test_an_image_that_does_not_exist(lab: Lab) -> None:
    missing = "faultlab-test-missing:nope"
    with pytest.raises(docker_backend.ImageNotFound) as info:
        lab.pair(faultlab.Image(missing, port=8080), protocol="http")
    assert isinstance(info.value, faultlab.lab.BackendError)
    assert missing in str(info.value)
    assert "build it first" in str(info.value)
    assert session_resources() == []  # no network was left for it


def test_an_image_that_exits_gives_its_code_and_log_tail(lab: Lab) -> None:
    crash = ["/usr/local/bin/python3", "-c", "import sys; print('boom: no config'); sys.exit(3)"]
    start = time.monotonic()
    with pytest.raises(ServiceExited) as info:
        lab.pair(image(command=crash, ready_timeout=30), protocol="http")
    assert time.monotonic() - start < 15  # at once, not after ready_timeout
    message = str(info.value)
    assert "exited with code 3" in message
    assert "boom: no config" in message
    assert TAG in message
    assert session_resources() == []  # the failed container and its network are gone


def test_an_image_never_ready_times_out_and_is_removed(lab: Lab) -> None:
    start = time.monotonic()
    with pytest.raises(ReadinessTimeout) as info:
        lab.pair(image(ready=faultlab.ready.http(status=204), ready_timeout=1), protocol="http")
    assert time.monotonic() - start >= 1  # never before the declared timeout
    assert "status=204" in str(info.value)
    assert "answered 200" in str(info.value)  # the check's last failure
    assert session_resources() == []


def test_close_leaves_no_container_and_no_network(http_image: str) -> None:
    lab = Lab()
    pair = lab.pair(image(), protocol="http")
    name = server(pair).name
    assert containers(name=name) != []
    assert networks(name) != []
    lab.close()
    assert containers(name=name) == []
    assert networks(name) == []
    assert session_resources() == []


def test_interpreter_exit_leaves_no_container(http_image: str) -> None:
    """No close(): the backend's owner removes the container and network at exit."""
    code = textwrap.dedent(
        f"""
        import faultlab
        lab = faultlab.Lab()
        pair = lab.pair(faultlab.Image({TAG!r}, port=8080), protocol="http")
        print(pair.server.name, flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    name = done.stdout.strip()
    assert name.startswith("faultlab-")
    assert containers(name=name) == []
    assert networks(name) == []


def test_an_image_speaking_an_rpc_protocol_keeps_the_faultlab_client(lab: Lab) -> None:
    """Any protocol: faultlab's own image serving jsonrpc, run as a user's Image."""
    own = docker_backend._current().image()
    code = (
        "import threading, faultlab; from faultlab.examples.calc import Calc; "
        "faultlab.serve(Calc(), protocol='jsonrpc', address='tcp://0.0.0.0:7000'); "
        "threading.Event().wait()"
    )
    pair = lab.pair(
        faultlab.Image(own, port=7000, command=["python3", "-c", code]), protocol="jsonrpc"
    )
    assert pair.client.call("add", 2, 3) == 5
    pair.kill_server()
    pair.clear_faults()  # restarted, ready on its declared check, the client renewed
    assert pair.client.call("add", 4, 5) == 9


def test_docker_unavailable_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/faultlab-no-docker.sock")
    monkeypatch.setattr(docker_backend, "_session", None)
    with Lab() as lab, pytest.raises(docker_backend.DockerUnavailable) as info:
        lab.pair(faultlab.Image(TAG, port=8080), protocol="http")
    assert isinstance(info.value, faultlab.lab.BackendError)
    assert "docker" in str(info.value).lower()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image": "", "port": 80}, "image name"),
        ({"image": "x:1", "port": 0}, "1-65535"),
        ({"image": "x:1", "port": "80"}, "int"),
        ({"image": "x:1", "port": 80, "command": "serve --port 80"}, "not a string"),
        ({"image": "x:1", "port": 80, "env": {"A": 1}}, "str to str"),
        ({"image": "x:1", "port": 80, "ready_timeout": 0}, "positive"),
    ],
)
def test_invalid_images(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidService, match=match):
        faultlab.Image(**kwargs)


def test_an_image_is_reached_over_tcp_only() -> None:
    with Lab() as lab, pytest.raises(faultlab.lab.BackendError, match="over tcp"):
        lab.pair(faultlab.Image(TAG, port=8080), protocol="jsonrpc", transport="unix")


def test_image_fields_are_normalised() -> None:
    found = faultlab.Image("x:1", port=80, env={"A": "b"}, command=["a", "b"])
    assert found.command == ("a", "b")
    assert found.check.describe() == "ready.tcp()"
    assert json.loads(json.dumps(found.env)) == {"A": "b"}
    assert str(found) == "x:1 (port 80)"
