"""The backend interface and its registry (entry-point group ``faultlab.backends``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faultlab._registry import Registry
from faultlab.errors import FaultlabError
from faultlab.journal import Journal

__all__ = [
    "BackendError",
    "ServerHandle",
    "ServerSpec",
    "UnsupportedFault",
    "get_backend",
    "register_backend",
]


class BackendError(FaultlabError):
    """A server could not be started, stopped or faulted."""


class UnsupportedFault(BackendError):
    """This backend cannot express the process fault (e.g. kill -9 of a thread)."""


@dataclass(frozen=True)
class ServerSpec:
    """What to serve: ``factory`` is ``"module:callable"`` (importable anywhere) or a callable."""

    factory: str | Callable[[], Any]
    protocol: str
    address: str
    framing: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def serve_command(self, python: str, address: str, events: str, origin: float) -> list[str]:
        """The child command line (``faultlab.lab.serve_target``) for a process or container."""
        cmd = [
            python, "-m", "faultlab.lab.serve_target",
            "--factory", self.factory_ref(),
            "--protocol", self.protocol,
            "--address", address,
            "--events", events,
            "--origin", repr(origin),
        ]  # fmt: skip
        if self.framing:
            cmd += ["--framing", self.framing]
        return cmd

    def factory_ref(self) -> str:
        if isinstance(self.factory, str):
            return self.factory
        module = getattr(self.factory, "__module__", None)
        name = getattr(self.factory, "__qualname__", None)
        if not module or not name or "<" in name:
            raise BackendError(
                "a subprocess or container backend needs an importable factory: pass "
                "'package.module:callable' or a top-level class/function"
            )
        return f"{module}:{name}"


class ServerHandle(ABC):
    """A running server; ``address`` is where it answers."""

    address: str
    pid: int | None = None

    @abstractmethod
    def close(self) -> None:
        """Stop it for good and free everything it holds."""

    def pause(self) -> None:
        raise UnsupportedFault(f"{type(self).__name__} cannot pause")

    def resume(self) -> None:
        raise UnsupportedFault(f"{type(self).__name__} cannot resume")

    def kill(self) -> None:
        raise UnsupportedFault(f"{type(self).__name__} cannot kill -9")

    def restart(self) -> None:
        raise UnsupportedFault(f"{type(self).__name__} cannot restart")

    def stop(self) -> None:
        """Graceful stop (SIGTERM or the backend's equivalent)."""
        self.close()

    @property
    def alive(self) -> bool:
        return True

    @property
    def paused(self) -> bool:
        return False


Backend = Callable[[ServerSpec, Journal], ServerHandle]
_registry: Registry[Backend] = Registry(
    "backend",
    "faultlab.backends",
    [f"faultlab.lab.backends.{name}" for name in ("thread", "subprocess", "docker")],
    missing=lambda name: BackendError(f"unknown backend {name!r}; known: {_registry.known()}"),
    adopt=lambda ep: register_backend(ep.name, ep.load()),
)


def register_backend(name: str, backend: Backend) -> None:
    _registry.register(name, backend)


def get_backend(name: str) -> Backend:
    return _registry.get(name)
