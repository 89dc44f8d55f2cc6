"""Toxiproxy's own API test suite (``api_test.go``, 34 tests driving the Go client and raw
HTTP) run against ``faultlab proxy``, and against a real ``toxiproxy-server`` when there is
one: the tests that fail must be the same on both.

Upstream's file starts its server in-process (``WithServer``); here that function and the
server import are cut out at run time and a harness of ours stands in: it points the tests
at the external server and ends each test by deleting every proxy (upstream clears its
collection). Upstream's ``TestVersionEndpointReturnsVersion`` expects a development build's
version (``git``), so every release fails it, Toxiproxy 2.12.0 included.

Needs Go, Debian's Go libraries and Toxiproxy's source
(:mod:`tests.contract.toxiproxy_source`); without them the test skips and says which is
missing.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from faultlab.proxy.reference import RealToxiproxy, find_toxiproxy
from tests.contract.toxiproxy_source import extract, go_env, missing

pytestmark = pytest.mark.timeout(900)

FAULTLAB_PROXY = [sys.executable, "-m", "faultlab", "proxy"]
FAILS_ON_EVERY_RELEASE = {"TestVersionEndpointReturnsVersion"}

HARNESS = """package toxiproxy_test

// faultlab's stand-in for upstream's WithServer: the server runs outside the test process.

import (
\t"net"
\t"testing"

\ttclient "github.com/Shopify/toxiproxy/v2/client"
)

var client = tclient.NewClient("http://127.0.0.1:{port}")

func WithServer(t *testing.T, f func(string)) {
\tdefer func() {
\t\tproxies, err := client.Proxies()
\t\tif err != nil {
\t\t\tt.Error("Failed to list proxies", err)
\t\t\treturn
\t\t}
\t\tfor _, p := range proxies {
\t\t\tif err := p.Delete(); err != nil {
\t\t\t\tt.Error("Failed to delete proxy", err)
\t\t\t}
\t\t}
\t}()
\tf("http://localhost:{port}")
}

// AssertProxyUp as upstream's toxiproxy_test.go (an in-process test file) has it.
func AssertProxyUp(t *testing.T, addr string, up bool) net.Conn {
\tconn, err := net.Dial("tcp", addr)
\tif err != nil && up {
\t\tt.Error("Expected proxy to be up:", err)
\t} else if err == nil && !up {
\t\tt.Error("Expected proxy to be down")
\t}
\treturn conn
}
"""


def _prepare(root: Path, port: int) -> Path:
    """Upstream's tree at TAG with api_test.go as the only upstream test, WithServer ours."""
    source = extract(root)
    for test_file in source.glob("*_test.go"):
        if test_file.name != "api_test.go":
            test_file.unlink()
    api = (source / "api_test.go").read_text()
    start, end = api.index("var testServer"), api.index("func TestRequestId")
    api = (api[:start] + api[end:]).replace("8475", str(port))
    (source / "api_test.go").write_text(api)
    (source / "faultlab_harness_test.go").write_text(HARNESS.replace("{port}", str(port)))
    env = go_env(root / "gopath")
    for _ in range(10):  # drop the imports only the cut-out server code used
        vet = subprocess.run(
            ["go", "vet", "."], cwd=source, env=env, capture_output=True, text=True, timeout=600
        )
        unused = re.search(r'"([^"]+)" imported but not used', vet.stderr)
        if unused is None:
            break
        api = re.sub(r'\n\t(\w+ )?"' + re.escape(unused.group(1)) + '"', "", api, count=1)
        (source / "api_test.go").write_text(api)
    return source


def _run_suite(server_command: list[str] | None) -> tuple[set[str], set[str], str]:
    with tempfile.TemporaryDirectory(prefix="faultlab-gosuite-") as tmp:
        server = RealToxiproxy(server_command) if server_command else RealToxiproxy()
        with server:
            source = _prepare(Path(tmp), server.port)
            run = subprocess.run(
                ["go", "test", "-count=1", "-p", "1", "-v", "."],
                cwd=source,
                env=go_env(Path(tmp) / "gopath"),
                capture_output=True,
                text=True,
                timeout=600,
            )
    output = run.stdout + run.stderr
    passed = set(re.findall(r"^--- PASS: (\w+)", output, re.M))
    failed = set(re.findall(r"^--- FAIL: (\w+)", output, re.M))
    return passed, failed, output


def test_toxiproxy_api_suite_passes_against_faultlab_as_against_toxiproxy() -> None:
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    passed, failed, output = _run_suite(FAULTLAB_PROXY)
    assert len(passed) + len(failed) >= 30, output[-3000:]  # the suite ran, all of it
    if find_toxiproxy() is not None:
        _, failed_on_toxiproxy, reference = _run_suite(None)
        assert failed_on_toxiproxy == FAILS_ON_EVERY_RELEASE, reference[-3000:]
    assert failed == FAILS_ON_EVERY_RELEASE, output[-5000:]
