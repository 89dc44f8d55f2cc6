"""Child processes with a readiness handshake and a guaranteed reaper.

A child prints ``READY <address>`` when it serves; we wait for that line with
a timeout (never sleep-and-hope). Children run in their own session so a hung
one can be killed as a group, and any child still alive at exit is killed.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
from dataclasses import dataclass

from faultlab._cleanup import Owner
from faultlab.errors import FaultlabError

__all__ = ["ChildProcess", "serve_until_stopped", "spawn_ready"]


class ChildStartError(FaultlabError):
    """A child process exited or stayed silent instead of printing READY."""


@dataclass
class ChildProcess:
    proc: subprocess.Popen[bytes]
    address: str
    owner: Owner

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (default SIGKILL) and, for fatal signals, reap the child."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.proc.wait(timeout=10)
            self.close()

    def close(self) -> None:
        """Kill (if alive), reap and close the pipes; idempotent."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()
        self.owner.forget()


def spawn_ready(cmd: list[str], *, timeout: float = 15) -> ChildProcess:
    """Start ``cmd`` and return once it printed ``READY [address]``."""
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    owner = Owner(lambda: _kill_quietly(proc))
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("READY"):
        _kill_quietly(proc)
        _, err = proc.communicate(timeout=10)
        owner.forget()
        raise ChildStartError(
            f"{' '.join(cmd)} did not become ready within {timeout:g} s "
            f"(said {line!r}); stderr: {err.decode(errors='replace')[-2000:]}"
        )
    address = line.split(" ", 1)[1] if " " in line else ""
    return ChildProcess(proc, address, owner)


def _kill_quietly(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def serve_until_stopped(address: str, *, watch_stdin: bool = True) -> None:
    """Child side of :func:`spawn_ready`: print ``READY <address>``, then block until
    SIGTERM, Ctrl-C or (``watch_stdin``) the parent closing our stdin."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if watch_stdin:

        def watch() -> None:
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            stop.set()

        threading.Thread(target=watch, daemon=True, name="faultlab-stdin").start()
    print(f"READY {address}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
