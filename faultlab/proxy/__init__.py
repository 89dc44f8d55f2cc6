"""The fault proxy: engine, proxies, the control interface, and the Toxiproxy HTTP API.

:class:`ProxyServer` / :class:`ProxyControl` are what the in-process
:class:`ProxyEngine` and :class:`~faultlab.proxy.remote.RemoteToxiproxy` both offer;
failures are the :class:`ProxyError` family on both.
"""

from __future__ import annotations

from faultlab.proxy.control import ProxyControl, ProxyServer
from faultlab.proxy.engine import ProxyEngine, ProxyHandle
from faultlab.proxy.proxy import (
    InvalidProxyRequest,
    ListenFailed,
    Proxy,
    ProxyError,
    ProxyExists,
    ProxyNotFound,
)

__all__ = [
    "InvalidProxyRequest",
    "ListenFailed",
    "Proxy",
    "ProxyControl",
    "ProxyEngine",
    "ProxyError",
    "ProxyExists",
    "ProxyHandle",
    "ProxyNotFound",
    "ProxyServer",
]
