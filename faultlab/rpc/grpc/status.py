"""gRPC status codes and faultlab's error kinds, both ways, through trailing metadata.

A server aborts with a standard status any gRPC client understands and puts the kind,
code and data in trailing metadata; a client reads our metadata first, else the status.
"""

from __future__ import annotations

import json
import re
from typing import Any, NoReturn

import grpc  # type: ignore[import-untyped]

from faultlab.rpc.errors import (
    ApplicationError,
    DeadlineExceeded,
    InternalError,
    InvalidParams,
    MethodNotFound,
    RpcError,
    ServiceUnavailable,
    error_for,
)
from faultlab.rpc.grpc.codes import STATUS_CODE_FOR_KIND
from faultlab.rpc.messages import ErrorInfo

__all__ = [
    "CODE_KEY",
    "DATA_KEY",
    "IDEMPOTENCY_KEY",
    "KIND_KEY",
    "STATUS_FOR_KIND",
    "abort",
    "error_from",
]

KIND_KEY = "faultlab-kind"
CODE_KEY = "faultlab-code"
DATA_KEY = "faultlab-data-bin"  # "-bin": gRPC carries the value as raw bytes
IDEMPOTENCY_KEY = "idempotency-key"

_SC = grpc.StatusCode
_BY_CODE = {code.value[0]: code for code in _SC}
STATUS_FOR_KIND: dict[str, Any] = {
    kind: _BY_CODE[number] for kind, number in STATUS_CODE_FOR_KIND.items()
}
# For statuses that come without our metadata (a third-party server, grpcio itself).
# ABORTED and RESOURCE_EXHAUSTED are the ones gRPC's own guidance calls retryable.
_KIND_FOR_STATUS: dict[Any, type[RpcError]] = {
    _SC.UNAVAILABLE: ServiceUnavailable,
    _SC.ABORTED: ServiceUnavailable,
    _SC.RESOURCE_EXHAUSTED: ServiceUnavailable,
    _SC.DEADLINE_EXCEEDED: DeadlineExceeded,
    _SC.UNIMPLEMENTED: MethodNotFound,
    _SC.INVALID_ARGUMENT: InvalidParams,
    _SC.OUT_OF_RANGE: InvalidParams,
    _SC.FAILED_PRECONDITION: ApplicationError,
    _SC.NOT_FOUND: ApplicationError,
    _SC.ALREADY_EXISTS: ApplicationError,
    _SC.PERMISSION_DENIED: ApplicationError,
    _SC.UNAUTHENTICATED: ApplicationError,
}


def abort(context: Any, error: ErrorInfo) -> NoReturn:
    metadata: list[tuple[str, str | bytes]] = [(KIND_KEY, error.kind), (CODE_KEY, str(error.code))]
    if error.data is not None:
        metadata.append((DATA_KEY, json.dumps(error.data, default=repr).encode()))
    context.set_trailing_metadata(tuple(metadata))
    context.abort(STATUS_FOR_KIND.get(error.kind, _SC.INTERNAL), error.message)
    raise AssertionError("grpc context.abort returned")  # pragma: no cover


def error_from(exc: Any) -> RpcError:
    """A typed error for a failed call: our metadata's kind, else the gRPC status."""
    status = exc.code() if callable(getattr(exc, "code", None)) else _SC.UNKNOWN
    details = (exc.details() if callable(getattr(exc, "details", None)) else None) or ""
    trailing = exc.trailing_metadata() if callable(getattr(exc, "trailing_metadata", None)) else ()
    metadata = dict(trailing or ())
    kind = metadata.get(KIND_KEY)
    if kind:
        data = None
        raw = metadata.get(DATA_KEY)
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
        code_text = metadata.get(CODE_KEY, "")
        code = int(code_text) if re.fullmatch(r"-?\d+", str(code_text)) else None
        return error_for(kind=str(kind), code=code, message=details, data=data)
    cls = _KIND_FOR_STATUS.get(status, InternalError)
    name = getattr(status, "name", str(status))
    return cls(details or name.lower().replace("_", " "), data={"grpc_status": name})
