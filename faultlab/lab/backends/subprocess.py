"""The subprocess backend: the server is a real process, so it can be paused and killed.

The child (``python -m faultlab.lab.serve_target``) prints ``READY <address>``
once bound and writes its ``server_request`` events as JSON lines to a file,
timed on the same monotonic clock as the lab's journal (CLOCK_MONOTONIC is
system-wide), and the lab merges them on read. Restart reuses the address.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

from faultlab._proc import ChildProcess, spawn_ready
from faultlab.journal import Journal
from faultlab.journal import schema as ev
from faultlab.journal.store import copy_appended
from faultlab.lab.backends.base import BackendError, ServerHandle, ServerSpec, register_backend

__all__ = ["SubprocessServer"]


class SubprocessServer(ServerHandle):
    def __init__(self, spec: ServerSpec, journal: Journal) -> None:
        self.spec = spec
        self.journal = journal
        fd, path = tempfile.mkstemp(prefix="faultlab-server-", suffix=".jsonl")
        os.close(fd)
        self.events_path = Path(path)
        self._read_offset = 0
        self._paused = False
        self.child: ChildProcess | None = None
        self.address = spec.address
        self._start(spec.address)

    def _start(self, address: str) -> None:
        cmd = self.spec.serve_command(
            sys.executable, address, str(self.events_path), self.journal.origin
        )
        try:
            self.child = spawn_ready(cmd, timeout=30)
        except Exception as exc:
            raise BackendError(f"server subprocess did not start: {exc}") from exc
        self.address = self.child.address or address
        self.pid = self.child.pid
        self._paused = False

    def _process_event(self, action: str) -> None:
        self.journal.record(ev.PROCESS, action=action, pid=self.pid, target="server")

    def merge_events(self) -> None:
        """Copy the child's new server events into the lab journal."""
        self._read_offset = copy_appended(self.events_path, self._read_offset, self.journal)

    @property
    def alive(self) -> bool:
        return self.child is not None and self.child.proc.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        if self.child is None or not self.alive:
            raise BackendError("cannot pause: the server is not running")
        os.kill(self.child.pid, signal.SIGSTOP)
        self._paused = True
        self._process_event("pause")

    def resume(self) -> None:
        if self.child is not None and self.alive and self._paused:
            os.kill(self.child.pid, signal.SIGCONT)
            self._paused = False
            self._process_event("resume")

    def kill(self) -> None:
        if self.child is not None:
            self.merge_events()
            self.child.kill(signal.SIGKILL)
            self._process_event("kill")

    def stop(self) -> None:
        if self.child is not None and self.alive:
            if self._paused:
                os.kill(self.child.pid, signal.SIGCONT)
            self.child.kill(signal.SIGTERM)
            self._process_event("stop")

    def restart(self) -> None:
        """Start again on the same address (after kill, stop, or while running)."""
        if self.child is not None:
            self.merge_events()
            self.child.close()
        self._start(self.address)
        self._process_event("restart")

    def close(self) -> None:
        if self.child is not None:
            if self._paused and self.alive:
                os.kill(self.child.pid, signal.SIGCONT)
            self.merge_events()
            self.child.close()
            self.child = None
        try:
            self.events_path.unlink()
        except FileNotFoundError:
            pass


register_backend("subprocess", SubprocessServer)
