"""Transport registry: one module per IPC mechanism, looked up by URI scheme.

Third parties add a transport through the ``faultlab.transports`` entry-point
group (a ``Transport`` subclass or instance), without forking.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any

from faultlab._registry import Registry
from faultlab.errors import UnsupportedTransport
from faultlab.streams import ByteStream, Listener, MessageStream
from faultlab.transports.base import Capabilities, ParsedAddress, Transport, parse_address

__all__ = [
    "Capabilities",
    "ParsedAddress",
    "Transport",
    "all_transports",
    "connect",
    "get",
    "listen",
    "parse_address",
    "register",
]

_BUILTIN = ("tcp", "tls", "udp", "unix", "unixgram", "fifo", "shm", "mq", "npipe")


def _adopt(ep: EntryPoint) -> None:
    obj = ep.load()
    register(obj() if isinstance(obj, type) else obj)


_registry: Registry[Transport] = Registry(
    "transport",
    "faultlab.transports",
    [f"faultlab.transports.{name}" for name in _BUILTIN],
    missing=lambda scheme: UnsupportedTransport(
        f"unknown transport scheme {scheme!r}; known: {_registry.known()}"
    ),
    adopt=_adopt,
)


def register(transport: Transport) -> Transport:
    """Add (or replace) the transport for its scheme."""
    return _registry.register(transport.scheme, transport)


def get(scheme: str) -> Transport:
    """The transport registered for ``scheme`` (raises :class:`UnsupportedTransport`)."""
    return _registry.get(scheme)


def all_transports() -> list[Transport]:
    return [_registry.get(k) for k in sorted(_registry.names(), key=_order)]


def _order(scheme: str) -> tuple[int, str]:
    return (_BUILTIN.index(scheme) if scheme in _BUILTIN else len(_BUILTIN), scheme)


def listen(address: str, **options: Any) -> Listener[Any]:
    """Listen on ``address`` with the transport its scheme names."""
    transport = get(parse_address(address).scheme)
    transport.check_available()
    return transport.listen(address, **options)


def connect(
    address: str, *, timeout: float | None = None, **options: Any
) -> ByteStream | MessageStream:
    """Connect to ``address`` with the transport its scheme names."""
    transport = get(parse_address(address).scheme)
    transport.check_available()
    return transport.connect(address, timeout=timeout, **options)
