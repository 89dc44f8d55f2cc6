"""Helpers shared by the bundled suites (not a test module)."""

from __future__ import annotations

import math
from typing import Any

from faultlab.errors import FaultlabError, RemoteProtocolError, TransportError
from faultlab.rpc.errors import RpcError

__all__ = ["declared_transient", "equivalent", "message_transport"]


def equivalent(a: Any, b: Any) -> bool:
    """Equal as an RPC result: numbers compare by value (gRPC carries doubles), NaN == NaN."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(equivalent(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(equivalent(a[k], b[k]) for k in a)
    return bool(a == b)


def declared_transient(exc: BaseException) -> bool:
    """An error a fault may legitimately cause: transient RPC errors and transport failures."""
    if isinstance(exc, RpcError):
        return exc.transient
    return isinstance(exc, TransportError | RemoteProtocolError) or (
        isinstance(exc, FaultlabError) and type(exc).__name__ == "BreakerOpen"
    )


def message_transport(scheme: str) -> bool:
    from faultlab import transports

    return transports.get(scheme).capabilities.kind == "message"


def since(pair: Any, seq: int) -> list[dict[str, Any]]:
    """The journal from event ``seq`` on (one test's share of a reused pair's journal)."""
    return [e for e in pair.events() if e["seq"] >= seq]


def mark(pair: Any) -> int:
    """The next event's sequence number: pass it to :func:`since` after the test's calls."""
    return int(pair.journal.record("mark", proxy=pair.name)["seq"])
