"""The real npm ``toxiproxy-node-client`` (4.x) against faultlab's server, unchanged.

``node/client_check.js`` runs the client's calls in order (create, get, addToxic,
updateToxic, proxy update, removeToxic, populate, errors, then every Toxiproxy toxic with
the attribute values the client's own spec and README use, added, checked with data,
updated and removed; faultlab's proxy options; reset, remove) and prints one JSON line per
step. The same script runs against a real toxiproxy-server (without faultlab's step), so
its expectations are Toxiproxy's. Install the client with
``npm ci --prefix tests/contract/node``; without node or the package the test skips.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from faultlab.proxy.reference import RealToxiproxy

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "client_check.js"
PACKAGE = NODE_DIR / "node_modules" / "toxiproxy-node-client" / "package.json"

pytestmark = pytest.mark.timeout(120)


TOXICS = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "slicer",
    "reset_peer",
    "limit_data",
    "noop",
]


def _run(api_url: str, echo: str, *extra: str) -> list[dict[str, object]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not PACKAGE.exists():
        pytest.skip("toxiproxy-node-client missing: npm ci --prefix tests/contract/node")
    version = json.loads(PACKAGE.read_text())["version"]
    assert version.startswith("4."), version
    done = subprocess.run(
        [node, str(SCRIPT), api_url, echo, *extra],
        capture_output=True,
        text=True,
        timeout=80,
        cwd=NODE_DIR,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _expected(faultlab: bool) -> list[str]:
    return [
        "version",
        "createProxy",
        "get",
        "addToxic",
        "updateToxic",
        "update",
        "removeToxic",
        "populate",
        "errors",
        *(["toxic"] * len(TOXICS)),
        *(["faultlabOptions"] if faultlab else []),
        "remove",
        "done",
    ]


def test_node_client_drives_the_api(api_url: str, echo: str) -> None:
    steps = _run(api_url, echo)
    assert [s["step"] for s in steps] == _expected(faultlab=True)
    assert [s["type"] for s in steps if s["step"] == "toxic"] == TOXICS


def test_the_same_calls_pass_against_real_toxiproxy(
    real_toxiproxy: RealToxiproxy, echo: str
) -> None:
    """The check's expectations are Toxiproxy's own (slicer with size_variation ==
    average_size included)."""
    steps = _run(real_toxiproxy.url, echo, "--toxiproxy")
    assert [s["step"] for s in steps] == _expected(faultlab=False)
