"""A client that journals every attempt, and logical calls that group attempts.

Black-box correlation of attempts to logical calls (resilience.md §0): one
logical call at a time per pair, marked by :func:`logical_call`; every
``client.call`` inside it is one attempt of that call.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from faultlab.errors import FaultlabError, RemoteProtocolError, TransportError
from faultlab.journal import Journal
from faultlab.journal import schema as ev
from faultlab.journal.schema import short_repr
from faultlab.rpc.client import CallingClient
from faultlab.rpc.errors import RpcError

__all__ = ["CallRecord", "InstrumentedClient", "classify", "logical_call", "short_repr"]

_current: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar(
    "faultlab_call", default=None
)
_ids = itertools.count(1)
_ids_lock = threading.Lock()


def classify(exc: BaseException) -> tuple[str, bool]:
    """(error kind, transient?) of an exception, for the journal and the oracles."""
    if isinstance(exc, RpcError):
        return exc.kind, exc.transient
    if isinstance(exc, TransportError):
        return type(exc).__name__, True
    if isinstance(exc, RemoteProtocolError):
        return type(exc).__name__, True
    return type(exc).__name__, False


@dataclass
class CallRecord:
    call: int
    label: str
    journal: Journal
    attempts: int = 0
    outcome: str | None = None
    value: Any = None
    error: BaseException | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def mark_fallback(self, reason: str = "") -> None:
        """Tell the journal the value returned is a fallback, not the primary result."""
        self.extra["fallback"] = True
        self.journal.record(ev.FALLBACK, call=self.call, reason=reason)


@contextmanager
def logical_call(
    journal: Journal,
    label: str = "",
    *,
    method: str | None = None,
    idempotent: bool = True,
    params: Any = None,
    proxy: str | None = None,
    idempotency_key: str | None = None,
    request_id: str | None = None,
) -> Iterator[CallRecord]:
    """Journal one logical call around the block; attempts inside belong to it.

    ``proxy`` (a proxy's name) goes into ``call_start``, so attempts a black-box client
    made through that proxy (its ``wire_*`` events) can be told apart from another pair's;
    ``idempotency_key`` / ``request_id`` (the ``Idempotency-Key`` / ``X-Request-Id`` the
    client sends) tell concurrent calls' exchanges apart.
    """
    with _ids_lock:
        call_id = next(_ids)
    record = CallRecord(call_id, label, journal)
    given = {"proxy": proxy, "idempotency_key": idempotency_key, "request_id": request_id}
    extra: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    journal.record(
        ev.CALL_START,
        call=call_id,
        label=label,
        method=method,
        idempotent=idempotent,
        params=short_repr(params),
        **extra,
    )
    token = _current.set(record)
    started = time.monotonic()
    try:
        yield record
    except BaseException as exc:
        kind, _ = classify(exc)
        journal.record(
            ev.CALL_END,
            call=call_id,
            outcome="error",
            error=type(exc).__name__,
            error_kind=kind,
            message=str(exc)[:300],
            attempts=record.attempts,
            duration=time.monotonic() - started,
        )
        raise
    else:
        outcome = "fallback" if record.extra.get("fallback") else "value"
        journal.record(
            ev.CALL_END,
            call=call_id,
            outcome=outcome,
            value=short_repr(record.value),
            value_json=_jsonable(record.value),
            attempts=record.attempts,
            duration=time.monotonic() - started,
        )
    finally:
        _current.reset(token)


def _jsonable(value: Any) -> Any:
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


class InstrumentedClient(CallingClient):
    """Wraps any faultlab client (``Client``, ``GrpcClient``): each call is a journaled attempt."""

    def __init__(self, inner: Any, *, journal: Journal) -> None:
        self.inner = inner
        self.journal = journal
        self.address = getattr(inner, "address", "")
        self._orphans = itertools.count(1)

    def close(self) -> None:
        self.inner.close()

    def call(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> Any:
        record = _current.get()
        if record is not None:
            record.attempts += 1
            call_id, attempt = record.call, record.attempts
        else:
            call_id, attempt = None, next(self._orphans)
        key = idempotency_key if idempotency_key is not None else kwargs.get("key")
        self.journal.record(
            ev.ATTEMPT_START, call=call_id, attempt=attempt, method=method, idempotency_key=key
        )
        try:
            result = self.inner.call(
                method, *args, timeout=timeout, idempotency_key=idempotency_key, **kwargs
            )
        except FaultlabError as exc:
            kind, transient = classify(exc)
            self.journal.record(
                ev.ATTEMPT_END,
                call=call_id,
                attempt=attempt,
                outcome="error",
                error=type(exc).__name__,
                error_kind=kind,
                transient=transient,
                message=str(exc)[:300],
            )
            raise
        self.journal.record(ev.ATTEMPT_END, call=call_id, attempt=attempt, outcome="ok")
        if record is not None:
            record.value = result
        return result
