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
from faultlab.journal.timeline import Attempt, Call, Timeline
from faultlab.journal.wire import http_kind

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


# ---- black-box HTTP clients: attempts read from the proxy's wire ------------------------------
class WireCall:
    """One logical call of a black-box HTTP client, its attempts as the wire shows them."""

    def __init__(self, script: WireScript, call: int, method: str, label: str) -> None:
        self.script = script
        self.call = call
        self.method = method
        self.label = label
        self.attempts: list[Attempt] = []
        self.end_event: dict[str, Any] | None = None
        self.start_event = script.event(ev.CALL_START, call=call, label=label)
        self.outcome: str | None = None
        self.error_kind: str | None = None

    def attempt(
        self,
        status: int | None = 200,
        *,
        kind: str | None = None,
        took: float = 0.005,
        retry_after: float | None = None,
        method: str | None = None,
        unread: bool = False,
    ) -> None:
        """An exchange answered with ``status``, or (``kind=``) a wire failure without one;
        ``unread``: no request was read (the proxy could not reach the server), so the
        attempt has no HTTP method."""
        s = self.script
        http_method = None if unread else (method or self.method)
        start = s.event(ev.WIRE_REQUEST, method=http_method)
        t0 = s.t
        s.t += took
        outcome: str
        error_kind: str | None
        if kind is not None:
            status, outcome, error_kind = None, "error", kind
            end = s.event(ev.WIRE_UNANSWERED, error_kind=kind)
        else:
            assert status is not None
            failed = status >= 400
            outcome = "error" if failed else "ok"
            error_kind = http_kind(status) if failed else None
            end = s.event(ev.WIRE_RESPONSE, status=status, retry_after=retry_after)
        self.attempts.append(
            Attempt(
                call=self.call,
                number=len(self.attempts) + 1,
                method=f"{http_method} /items" if http_method else None,
                key=None,
                t_start=t0,
                t_end=s.t,
                outcome=outcome,
                error=error_kind,
                error_kind=error_kind,
                transient=None,
                events=(start, end),
                source="wire",
                http_method=http_method,
                path="/items",
                status=status,
                retry_after=retry_after,
            )
        )

    def sleep(self, seconds: float) -> None:
        self.script.t += seconds

    def end(self, outcome: str | None = None, *, error_kind: str | None = None) -> None:
        """The caller gets its result: by default the last attempt's (an error or a value)."""
        last = self.attempts[-1] if self.attempts else None
        if outcome is None:
            outcome = "error" if last is not None and last.failed else "value"
        self.outcome = outcome
        if outcome == "error":
            self.error_kind = error_kind or (last.error_kind if last is not None else None)
        self.end_event = self.script.event(
            ev.CALL_END, call=self.call, outcome=outcome, error_kind=self.error_kind
        )

    def build(self) -> Call:
        return Call(
            id=self.call,
            label=self.label,
            method=self.label,
            idempotent=None,
            t_start=float(self.start_event["t"]),
            t_end=None if self.end_event is None else float(self.end_event["t"]),
            outcome=self.outcome,
            error=self.error_kind,
            error_kind=self.error_kind,
            value=None,
            attempts=tuple(self.attempts),
            fallback_events=(),
            start_event=self.start_event,
            end_event=self.end_event,
        )


class WireScript:
    """Builds a :class:`Timeline` of wire attempts directly (the journal's wire events are
    read by the timeline; here the attempts are written as the oracle will see them)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.seq = itertools.count(1)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.calls: list[WireCall] = []

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        e = {"kind": kind, "t": self.t, "seq": next(self.seq), **fields}
        self.events.append(e)
        return e

    def sleep(self, seconds: float) -> None:
        self.t += seconds

    @contextmanager
    def call(self, method: str = "GET", *, label: str = "") -> Iterator[WireCall]:
        call = WireCall(self, next(self.ids), method, label or f"{method} /items")
        yield call
        if call.end_event is None:
            call.end()
        self.calls.append(call)

    def timeline(self) -> Timeline:
        return Timeline(list(self.events), [c.build() for c in self.calls])
