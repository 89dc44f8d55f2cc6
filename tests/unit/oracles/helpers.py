"""Synthetic journals: write exactly the events a Lab would, at chosen times.

Oracles are plain functions over events, so their unit tests script a
journal by hand (each call, attempt and fault at an explicit time) instead
of running a proxy: fast, exact, and every edge is reachable.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faultlab.journal import Journal
from faultlab.journal import schema as ev

TRANSIENT = {"unavailable", "deadline_exceeded", "TransportTimeout", "BrokenResourceError"}


class CallScript:
    def __init__(self, script: Script, call: int, method: str) -> None:
        self.script = script
        self.call = call
        self.method = method
        self.attempts = 0
        self.last_ok: bool | None = None
        self.last_kind: str | None = None
        self.ended = False

    def attempt(
        self,
        error: str | None = None,
        *,
        took: float = 0.005,
        key: str | None = None,
        server: bool = False,
        finish: bool = True,
    ) -> None:
        """One attempt that succeeds (``error=None``) or fails with that kind after ``took``."""
        s = self.script
        self.attempts += 1
        s.record(
            ev.ATTEMPT_START,
            call=self.call,
            attempt=self.attempts,
            method=self.method,
            idempotency_key=key,
        )
        if server:
            s.record(
                ev.SERVER_REQUEST,
                method=self.method,
                request_id=next(s.request_ids),
                idempotency_key=key,
                outcome="ok",
                error_kind=None,
                dt=took / 2,
            )
        if not finish:
            s.t += took
            return
        s.t += took
        if error is None:
            s.record(ev.ATTEMPT_END, call=self.call, attempt=self.attempts, outcome="ok")
        else:
            s.record(
                ev.ATTEMPT_END,
                call=self.call,
                attempt=self.attempts,
                outcome="error",
                error=error,
                error_kind=error,
                transient=error in TRANSIENT,
            )
        self.last_ok = error is None
        self.last_kind = error

    def sleep(self, seconds: float) -> None:
        self.script.t += seconds

    def end(self, outcome: str | None = None, *, value: Any = 3, error: str | None = None) -> None:
        s = self.script
        self.ended = True
        if outcome is None:
            outcome = "value" if self.last_ok else "error"
        if outcome == "error":
            kind = error or self.last_kind or "RuntimeError"
            s.record(ev.CALL_END, call=self.call, outcome="error", error=kind, error_kind=kind)
        else:
            s.record(ev.CALL_END, call=self.call, outcome=outcome, value=repr(value))


class Script:
    """Builds a journal; ``t`` is the scripted clock in seconds."""

    def __init__(self) -> None:
        self.journal = Journal()
        self.t = 0.0
        self.ids = itertools.count(1)
        self.request_ids = itertools.count(1)

    def record(self, kind: str, *, dt: float = 0.0, **fields: Any) -> dict[str, Any]:
        return self.journal.record(kind, t=self.t + dt, **fields)

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    @contextmanager
    def call(
        self, method: str = "add", *, idempotent: bool = True, label: str = ""
    ) -> Iterator[CallScript]:
        call = next(self.ids)
        self.record(
            ev.CALL_START, call=call, label=label or method, method=method, idempotent=idempotent
        )
        script = CallScript(self, call, method)
        yield script
        if not script.ended:
            script.end()

    def reject(
        self,
        method: str = "add",
        *,
        error: str = "CircuitBreakerError",
        took: float = 0.0001,
        outcome: str = "error",
        value: Any = None,
    ) -> None:
        """A call that ended without a single attempt (a breaker said no)."""
        with self.call(method) as c:
            self.t += took
            if outcome == "error":
                c.end("error", error=error)
            else:
                c.end(outcome, value=value)

    def fault(self, decision: str = "rpc_error", **fields: Any) -> None:
        self.record(
            "fault",
            proxy="pair0",
            connection=0,
            direction="upstream",
            toxic="t",
            type=fields.pop("type", "rpc_error"),
            decision=decision,
            **fields,
        )

    def simple(
        self,
        method: str = "add",
        outcomes: list[str | None] | None = None,
        *,
        gap: float = 0.0,
        took: float = 0.005,
        key: str | None = None,
        idempotent: bool = True,
    ) -> None:
        """A call whose attempts end with ``outcomes`` (None = ok), ``gap`` s apart."""
        with self.call(method, idempotent=idempotent) as c:
            for i, outcome in enumerate(outcomes or [None]):
                if i:
                    c.sleep(gap)
                c.attempt(outcome, took=took, key=key)
