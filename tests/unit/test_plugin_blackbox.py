"""The plugin with a black-box client: a test that only uses ``faultlab_proxy`` and
``faultlab_check`` (a ``requests`` client, a stdlib HTTP server) is judged from the wire,
journaled, labelled and reported; its replay line reruns it as printed."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

pytest_plugins = ["pytester"]

TEST_FILE = """
import http.server, socket, threading
import pytest, requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry
from faultlab.oracles import RetryPolicy, check_retry


class Busy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("total", [ALLOWED])
def test_retries_503(faultlab_proxy, faultlab_check, upstream, total):
    proxy = faultlab_proxy.create("web", upstream=upstream, framing="http")
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=Retry(total=total, status_forcelist=[503])))
    with pytest.raises(requests.exceptions.RetryError):
        session.get(f"http://{proxy.listen}/x", timeout=5)
    policy = RetryPolicy(max_attempts=3, retry_on={"http_503"})
    faultlab_check(check_retry(faultlab_check.events(), policy))
"""


def _run(pytester: pytest.Pytester, allowed: int) -> pytest.RunResult:
    pytester.makepyfile(test_bb=TEST_FILE.replace("ALLOWED", str(allowed)))
    return pytester.runpytest_subprocess("--faultlab-seed=5", "--faultlab-report=out", "-q")


def test_a_proxy_only_test_is_judged_from_the_wire_and_reported(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, 2)  # 3 attempts: what the declared policy allows
    result.assert_outcomes(passed=1)
    journal = json.loads((pytester.path / "out" / "journal.json").read_text())
    tests = [e for e in journal["events"] if e["kind"] == "test"]
    assert [t["nodeid"] for t in tests] == ["test_bb.py::test_retries_503[2]"]
    assert tests[0]["transport"] == "tcp"
    assert tests[0]["protocol"] == "http"
    (verdict,) = [e for e in journal["events"] if e["kind"] == "verdict"]
    assert verdict["passed"] is True
    assert verdict["vacuous"] is False  # three wire attempts, two retryable failures


def test_a_wrong_client_fails_and_its_replay_line_runs_as_printed(
    pytester: pytest.Pytester,
) -> None:
    result = _run(pytester, 3)  # 4 attempts: one more than declared
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*R1 attempt bound*made 4 attempts*"])
    line = next(x for x in result.outlines if "--faultlab-seed=5" in x and "pytest " in x)
    command = line.split("seed 5: ", 1)[1]
    argv = shlex.split(command)
    assert argv[0] == "pytest"
    assert argv[1].startswith(str(pytester.path))  # absolute: runs from anywhere
    rerun = subprocess.run(
        [sys.executable, "-m", *argv, "-q", "-p", "no:cacheprovider"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 1, rerun.stdout[-2000:]
    assert "made 4 attempts" in rerun.stdout
