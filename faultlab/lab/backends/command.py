"""Handles for black-box services: a :class:`~faultlab.lab.services.Command` faultlab runs
and an :class:`~faultlab.lab.services.Address` somebody else runs.

A :class:`CommandServer` runs the program in its own session, so every process
fault acts on the whole process group (uvicorn's workers, a shell wrapper's
child): pause is SIGSTOP, resume SIGCONT, kill SIGKILL, stop SIGTERM (SIGKILL
after ``stop_timeout``), restart starts the same argv on the same address. Its
stdout and stderr go to private (0600) temporary files whose tail error messages
quote; its stdin is a pipe held open until the process is killed (a child that
exits when its stdin closes, as faultlab's own ``serve_target`` does, dies with
us). The files and the process group are owned by a
:class:`faultlab._cleanup.Owner`, so close, normal exit and Ctrl-C never leak them.

An :class:`AddressServer` owns nothing: process faults raise :class:`UnsupportedFault`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from faultlab._cleanup import Owner
from faultlab.journal import Journal
from faultlab.journal import schema as ev
from faultlab.lab.backends.base import BackendError, ServerHandle, UnsupportedFault
from faultlab.lab.readiness import ServiceExited, ServiceStartError, wait_ready
from faultlab.lab.services import Address, Command

__all__ = ["TAIL_BYTES", "AddressServer", "CommandServer", "free_port", "read_tail"]

TAIL_BYTES = 4000
"""How much of a captured output file an error message or :meth:`CommandServer.stderr` reads."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


