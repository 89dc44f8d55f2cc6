"""One typed interface for proxy control, whichever server runs the proxies.

Why: a test (and the pytest plugin) drives faultlab's in-process
:class:`~faultlab.proxy.engine.ProxyEngine` and a Toxiproxy server reached through
:class:`~faultlab.proxy.remote.RemoteToxiproxy` the same way, so it is written once
and runs against either. :class:`ProxyServer` is what both servers offer,
:class:`ProxyControl` what both proxy handles offer; failures are the typed
:class:`~faultlab.proxy.proxy.ProxyError` family on both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from faultlab.proxy.proxy import (
    InvalidProxyRequest,
    ListenFailed,
    ProxyError,
    ProxyExists,
    ProxyNotFound,
)

__all__ = [
    "InvalidProxyRequest",
    "ListenFailed",
    "ProxyControl",
    "ProxyError",
    "ProxyExists",
    "ProxyNotFound",
    "ProxyServer",
]


@runtime_checkable
class ProxyControl(Protocol):
    """One proxy: where it listens, its toxics, on/off (``ProxyHandle``, ``RemoteProxy``)."""

    name: str

    @property
    def listen(self) -> str:
        """The real listen address as Toxiproxy shows it (``host:port``, port 0 resolved)."""
        ...

    @property
    def address(self) -> str:
        """The listen address as a faultlab URI (``tcp://host:port``)."""
        ...

    def info(self) -> dict[str, Any]:
        """The proxy's Toxiproxy JSON."""
        ...

    def add_toxic(
        self,
        type_name: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: Any,
    ) -> dict[str, Any]: ...

    def update_toxic(
        self, name: str, *, toxicity: float | None = None, **attributes: Any
    ) -> dict[str, Any]: ...

    def remove_toxic(self, name: str) -> None: ...

    def toxics(self) -> list[dict[str, Any]]: ...

    def clear(self) -> None:
        """Remove every toxic of this proxy."""
        ...

    def enable(self) -> None: ...

    def disable(self) -> None:
        """Stop listening and close every connection; toxics are kept."""
        ...

    def delete(self) -> None: ...

    def events(self, *, since: int = 0, kinds: list[str] | None = None) -> list[dict[str, Any]]:
        """This proxy's journal events (a plain Toxiproxy has none: NotSupportedByServer)."""
        ...


@runtime_checkable
class ProxyServer(Protocol):
    """A server of proxies (``ProxyEngine`` in-process, ``RemoteToxiproxy`` over HTTP)."""

    @property
    def seed(self) -> int:
        """The session seed behind every random decision (faultlab servers only)."""
        ...

    def create(
        self, name: str, *, listen: str = "127.0.0.1:0", upstream: str, enabled: bool = True
    ) -> ProxyControl:
        """A new proxy (:class:`ProxyExists`, :class:`InvalidProxyRequest`,
        :class:`ListenFailed` when refused)."""
        ...

    def proxy(self, name: str) -> ProxyControl:
        """A handle on an existing proxy (:class:`ProxyNotFound` if there is none)."""
        ...

    def list_proxies(self) -> list[str]:
        """Every proxy's name, sorted."""
        ...

    def delete(self, name: str) -> None: ...

    def reset(self) -> None:
        """Toxiproxy's ``/reset``: enable every proxy, remove every toxic."""
        ...

    def supports(self, toxic_type: str) -> bool:
        """Whether a toxic of this type can be added here."""
        ...

    def unsupported_reason(self, toxic_type: str) -> str | None:
        """Why ``toxic_type`` cannot be added here (a skip reason), or None."""
        ...

    def events(self, *, since: int = 0, kinds: list[str] | None = None) -> list[dict[str, Any]]:
        """Journal events from ``since`` on (optionally only some kinds)."""
        ...

    def close(self) -> None: ...


if TYPE_CHECKING:  # mypy --strict checks that both backends satisfy the interface
    from faultlab.proxy.engine import ProxyEngine, ProxyHandle
    from faultlab.proxy.remote import RemoteProxy, RemoteToxiproxy

    def _conforms(
        engine: ProxyEngine, handle: ProxyHandle, remote: RemoteToxiproxy, proxy: RemoteProxy
    ) -> tuple[ProxyServer, ProxyControl, ProxyServer, ProxyControl]:
        return engine, handle, remote, proxy
