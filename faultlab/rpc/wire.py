"""Small shared pieces of the protocol modules: the wire error and code-to-kind mapping."""

from __future__ import annotations

from faultlab.errors import RemoteProtocolError
from faultlab.rpc.errors import KINDS

__all__ = ["WireError", "error_kind_for_code"]


class WireError(RemoteProtocolError):
    """The peer's message breaks the protocol (not JSON, wrong shape, bad header)."""


_KIND_BY_CODE = {cls.default_code: kind for kind, cls in KINDS.items()}


def error_kind_for_code(code: int) -> str:
    """Standard codes (JSON-RPC, XML-RPC interop spec) map to kinds; others are application."""
    return _KIND_BY_CODE.get(code, "application_error")