def read_tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of ``path`` as text ('' if it is gone)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except FileNotFoundError:
        return ""
    text = data.decode(errors="replace")
    return ("..." + text) if size > limit else text


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class _Resources:
    """What a CommandServer holds outside this process: its output files and the current
    process group. :meth:`release` frees all of it; it is what the Owner runs at exit."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.group_gone = False

    def kill_group(self) -> None:
        """SIGKILL the group (stopped members too), reap the leader, then SIGKILL members
        that outlived it. Once done, the group id is never signalled again (it may be
        reused)."""
        proc = self.proc
        if proc is None or self.group_gone:
            return
        _killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        _killpg(proc.pid, signal.SIGKILL)
        self.group_gone = proc.returncode is not None
        if proc.stdin is not None and not proc.stdin.closed:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def release(self) -> None:
        self.kill_group()
        self.proc = None
        for path in self.paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.paths.clear()


class CommandServer(ServerHandle):
    """A :class:`Command` running on ``tcp://host:port``; ready when its check passes."""

    def __init__(self, command: Command, journal: Journal, *, host: str = "127.0.0.1") -> None:
        self.command = command
        self.journal = journal
        self.host = host
        self.port = free_port(host)
        self.address = f"tcp://[{host}]:{self.port}" if ":" in host else f"tcp://{host}:{self.port}"
        self.argv = command.argv_for(host, self.port)
        self.env = command.env_for(host, self.port)
        self._paused = False
        self._resources = _Resources()
        self._owner = Owner(self._resources.release)
        try:
            for stream in ("stdout", "stderr"):
                fd, path = tempfile.mkstemp(prefix=f"faultlab-cmd-{stream}-", suffix=".log")
                os.close(fd)  # mkstemp: 0600, so private whatever the umask
                self._resources.paths.append(Path(path))
            self.stdout_path, self.stderr_path = self._resources.paths
            self._start()
        except BaseException:
            self.close()
            raise

    # the process
    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self._resources.proc

    def _spawn(self) -> None:
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            try:
                proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    env=self.env,
                    cwd=self.command.cwd,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise ServiceStartError(f"cannot run {self.describe()}: {exc}") from exc
        self._resources.proc = proc
        self._resources.group_gone = False
        self.pid = proc.pid
        self._paused = False

    def _start(self) -> None:
        """Spawn and wait for the declared check (the error says why it did not start)."""
        self._spawn()
        self.wait_ready()

    def wait_ready(self) -> None:
        """Wait for the declared readiness check; a dead process fails at once."""
        wait_ready(
            self.command.check,
            f"{self.host}:{self.port}",
            timeout=self.command.ready_timeout,
            what=self.describe(),
            exited=self._exited,
        )

    def _exited(self) -> ServiceStartError | None:
        proc = self.proc
        if proc is None:
            return ServiceStartError(f"{self.describe()} is not running")
        code = proc.poll()
        if code is None:
            return None
        tail = self.stderr().strip() or "(empty)"
        return ServiceExited(
            f"{self.describe()} {_describe_exit(code)} before it was ready; "
            f"exit code {code}; stderr tail:\n{tail}"
        )

    def describe(self) -> str:
        return f"command `{shlex.join(self.argv)}`"

    def stdout(self, limit: int = TAIL_BYTES) -> str:
        """The tail of everything the command wrote to stdout (across restarts)."""
        return read_tail(self.stdout_path, limit)

    def stderr(self, limit: int = TAIL_BYTES) -> str:
        """The tail of everything the command wrote to stderr (across restarts)."""
        return read_tail(self.stderr_path, limit)

    def _process_event(self, action: str) -> None:
        self.journal.record(ev.PROCESS, action=action, pid=self.pid, target="server")

    def _signal(self, sig: int) -> None:
        if self.proc is not None:
            _killpg(self.proc.pid, sig)

    # state
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused

    # process faults
    def pause(self) -> None:
        if not self.alive:
            raise BackendError(f"cannot pause: {self.describe()} is not running")
        self._signal(signal.SIGSTOP)
        self._paused = True
        self._process_event("pause")

    def resume(self) -> None:
        if self.alive and self._paused:
            self._signal(signal.SIGCONT)
            self._paused = False
            self._process_event("resume")

    def kill(self) -> None:
        if self.proc is not None:
            self._resources.kill_group()
            self._paused = False
            self._process_event("kill")

    def stop(self) -> None:
        """SIGTERM to the group; SIGKILL if it has not exited within ``stop_timeout``."""
        proc = self.proc
        if proc is None or not self.alive:
            return
        if self._paused:
            self._signal(signal.SIGCONT)
            self._paused = False
        self._signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.command.stop_timeout)
        except subprocess.TimeoutExpired:
            pass
        self._resources.kill_group()  # the leader if it hung, members that outlived it
        self._process_event("stop")

    def restart(self) -> None:
        """The same argv on the same address (after kill, stop, or while running); returns
        once the declared check passes."""
        self._resources.kill_group()
        self._start()
        self._process_event("restart")

    def close(self) -> None:
        """Kill the process group, remove the output files; idempotent."""
        self._owner.release()
        self._paused = False


class AddressServer(ServerHandle):
    """A service somebody else runs: no process faults, nothing to close."""

    def __init__(self, service: Address, journal: Journal) -> None:
        self.service = service
        self.journal = journal
        self.host, self.port = service.host_port
        self.address = service.address
        self.wait_ready()

    def wait_ready(self) -> None:
        host = f"[{self.host}]" if ":" in self.host else self.host
        wait_ready(
            self.service.check,
            f"{host}:{self.port}",
            timeout=self.service.ready_timeout,
            what=f"service {self.service.url}",
        )

    def _not_owned(self, fault: str) -> UnsupportedFault:
        return UnsupportedFault(
            f"faultlab does not own this process: {self.service.url} is run by someone else, "
            f"so it cannot {fault} it (run it as a faultlab.Command for process faults, or "
            "use the proxy's toxics)"
        )

    def pause(self) -> None:
        raise self._not_owned("pause")

    def resume(self) -> None:
        raise self._not_owned("resume")

    def kill(self) -> None:
        raise self._not_owned("kill")

    def stop(self) -> None:
        raise self._not_owned("stop")

    def restart(self) -> None:
        raise self._not_owned("restart")

    def close(self) -> None:
        """Nothing to free: the service keeps running."""
