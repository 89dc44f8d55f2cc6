"""Child processes with a readiness handshake and a guaranteed reaper.

A child prints ``READY <address>`` when it serves; we wait for that line with
a timeout (never sleep-and-hope). Children run in their own session so a hung
one can be killed as a group, and any child still alive at exit is killed.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import stat
import subprocess
import threading
from dataclasses import dataclass

from faultlab._cleanup import Owner, runtime_dir_path
from faultlab.errors import FaultlabError

__all__ = ["ChildProcess", "serve_until_stopped", "spawn_ready"]


CLOSE_GRACE = 0.5
"""Seconds a child whose stdin was closed has to exit on its own before it is killed."""
_FILE_SCHEMES = ("unix://", "unixgram://", "fifo://")


def _remove_endpoint_file(address: str) -> None:
    """Remove the socket or FIFO a killed child listened on, if it lies in faultlab's
    private runtime directory (where :meth:`Transport.example_address` puts them): the
    child cannot, and nothing else would."""
    if not address.startswith(_FILE_SCHEMES):
        return
    path = address.split("://", 1)[1]
    if os.path.dirname(path) != str(runtime_dir_path()):
        return
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        if stat.S_ISFIFO(mode):  # a FIFO listener's pid lock beside it (its holder is dead)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + ".lock")


def _group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` (a child's session) still has a member."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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

    def close(self, grace: float = CLOSE_GRACE) -> None:
        """Ask the child to exit (its stdin closes: it then removes what it made, such as
        a unix socket's file), kill its group after ``grace`` s or at once if it stays,
        reap it and close the pipes; idempotent."""
        proc = self.proc
        if proc.poll() is None and grace > 0 and proc.stdin is not None and not proc.stdin.closed:
            try:
                proc.stdin.close()
                proc.wait(timeout=grace)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if proc.returncode is None or _group_alive(proc.pid):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
        if proc.returncode is not None:
            _remove_endpoint_file(self.address)  # a killed child removed nothing itself
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
