"""Shared test fixtures: peer processes that are always reaped."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass
class Peer:
    proc: subprocess.Popen[bytes]
    address: str

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def start_peer(mode: str, address: str, *, cpu: int | None = None, timeout: float = 15) -> Peer:
    """Start ``faultlab.transports._peer`` and wait for its READY line (never sleep-and-hope)."""
    cmd = [sys.executable, "-m", "faultlab.transports._peer", mode, address]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("READY"):
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise RuntimeError(f"peer {cmd} did not start: {line!r} {err.decode()[-2000:]}")
    real = line.split(" ", 1)[1] if " " in line else address
    return Peer(proc, real)


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    """Collects peers a test starts and kills every one at teardown, pass or fail."""
    started: list[Peer] = []
    yield started
    for peer in started:
        peer.kill()
        for pipe in (peer.proc.stdin, peer.proc.stdout, peer.proc.stderr):
            if pipe is not None:
                pipe.close()
