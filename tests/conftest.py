"""Shared test fixtures: peer processes that are always reaped."""

from __future__ import annotations

import glob
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from faultlab._proc import ChildProcess, spawn_ready
from faultlab.proxy.reference import RealToxiproxy, find_toxiproxy, missing_reason

Peer = ChildProcess


def start_peer(mode: str, address: str, *, cpu: int | None = None) -> Peer:
    """Start ``faultlab.transports._peer`` and wait for its READY line."""
    cmd = [sys.executable, "-m", "faultlab.transports._peer", mode, address]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    peer = spawn_ready(cmd)
    if not peer.address:
        peer.address = address
    return peer


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    """Collects peers a test starts and kills every one at teardown, pass or fail."""
    started: list[Peer] = []
    yield started
    for peer in started:
        peer.close()


@pytest.fixture
def real_toxiproxy() -> Iterator[RealToxiproxy]:
    """A real ``toxiproxy-server`` on a free port (skipped, with the reason, when absent)."""
    if find_toxiproxy() is None:
        pytest.skip(missing_reason())
    with RealToxiproxy() as server:
        yield server


# ---- leftover files: which test left a faultlab temp file behind --------------------------
# Every faultlab temp file (a command's output log, a unix socket of a benchmark, a FIFO) has
# an owner that removes it. Files that appear during a test are remembered with the test's id;
# those still there when the session ends are listed at the end of the run, so a leak on a
# rare path (it showed as one command log per full run) names the test that made it.

_TEMP_PATTERN = os.path.join(tempfile.gettempdir(), "faultlab-*")
_appeared: dict[str, str] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    before = set(glob.glob(_TEMP_PATTERN))
    yield
    for path in set(glob.glob(_TEMP_PATTERN)) - before:
        _appeared.setdefault(path, item.nodeid)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    left = {path: test for path, test in _appeared.items() if os.path.lexists(path)}
    if left:
        terminalreporter.section("faultlab temp files left behind")
        for path, test in sorted(left.items()):
            terminalreporter.write_line(f"{path}  (appeared during {test})")
