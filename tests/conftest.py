"""Shared test fixtures: peer processes that are always reaped."""

from __future__ import annotations

import sys
from collections.abc import Iterator

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
