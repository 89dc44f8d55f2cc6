"""Closing a child process: it is asked first (stdin closes) and killed only if it stays;
what it listened on in faultlab's runtime directory does not outlive it either way."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

from faultlab import transports
from faultlab._proc import CLOSE_GRACE, ChildProcess, spawn_ready

# A child that listens on a unix socket and prints READY; with "obey" it exits cleanly when
# its stdin closes (removing its socket), with "ignore" it never reads stdin.
CHILD = textwrap.dedent(
    """
    import os, socket, sys, time
    mode, path = sys.argv[1], sys.argv[2]
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.listen()
    print("READY unix://" + path, flush=True)
    if mode == "obey":
        while os.read(0, 4096):
            pass
        sock.close()
        os.unlink(path)
        open(path + ".clean", "w").close()  # proof it ran its own cleanup
        sys.exit(0)
    time.sleep(600)
    """
)


def _child(mode: str) -> tuple[ChildProcess, str]:
    address = transports.get("unix").example_address("close-test")
    path = address.removeprefix("unix://")
    child = spawn_ready([sys.executable, "-c", CHILD, mode, path], timeout=30)
    assert os.path.exists(path)
    return child, path


def test_a_child_that_exits_on_stdin_close_cleans_up_itself_without_waiting() -> None:
    child, path = _child("obey")
    started = time.monotonic()
    child.close()
    assert time.monotonic() - started < CLOSE_GRACE + 5
    assert child.proc.returncode == 0, "it exited on its own, not killed"
    assert not os.path.exists(path)
    assert os.path.exists(path + ".clean")
    os.unlink(path + ".clean")


def test_a_child_that_stays_is_killed_after_the_grace_and_its_socket_removed() -> None:
    child, path = _child("ignore")
    started = time.monotonic()
    child.close()
    elapsed = time.monotonic() - started
    assert elapsed >= CLOSE_GRACE * 0.9, "it was given its grace first"
    assert elapsed < CLOSE_GRACE + 10
    assert child.proc.returncode is not None
    assert child.proc.returncode < 0, "killed by a signal"
    assert not os.path.exists(path), "the killed child's socket file went with it"


def test_a_killed_child_leaves_no_socket_file() -> None:
    child, path = _child("ignore")
    child.kill()
    assert not os.path.exists(path)


def test_a_path_outside_the_runtime_directory_is_never_removed(tmp_path: Path) -> None:
    """Only files faultlab made in its own private directory are removed for a child."""
    path = str(tmp_path / "theirs.sock")
    child = spawn_ready([sys.executable, "-c", CHILD, "ignore", path], timeout=30)
    child.close(grace=0)
    assert child.proc.returncode is not None
    assert os.path.exists(path), "a socket outside the runtime directory is the caller's"
