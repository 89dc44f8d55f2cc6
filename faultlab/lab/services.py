"""Services that need no Python class: a command faultlab runs, an address someone else runs.

``Lab.pair(faultlab.Command([...]), protocol="http")`` runs any program (a FastAPI
app on uvicorn, a Node binary, a shell wrapper) on a free loopback port and puts
the proxy in front of it; ``Lab.pair(faultlab.Address("127.0.0.1:8080"), ...)``
fronts a service that is already running. Both say when they are ready with a
declared check (:mod:`faultlab.lab.readiness`, ``faultlab.ready``), never a sleep.

``Lab.pair(faultlab.Image("name:tag", port=8080), ...)`` runs a local container image as
the service, always on the Docker backend
(:class:`faultlab.lab.backends.docker.ImageServer`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from faultlab.lab.backends.base import BackendError
from faultlab.lab.readiness import DEFAULT_TIMEOUT, ReadyCheck, as_check, tcp

__all__ = ["PLACEHOLDERS", "Address", "Command", "Image", "InvalidService", "fill"]

PLACEHOLDERS = ("{port}", "{host}", "{address}")
"""Filled in a Command's argv items and env values; any other braces are left alone."""

Ready = ReadyCheck | Callable[[str], Any]


class InvalidService(BackendError, ValueError):
    """A Command, Address or Image that cannot describe a service (an empty argv, an
    address without a port, a scheme other than tcp)."""


def fill(text: str, host: str, port: int) -> str:
    """``text`` with ``{port}``, ``{host}`` and ``{address}`` (``host:port``) filled in."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return text.replace("{port}", str(port)).replace("{host}", host).replace("{address}", address)


@dataclass(frozen=True)
class Command:
    """Any program, run by faultlab on a free loopback address.

    ``argv`` items and ``env`` values may hold ``{port}``, ``{host}`` and ``{address}``
    (``host:port``); ``env`` is added to this process's environment. The program runs in
    its own session (process group), its stdout and stderr go to private temporary files
    (removed on close), and it is ready when ``ready`` passes (default: a TCP connect),
    within ``ready_timeout`` seconds. ``stop_timeout`` is how long a graceful stop
    (SIGTERM) may take before the group is killed.
    """

    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: str | os.PathLike[str] | None = None
    ready: Ready = field(default_factory=tcp)
    ready_timeout: float = DEFAULT_TIMEOUT
    stop_timeout: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.argv, str | bytes):
            raise InvalidService(
                f"Command argv is a list of arguments, not a string: {self.argv!r} "
                "(use shlex.split, or ['sh', '-c', ...] for a shell line)"
            )
        argv = tuple(self.argv)
        if not argv or not all(isinstance(a, str) for a in argv):
            raise InvalidService(f"Command argv must be a non-empty list of str, got {argv!r}")
        if self.env is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()
        ):
            raise InvalidService(f"Command env must map str to str, got {self.env!r}")
        if self.ready_timeout <= 0:
            raise InvalidService(f"ready_timeout must be positive, got {self.ready_timeout!r}")
        object.__setattr__(self, "argv", argv)
        object.__setattr__(self, "env", dict(self.env) if self.env is not None else None)
        object.__setattr__(self, "ready", as_check(self.ready))

    @property
    def check(self) -> ReadyCheck:
        return as_check(self.ready)

    def argv_for(self, host: str, port: int) -> list[str]:
        return [fill(arg, host, port) for arg in self.argv]

    def env_for(self, host: str, port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update({k: fill(v, host, port) for k, v in (self.env or {}).items()})
        return env

    def __str__(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True)
class Address:
    """A TCP service somebody else runs: ``tcp://host:port``, ``host:port`` or
    ``http://host:port`` (all mean TCP). faultlab does not own its process, so it has no
    process faults; it is ready when ``ready`` passes (default: a TCP connect)."""

    url: str
    ready: Ready = field(default_factory=tcp)
    ready_timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        object.__setattr__(self, "ready", as_check(self.ready))
        self.host_port  # noqa: B018 (validated now, not at first use)

    @property
    def check(self) -> ReadyCheck:
        return as_check(self.ready)

    @property
    def host_port(self) -> tuple[str, int]:
        text = self.url.strip()
        if "://" not in text:
            text = "tcp://" + text
        parts = urlsplit(text)
        if parts.scheme not in ("tcp", "http"):
            raise InvalidService(
                f"Address {self.url!r}: only tcp:// (or http://, which is TCP) services can be "
                "fronted by the proxy"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise InvalidService(
                f"Address {self.url!r}: give the service's host:port only (the proxy relays "
                "every path)"
            )
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or port == 0:
            raise InvalidService(f"Address {self.url!r} needs a host and a port (host:port)")
        return parts.hostname, port

    @property
    def address(self) -> str:
        """``tcp://host:port`` (IPv6 hosts in brackets)."""
        host, port = self.host_port
        return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"

    def __str__(self) -> str:
        return self.url


@dataclass(frozen=True)
class Image:
    """A container image, present in the local Docker engine, serving TCP on ``port``.

    ``Lab.pair(faultlab.Image("name:tag", port=8080), ...)`` runs it on the Docker backend
    whatever the lab's default: a container of its own, on its own internal bridge
    network, reached at ``tcp://<container ip>:<port>``, with ``env`` in its environment
    and ``command`` (if given) instead of the image's CMD. It is ready when ``ready``
    passes there (default: a TCP connect), within ``ready_timeout`` seconds; a graceful
    stop (SIGTERM) may take ``stop_timeout`` seconds before the container is killed.
    faultlab never pulls: build (or pull) the image first.
    """

    image: str
    port: int
    env: Mapping[str, str] | None = None
    command: Sequence[str] | None = None
    ready: Ready = field(default_factory=tcp)
    ready_timeout: float = 60.0
    stop_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.image, str) or not self.image.strip():
            raise InvalidService("Image needs an image name (name:tag)")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise InvalidService(f"Image port must be an int, got {self.port!r}")
        if not 0 < self.port < 65536:
            raise InvalidService(f"Image port must be 1-65535, got {self.port!r}")
        if self.env is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.env.items()
        ):
            raise InvalidService(f"Image env must map str to str, got {self.env!r}")
        if self.command is not None:
            if isinstance(self.command, str | bytes):
                raise InvalidService(
                    f"Image command is a list of arguments, not a string: {self.command!r}"
                )
            if not all(isinstance(a, str) for a in self.command):
                raise InvalidService(f"Image command must be a list of str, got {self.command!r}")
            object.__setattr__(self, "command", tuple(self.command))
        if self.ready_timeout <= 0:
            raise InvalidService(f"ready_timeout must be positive, got {self.ready_timeout!r}")
        object.__setattr__(self, "env", dict(self.env) if self.env is not None else None)
        object.__setattr__(self, "ready", as_check(self.ready))

    @property
    def check(self) -> ReadyCheck:
        return as_check(self.ready)

    def __str__(self) -> str:
        return f"{self.image} (port {self.port})"
