"""RPC errors a client raises, one class per protocol-independent *kind*.

Each protocol maps its native error (JSON-RPC error object, XML-RPC fault,
msgpack-RPC error, HTTP status, gRPC status) to one of these kinds and back,
so oracles and users can ask "was it transient?" without knowing the protocol.
"""

from __future__ import annotations

from typing import Any, ClassVar

from faultlab.errors import FaultlabError

__all__ = [
    "KINDS",
    "ApplicationError",
    "DeadlineExceeded",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "ParseError",
    "RpcError",
    "ServiceUnavailable",
    "VersionMismatch",
    "error_for",
]


class RpcError(FaultlabError):
    """The server answered a call with an error (or the call could not be made sense of)."""

    kind: ClassVar[str] = "rpc_error"
    default_code: ClassVar[int] = -32603
    transient: ClassVar[bool] = False
    """True for errors a retry may cure (unavailable, deadline); False for the rest."""

    def __init__(self, message: str, *, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = self.default_code if code is None else code
        self.data = data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code})"


class ParseError(RpcError):
    kind = "parse_error"
    default_code = -32700


class InvalidRequest(RpcError):
    kind = "invalid_request"
    default_code = -32600


class MethodNotFound(RpcError):
    kind = "method_not_found"
    default_code = -32601


class InvalidParams(RpcError):
    kind = "invalid_params"
    default_code = -32602


class InternalError(RpcError):
    kind = "internal_error"
    default_code = -32603


class ApplicationError(RpcError):
    """The method itself raised (a domain error such as division by zero)."""

    kind = "application_error"
    default_code = -32500


class ServiceUnavailable(RpcError):
    """The server (or a fault) said "not now": HTTP 503, gRPC UNAVAILABLE. Retryable."""

    kind = "unavailable"
    default_code = -32050
    transient = True


class DeadlineExceeded(RpcError):
    kind = "deadline_exceeded"
    default_code = -32051
    transient = True


class VersionMismatch(RpcError):
    """The peers speak different protocol or schema versions; named on both sides."""

    kind = "version_mismatch"
    default_code = -32052

    def __init__(
        self,
        message: str = "",
        *,
        ours: int | None = None,
        theirs: int | None = None,
        code: int | None = None,
        data: Any = None,
    ) -> None:
        if isinstance(data, dict):
            ours = data.get("theirs", ours) if ours is None else ours
            theirs = data.get("ours", theirs) if theirs is None else theirs
        message = message or f"version mismatch: we speak {ours}, the peer speaks {theirs}"
        super().__init__(message, code=code, data=data)
        self.ours = ours
        self.theirs = theirs


KINDS: dict[str, type[RpcError]] = {
    cls.kind: cls
    for cls in (
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        InternalError,
        ApplicationError,
        ServiceUnavailable,
        DeadlineExceeded,
        VersionMismatch,
    )
}
_BY_CODE = {cls.default_code: cls for cls in KINDS.values()}


def error_for(
    *, kind: str | None = None, code: int | None = None, message: str = "", data: Any = None
) -> RpcError:
    """Build the error class for ``kind`` (or, failing that, a standard ``code``)."""
    cls = KINDS.get(kind or "") or _BY_CODE.get(code if code is not None else 0) or ApplicationError
    if cls is VersionMismatch:
        return VersionMismatch(message, code=code, data=data)
    return cls(message or cls.kind.replace("_", " "), code=code, data=data)
