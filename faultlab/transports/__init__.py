"""Transport registry: one module per IPC mechanism, looked up by URI scheme.

Third parties add a transport through the ``faultlab.transports`` entry-point
group (a ``Transport`` subclass or instance), without forking.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

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
_registry: dict[str, Transport] = {}
_loaded = False


def register(transport: Transport) -> Transport:
    """Add (or replace) the transport for its scheme."""
    _registry[transport.scheme] = transport
    return transport


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in _BUILTIN:
        importlib.import_module(f"faultlab.transports.{name}")
    for ep in entry_points(group="faultlab.transports"):
        obj = ep.load()
        register(obj() if isinstance(obj, type) else obj)


def get(scheme: str) -> Transport:
    """The transport registered for ``scheme`` (raises :class:`UnsupportedTransport`)."""
    _load()
    try:
        return _registry[scheme]
    except KeyError:
        known = ", ".join(sorted(_registry))
        raise UnsupportedTransport(f"unknown transport scheme {scheme!r}; known: {known}") from None


def all_transports() -> list[Transport]:
    _load()
    return [_registry[k] for k in sorted(_registry, key=_order)]


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
