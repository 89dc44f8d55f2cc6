"""The fault proxy: engine, proxies, and the Toxiproxy-compatible HTTP API."""

from __future__ import annotations

from faultlab.proxy.engine import ProxyEngine, ProxyHandle
from faultlab.proxy.proxy import Proxy, ProxyError

__all__ = ["Proxy", "ProxyEngine", "ProxyError", "ProxyHandle"]
