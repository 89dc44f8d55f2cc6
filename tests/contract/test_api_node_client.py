"""The real npm ``toxiproxy-node-client`` (4.x) against faultlab's server, unchanged.

``node/client_check.js`` runs the client's calls in order (create, get, addToxic,
updateToxic, proxy update, removeToxic, populate, errors, reset, remove) and
prints one JSON line per step. Install the client with
``npm ci --prefix tests/contract/node``; without node or the package the test skips.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "client_check.js"
PACKAGE = NODE_DIR / "node_modules" / "toxiproxy-node-client" / "package.json"

pytestmark = pytest.mark.timeout(90)


def test_node_client_drives_the_api(api_url: str, echo: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not PACKAGE.exists():
        pytest.skip("toxiproxy-node-client missing: npm ci --prefix tests/contract/node")
    version = json.loads(PACKAGE.read_text())["version"]
    assert version.startswith("4."), version
    done = subprocess.run(
        [node, str(SCRIPT), api_url, echo],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=NODE_DIR,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    steps = [json.loads(line)["step"] for line in done.stdout.splitlines() if line.strip()]
    assert steps == [
        "version",
        "createProxy",
        "get",
        "addToxic",
        "updateToxic",
        "update",
        "removeToxic",
        "populate",
        "errors",
        "remove",
        "done",
    ]
