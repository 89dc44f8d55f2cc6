"""``toxiproxy-cli`` (Toxiproxy's own CLI, built from its source) driven against
``faultlab proxy`` with the calls upstream's end-to-end script (``scripts/test-e2e``) makes:
create, list, toggle, inspect, then add, update, inspect and delete each toxic with the
script's attributes, with HTTP through the proxy in between. With a real
``toxiproxy-server`` here, the CLI must print exactly the same against both (the tables it
prints are built from every field of the API's JSON); without one, every call must succeed.

Needs what :mod:`tests.contract.toxiproxy_source` needs, plus the CLI's Go libraries
(Debian's golang-github-urfave-cli-v2-dev and golang-golang-x-term-dev).
"""

from __future__ import annotations

import functools
import http.server
import re
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultlab.proxy.reference import RealToxiproxy, find_toxiproxy, free_port
from tests.contract.toxiproxy_source import extract, go_env, missing

pytestmark = pytest.mark.timeout(600)

FAULTLAB_PROXY = [sys.executable, "-m", "faultlab", "proxy"]
CLI_LIBRARIES = ("github.com/urfave/cli/v2", "golang.org/x/term")
PAGE = b"faultlab " * 200


def _script(listen: str, upstream: str) -> list[list[str]]:
    """scripts/test-e2e's calls, in order (``GET`` is an HTTP request through the proxy)."""
    tox = ["toxic"]
    name = "shopify_http"
    return [
        ["create", "-l", listen, "-u", upstream, name],
        ["list"],
        ["toggle", name],
        ["inspect", name],
        ["toggle", name],
        ["GET"],
        [*tox, "add", "--downstream", "--type=latency", "--toxicName=latency_downstream",
         "--attribute=latency=1000", "--attribute=jitter=50", "--toxicity=0.99", name],
        ["inspect", name],
        [*tox, "update", "--toxicName=latency_downstream", "--attribute=jitter=20",
         "--toxicity=0.7", name],
        ["inspect", name],
        [*tox, "delete", "--toxicName=latency_downstream", name],
        [*tox, "add", "--upstream", "--type=latency", "--toxicName=latency_upstream",
         "--attribute=latency=1000", "--attribute=jitter=50", "--toxicity=1", name],
        ["inspect", name],
        [*tox, "update", "--toxicName=latency_upstream", "--attribute=jitter=20",
         "--toxicity=0.3", name],
        [*tox, "delete", "--toxicName=latency_upstream", name],
        [*tox, "add", "--type=bandwidth", "--toxicName=bandwidth_kb_per_second",
         "--attribute=rate=1", "--toxicity=0.5", name],
        [*tox, "update", "--toxicName=bandwidth_kb_per_second", "--attribute=rate=10",
         "--toxicity=1.0", name],
        ["inspect", name],
        [*tox, "delete", "--toxicName=bandwidth_kb_per_second", name],
        [*tox, "add", "--type=timeout", "--toxicName=timeout_ms", "--attribute=timeout=10",
         "--toxicity=0.1", name],
        [*tox, "delete", "--toxicName=timeout_ms", name],
        [*tox, "add", "--type=slicer", "--toxicName=slicer_us", "--attribute=average_size=64",
         "--attribute=size_variation=32", "--attribute=delay=10", "--toxicity=1.0", name],
        ["inspect", name],
        ["GET"],
        [*tox, "delete", "--toxicName=slicer_us", name],
        [*tox, "add", "--type=reset_peer", "--toxicName=reset_peer", "--attribute=timeout=2000",
         "--toxicity=1.0", name],
        ["inspect", name],
        [*tox, "delete", "--toxicName=reset_peer", name],
        ["GET"],
        ["delete", name],
        ["list"],
    ]  # fmt: skip


@pytest.fixture(scope="module")
def cli() -> Iterator[Path]:
    reason = missing(*CLI_LIBRARIES)
    if reason is not None:
        pytest.skip(reason)
    with tempfile.TemporaryDirectory(prefix="faultlab-gocli-") as tmp:
        source = extract(Path(tmp))
        binary = Path(tmp) / "toxiproxy-cli"
        subprocess.run(
            ["go", "build", "-o", str(binary), "./cmd/cli"],
            cwd=source,
            env=go_env(Path(tmp) / "gopath"),
            check=True,
            capture_output=True,
            timeout=600,
        )
        yield binary


@pytest.fixture(scope="module")
def web() -> Iterator[int]:
    """A plain HTTP server (the script's web service), one page."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args: object) -> None:
            """Quiet."""

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _transcript(cli: Path, server: RealToxiproxy, web: int) -> list[str]:
    listen_port = free_port("127.0.0.1")
    lines = []
    with server:
        for argv in _script(f"localhost:{listen_port}", f"localhost:{web}"):
            if argv == ["GET"]:
                url = f"http://127.0.0.1:{listen_port}/"
                with urllib.request.urlopen(url, timeout=30) as reply:
                    body = reply.read()
                lines.append(f"GET -> {reply.status}, {'same' if body == PAGE else 'changed'}")
                continue
            run = subprocess.run(
                [str(cli), "-h", server.url, *argv], capture_output=True, text=True, timeout=60
            )
            line = f"$ {' '.join(argv)} [rc={run.returncode}]\n{run.stdout}{run.stderr}"
            lines.append(line.replace(str(listen_port), "LISTEN"))
    return lines


def test_toxiproxy_cli_prints_the_same_against_faultlab(cli: Path, web: int) -> None:
    ours = _transcript(cli, RealToxiproxy(FAULTLAB_PROXY), web)
    text = "\n".join(ours)
    assert all("[rc=0]" in line for line in ours if line.startswith("$")), text
    assert [line for line in ours if line.startswith("GET")] == ["GET -> 200, same"] * 3
    assert "latency_downstream" in text, text
    assert "slicer_us" in text, text
    if find_toxiproxy() is not None:
        theirs = _transcript(cli, RealToxiproxy(), web)
        assert ours == theirs


def test_cli_shows_a_refused_toxic_as_toxiproxy_does(cli: Path) -> None:
    """An error path: the CLI prints the server's message; it must read the same."""
    outputs = []
    servers = [RealToxiproxy(FAULTLAB_PROXY)]
    if find_toxiproxy() is not None:
        servers.append(RealToxiproxy())
    for server in servers:
        with server, socket.socket() as upstream:
            upstream.bind(("127.0.0.1", 0))
            port = upstream.getsockname()[1]
            base = [str(cli), "-h", server.url]
            run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=60)
            run([*base, "create", "-l", "127.0.0.1:0", "-u", f"127.0.0.1:{port}", "p"])
            bad = run([*base, "toxic", "add", "--type=nonsense", "--toxicName=x", "p"])
            outputs.append(re.sub(r"\x1b\[[0-9;]*m", "", bad.stdout + bad.stderr))
    assert "nonsense" in outputs[0] or "invalid" in outputs[0].lower(), outputs[0]
    assert len(set(outputs)) == 1, outputs
