"""Toxiproxy's own Go code (its test suite, its CLI) built from source for the contract
tests, offline: GOPATH mode with the Go libraries Debian packages, since there is no Go
module proxy here. Everything needed is optional; :func:`missing` says what is absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

TAG = "v2.12.0"
MIRROR = Path(os.environ.get("TOXIPROXY_MIRROR", "/work/.mirror/Shopify+toxiproxy/repo"))
"""A git directory holding Toxiproxy's history (tag :data:`TAG`)."""
GOCODE = Path("/usr/share/gocode")
IMPORT_PATH = "github.com/Shopify/toxiproxy/v2"


def missing(*libraries: str) -> str | None:
    """Why Toxiproxy's source cannot be built here (``None``: it can). ``libraries``: Go
    import paths beyond the server's that must be present (the CLI's)."""
    if shutil.which("go") is None:
        return "no Go toolchain (apt-get install golang-go)"
    for library in ("github.com/gorilla/mux", *libraries):
        if not (GOCODE / "src" / library).is_dir():
            return f"no Go library {library} under {GOCODE} (Debian's golang-*-dev packages)"
    if not MIRROR.is_dir():
        return f"no Toxiproxy source: set TOXIPROXY_MIRROR to a git dir with tag {TAG}"
    found = subprocess.run(
        ["git", "--git-dir", str(MIRROR), "rev-parse", "-q", "--verify", f"refs/tags/{TAG}"],
        capture_output=True,
        timeout=30,
    )
    if found.returncode != 0:
        return f"{MIRROR} has no tag {TAG}"
    return None


def go_env(gopath: Path) -> dict[str, str]:
    cache = os.environ.get("GOCACHE", str(Path(tempfile.gettempdir()) / "faultlab-gocache"))
    return {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{gopath}:{GOCODE}",
        "GOPROXY": "off",
        "GOFLAGS": "",
        "GOTOOLCHAIN": "local",
        "CGO_ENABLED": "0",
        "GOCACHE": cache,
    }


def extract(root: Path) -> Path:
    """Toxiproxy at :data:`TAG` laid out under ``root/gopath``; returns its directory."""
    source = root / "gopath" / "src" / IMPORT_PATH
    source.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "--git-dir", str(MIRROR), "archive", TAG],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(source, filter="data")
    return source
