"""A real ``toxiproxy-server`` to compare faultlab against (differential tests, benchmarks).

Why: parity is a claim about another program, so it is checked against that program.
The binary is found through ``FAULTLAB_TOXIPROXY_SERVER`` (a path) or as
``toxiproxy-server`` on ``PATH``; callers skip with :func:`missing_reason` when it is absent.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from faultlab._cleanup import Owner
from faultlab.errors import FaultlabError
from faultlab.lab.backends.command import free_port

__all__ = [
    "ENV",
    "RealToxiproxy",
    "ToxiproxyStartError",
    "answers_version",
    "find_toxiproxy",
    "missing_reason",
    "stop_process",
]

ENV = "FAULTLAB_TOXIPROXY_SERVER"
START_TIMEOUT = 10.0


class ToxiproxyStartError(FaultlabError):
    """The toxiproxy-server binary exited or did not answer ``GET /version`` in time."""


def find_toxiproxy() -> str | None:
    """The path of a ``toxiproxy-server`` binary, or None."""
    explicit = os.environ.get(ENV)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("toxiproxy-server")


def missing_reason() -> str:
    """Why there is no reference Toxiproxy here, for a skip message."""
    explicit = os.environ.get(ENV)
    if explicit:
        return f"{ENV}={explicit} is not an executable file"
    return (
        f"no toxiproxy-server binary: set {ENV} or put toxiproxy-server on PATH "
        "(build it from Shopify/toxiproxy's source)"
    )


class RealToxiproxy:
    """``toxiproxy-server`` on a free loopback port, killed on exit (and at interpreter exit).

    ``binary`` may be a command (a list) that takes Toxiproxy's ``-host``/``-port`` flags:
    ``[sys.executable, "-m", "faultlab", "proxy"]`` runs faultlab's own server the same way.
    ``extra_args`` are passed as given (``["-proxy-metrics"]``, ``["-config", path]``).
    ``cpus`` pins the process (benchmarks). Its stderr goes to a temporary file, quoted in
    the error when it fails to start.
    """

    def __init__(
        self,
        binary: str | list[str] | None = None,
        *,
        host: str = "127.0.0.1",
        extra_args: list[str] | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        found = binary or find_toxiproxy()
        if found is None:
            raise ToxiproxyStartError(missing_reason())
        self.command = [found] if isinstance(found, str) else list(found)
        self.host = host
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self._args = list(extra_args or [])
        self._cpus = cpus
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner: Owner | None = None
        # Owned by this object: close() closes and unlinks it.
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="toxiproxy-", suffix=".log", delete=False
        )

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ToxiproxyStartError("toxiproxy-server is not running")
        return self._proc.pid

    def start(self) -> RealToxiproxy:
        cmd = [*self.command, "-host", self.host, "-port", str(self.port), *self._args]
        env = dict(os.environ, LOG_LEVEL=os.environ.get("LOG_LEVEL", "error"))
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
        proc = self._proc
        self._owner = Owner(lambda: stop_process(proc))
        if self._cpus:
            os.sched_setaffinity(proc.pid, self._cpus)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if answers_version(self.host, self.port):
                return self
            time.sleep(0.05)
        self.close()
        raise ToxiproxyStartError(
            f"{' '.join(cmd)} did not answer GET /version within {START_TIMEOUT:g} s; "
            f"output: {self.output()[-2000:]}"
        )

    def output(self) -> str:
        """What the server logged so far."""
        return Path(self._log.name).read_text(errors="replace")

    def close(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
        if self._owner is not None:
            self._owner.forget()
            self._owner = None
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> RealToxiproxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def answers_version(host: str, port: int) -> bool:
    """Whether a Toxiproxy API (real or faultlab's) answers ``GET /version`` with a 200."""
    conn = http.client.HTTPConnection(host, port, timeout=1)
    try:
        conn.request("GET", "/version")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc``'s process group (it was started in a session of its own) and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
