"""Protocol-independent call and reply values that every protocol encodes its own way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faultlab.rpc.errors import RpcError, error_for

__all__ = ["ErrorInfo", "Request", "Response"]

RequestId = int | str | None


@dataclass(frozen=True, slots=True)
class Request:
    """One call. ``id is None`` with ``notification=True`` expects no reply.

    ``meta`` carries what some protocols put beside the params: the schema
    version, an idempotency key, a deadline.
    """

    method: str
    params: list[Any] | dict[str, Any] = field(default_factory=list)
    id: RequestId = None
    notification: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error reply: a protocol-independent ``kind`` plus the native code."""

    kind: str
    code: int
    message: str
    data: Any = None

    @classmethod
    def from_exception(cls, exc: RpcError) -> ErrorInfo:
        return cls(exc.kind, exc.code, exc.message, exc.data)

    def to_exception(self) -> RpcError:
        return error_for(kind=self.kind, code=self.code, message=self.message, data=self.data)


@dataclass(frozen=True, slots=True)
class Response:
    id: RequestId
    result: Any = None
    error: ErrorInfo | None = None

    def unwrap(self) -> Any:
        """The result, or the typed :class:`RpcError` the reply carries."""
        if self.error is not None:
            raise self.error.to_exception()
        return self.result
