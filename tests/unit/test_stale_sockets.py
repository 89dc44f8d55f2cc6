"""Socket files that killed runs left in faultlab's runtime directory are swept by the next
unix listener there; a live listener's file, a file too young to judge, another process's
file and anything outside that directory are never touched."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from faultlab import transports
from faultlab._cleanup import runtime_dir
from faultlab.transports.unix import STALE_AGE, sweep_stale_sockets


@pytest.fixture
def rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "rt"
    monkeypatch.setenv("FAULTLAB_RUNTIME_DIR", str(path))
    runtime_dir()  # created 0700
    return path


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _left_behind(path: Path, kind: int = socket.SOCK_STREAM, *, age: float = 60.0) -> None:
    """A socket file as a SIGKILLed listener leaves it: bound, nobody listening."""
    sock = socket.socket(socket.AF_UNIX, kind)
    sock.bind(str(path))
    sock.close()
    then = time.time() - age
    os.utime(path, (then, then))


def test_the_sweep_removes_only_what_dead_runs_left(rt: Path) -> None:
    dead = _dead_pid()
    stale = rt / f"echo-{dead}-0123abcd.sock"
    stale_dgram = rt / f"gram-{dead}-0123abce.sock"
    young = rt / f"young-{dead}-0123abcf.sock"
    mine = rt / f"mine-{os.getpid()}-0123abd0.sock"
    other_name = rt / "not-ours.sock"
    _left_behind(stale)
    _left_behind(stale_dgram, socket.SOCK_DGRAM)
    _left_behind(young, age=STALE_AGE / 10)
    _left_behind(mine)
    _left_behind(other_name)
    live_path = rt / f"live-{dead}-0123abd1.sock"
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(live_path))
    live.listen()
    then = time.time() - 60
    os.utime(live_path, (then, then))
    try:
        assert sweep_stale_sockets(str(rt)) == 2
        assert not stale.exists()
        assert not stale_dgram.exists()
        assert young.exists(), "too young to judge: it may be bound and not yet listening"
        assert mine.exists(), "its creator is alive"
        assert other_name.exists(), "not a name faultlab gives"
        assert live_path.exists(), "someone listens on it"
    finally:
        live.close()


def test_a_unix_listener_in_the_runtime_directory_sweeps_it(rt: Path) -> None:
    stale = rt / f"echo-{_dead_pid()}-89abcdef.sock"
    _left_behind(stale)
    address = transports.get("unix").example_address("sweeper")
    with transports.listen(address):
        assert not stale.exists()


def test_a_listener_elsewhere_sweeps_nothing(rt: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    stale = elsewhere / f"echo-{_dead_pid()}-89abcdef.sock"
    _left_behind(stale)
    with transports.listen(f"unix://{elsewhere}/server.sock"):
        assert stale.exists(), "only faultlab's own directory is swept"


def test_a_listener_elsewhere_never_touches_the_runtime_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not created, not checked: an unsafe runtime directory (here a symlink) must not fail a
    bind in a directory of the user's own."""
    absent = tmp_path / "rt-absent"
    monkeypatch.setenv("FAULTLAB_RUNTIME_DIR", str(absent))
    with transports.listen(f"unix://{tmp_path}/a.sock"):
        pass
    assert not absent.exists()
    unsafe = tmp_path / "rt-link"
    unsafe.symlink_to(tmp_path)
    monkeypatch.setenv("FAULTLAB_RUNTIME_DIR", str(unsafe))
    with transports.listen(f"unix://{tmp_path}/b.sock") as listener:
        assert listener.address.endswith("/b.sock")
