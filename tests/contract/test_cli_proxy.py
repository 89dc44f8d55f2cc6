"""``faultlab proxy`` as a process: Toxiproxy's flags, config file, seed, clean SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultlab.proxy.remote import RemoteToxiproxy
from tests.contract.conftest import echo_through

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def run_proxy() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def start(
    started: list[subprocess.Popen[str]], *args: str
) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultlab", "proxy", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOG_LEVEL": "warn", "COLUMNS": "200"},
    )
    started.append(proc)
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        found = re.search(r"API at (http://\S+)", line)
        if found:
            return proc, found.group(1), "".join(lines)
    proc.kill()
    _, err = proc.communicate(timeout=10)
    raise AssertionError(f"no API URL printed: {lines!r}\n{err}")


def test_single_dash_flags_config_seed_and_sigterm(
    run_proxy: list[subprocess.Popen[str]], tmp_path: Path, echo: str
) -> None:
    config = tmp_path / "toxiproxy.json"
    config.write_text(
        json.dumps([{"name": "from-config", "listen": "127.0.0.1:0", "upstream": echo}])
    )
    proc, url, _ = start(
        run_proxy, "-host=127.0.0.1", "-port", "0", "-config", str(config), "-seed=42"
    )
    with RemoteToxiproxy(url, timeout=5) as client:
        assert client.version() == "2.12.0"
        assert client.seed == 42
        proxy = client.proxy("from-config")
        assert echo_through(proxy.listen) == b"ping"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "stopping" in out


def test_bad_config_is_logged_and_startup_continues(
    run_proxy: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    config = tmp_path / "bad.json"
    config.write_text('[{"name": "x"}]')
    proc, url, _ = start(run_proxy, "--port", "0", "--config", str(config))
    with RemoteToxiproxy(url, timeout=5) as client:
        assert client.list_proxies() == []
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "missing required field: upstream at proxy 1" in err


def test_seed_is_printed(run_proxy: list[subprocess.Popen[str]]) -> None:
    proc, url, printed = start(run_proxy, "--port", "0", "--seed", "7")
    assert "seed 7" in printed
    assert url.startswith("http://127.0.0.1:")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == 0


def test_busy_port_fails_with_a_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        done = subprocess.run(
            [sys.executable, "-m", "faultlab", "proxy", "--port", str(taken.getsockname()[1])],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 1
    assert "cannot listen" in done.stdout


def test_journal_events_bounds_the_journal(
    run_proxy: list[subprocess.Popen[str]], echo: str
) -> None:
    proc, url, _ = start(run_proxy, "--port", "0", "--journal-events", "8")
    with RemoteToxiproxy(url, timeout=5) as client:
        proxy = client.create("bounded", listen="127.0.0.1:0", upstream=echo)
        for _ in range(10):
            assert echo_through(proxy.listen) == b"ping"
        with urllib.request.urlopen(url + "/faultlab/events", timeout=5) as reply:
            body = json.loads(reply.read())
    assert len(body["events"]) <= 8
    assert body["dropped"] >= 10, "ten connections journal at least ten events past the bound"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)


def test_journal_events_must_be_positive(run_proxy: list[subprocess.Popen[str]]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "faultlab", "proxy", "--journal-events", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "must be at least 1, got 0" in done.stderr
