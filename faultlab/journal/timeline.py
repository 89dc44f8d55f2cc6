"""The one reading of a journal: calls, attempts, connections, fault windows, faults that acted.

Oracles and reports never look at live objects or name event kinds themselves: they read a
:class:`Timeline` (logical calls made of attempts, for oracles) or an :class:`Index` (fault
windows, acting times and test cases per clock, for reports), both built here from the kinds of
:mod:`faultlab.journal.schema`. :func:`acted` is the only definition of "a fault touched
traffic", so an oracle's vacuity and a report's "not triggered" cannot disagree.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from faultlab.journal import schema as ev
from faultlab.journal import wire

__all__ = [
    "Attempt",
    "Call",
    "Connection",
    "FaultWindow",
    "Index",
    "Source",
    "Timeline",
    "acted",
    "connections",
    "events_of",
    "index",
    "timeline",
]


@runtime_checkable
class _HasEvents(Protocol):
    def events(self) -> list[dict[str, Any]]: ...


Source = _HasEvents | Iterable[Mapping[str, Any]]
"""A Journal, a Pair (its ``events()`` merges server processes' events), or a list of events."""


def events_of(source: Source) -> list[dict[str, Any]]:
    """A list of event dicts from a journal, a pair or an iterable, in ``seq`` order."""
    if isinstance(source, _HasEvents):
        raw: Iterable[Mapping[str, Any]] = source.events()
    else:
        raw = source
    items = [dict(e) for e in raw]
    if all("seq" in e for e in items):
        items.sort(key=lambda e: e["seq"])
    return items


def acted(event: Mapping[str, Any]) -> bool:
    """Did this event change traffic or the server (a fault that did something)?

    A ``fault`` acted unless its decision is passive (:data:`~faultlab.journal.schema.
    PASSIVE_DECISIONS`) or it is a ``delay`` of 0 ms; a ``process`` event acted if it paused,
    killed, stopped or restarted the server; ``upstream_failed`` acted (the client's connection
    was cut because the server could not be reached).
    """
    kind = event.get("kind")
    if kind == ev.FAULT:
        decision = event.get("decision")
        if decision in ev.PASSIVE_DECISIONS:
            return False
        return not (decision == "delay" and not event.get("delay_ms"))
    if kind == ev.PROCESS:
        return event.get("action") in ev.PROCESS_FAULTS
    return kind == ev.UPSTREAM_FAILED


@dataclass(frozen=True, eq=False)
class Attempt:
    """One try of a logical call, as the instrumented client saw it."""

    call: int | None
    number: int
    method: str | None
    key: str | None
    t_start: float
    t_end: float | None
    outcome: str | None
    error: str | None
    error_kind: str | None
    transient: bool | None
    events: tuple[dict[str, Any], ...]
    source: str = "client"
    """``"client"``: journaled by an instrumented client; ``"wire"``: read from the proxy's
    ``wire_request`` / ``wire_response`` events (a black-box client)."""
    http_method: str | None = None
    """The HTTP method of a wire attempt (``POST``); ``None`` when not carried over HTTP."""
    path: str | None = None
    """The HTTP request target of a wire attempt (``/items/1?x=2``)."""
    status: int | None = None
    """The HTTP status the client got (``None``: no response, or not HTTP)."""
    retry_after: float | None = None
    """Seconds the response's ``Retry-After`` asked the client to wait (``None``: absent)."""
    connection: int | None = None
    """The proxy connection a wire attempt travelled on."""
    end_exact: bool = True
    """False when ``t_end`` is only an upper bound on when the client saw the failure: a
    wire attempt the client gave up on ends when its close reaches the proxy, which can be
    well after its timeout fired (a delay's lower bound cannot be judged from it)."""
    protocol: str | None = None
    """The RPC protocol a wire attempt was read as (``"grpc"``); ``None``: plain HTTP or a
    client-journaled attempt."""
    deadline: float | None = None
    """Seconds the attempt told the server it had left (gRPC ``grpc-timeout``); ``None``:
    none sent (under a black hole such an attempt waits forever)."""
    pushback_ms: int | None = None
    """The server's ``grpc-retry-pushback-ms`` (negative: "do not retry"); ``None``: absent."""
    previous_attempts: int | None = None
    """The ``grpc-previous-rpc-attempts`` the client sent (absent on a first attempt)."""

    @property
    def failed(self) -> bool:
        return self.outcome == "error"

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def describe(self) -> str:
        result = {
            "ok": "succeeded",
            "error": f"failed with {self.error_kind or self.error}",
            None: "never finished",
        }.get(self.outcome, str(self.outcome))
        return f"attempt {self.number} {result}"


@dataclass(frozen=True, eq=False)
class Call:
    """One logical call: what the caller asked for, its attempts, and what it got back."""

    id: int
    label: str
    method: str | None
    idempotent: bool | None
    t_start: float
    t_end: float | None
    outcome: str | None
    error: str | None
    error_kind: str | None
    value: str | None
    attempts: tuple[Attempt, ...]
    fallback_events: tuple[dict[str, Any], ...]
    start_event: dict[str, Any]
    end_event: dict[str, Any] | None

    @property
    def name(self) -> str:
        """How messages name it: ``call 3 (counter.incr)``."""
        what = self.method or self.label
        return f"call {self.id} ({what})" if what else f"call {self.id}"

    @property
    def rejected(self) -> bool:
        """Ended without a single attempt (a breaker said no, or the client gave up before)."""
        return self.end_event is not None and not self.attempts

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def events(self) -> list[dict[str, Any]]:
        items = [self.start_event, *self.fallback_events]
        for attempt in self.attempts:
            items.extend(attempt.events)
        if self.end_event is not None:
            items.append(self.end_event)
        return sorted(items, key=lambda e: e.get("seq", 0))


@dataclass
class Timeline:
    """Everything an oracle needs from one journal excerpt, indexed once."""

    events: list[dict[str, Any]]
    calls: list[Call] = field(default_factory=list)
    orphans: list[Attempt] = field(default_factory=list)

    @property
    def attempts(self) -> list[Attempt]:
        """Every attempt, of logical calls and orphans, by start time."""
        found = [a for c in self.calls for a in c.attempts] + self.orphans
        return sorted(found, key=lambda a: (a.t_start, a.events[0].get("seq", 0)))

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("kind") in kinds]

    def acting_faults(self) -> list[dict[str, Any]]:
        return [e for e in self.events if acted(e)]

    def faults_between(self, t0: float, t1: float) -> list[dict[str, Any]]:
        return [e for e in self.acting_faults() if t0 <= e.get("t", t0) <= t1]

    def touched(self) -> bool:
        """Did any fault act on traffic (or the server process) in this excerpt?"""
        return any(acted(e) for e in self.events)

    def window(
        self, t0: float, t1: float, kinds: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        wanted = set(kinds) if kinds is not None else None
        return [
            e
            for e in self.events
            if t0 <= e.get("t", t0) <= t1 and (wanted is None or e.get("kind") in wanted)
        ]


def _attempt(start: dict[str, Any], end: dict[str, Any] | None) -> Attempt:
    return Attempt(
        call=start.get("call"),
        number=_int(start.get("attempt")),
        method=start.get("method"),
        key=start.get("idempotency_key"),
        t_start=float(start["t"]),
        t_end=None if end is None else float(end["t"]),
        outcome=None if end is None else end.get("outcome"),
        error=None if end is None else end.get("error"),
        error_kind=None if end is None else end.get("error_kind"),
        transient=None if end is None else end.get("transient"),
        events=(start,) if end is None else (start, end),
    )


def timeline(source: Source | Timeline) -> Timeline:
    """Rebuild logical calls from a journal excerpt (idempotent on a Timeline)."""
    if isinstance(source, Timeline):
        return source
    return _build(events_of(source))


def _int(value: Any) -> int:
    """An attempt number as written, or 0 (a file from elsewhere may hold anything)."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _hk(value: Any) -> Any:
    """A call id usable as a dict key (a hand-edited file may put a list there)."""
    return value if value is None or isinstance(value, int | str | float) else repr(value)


def _build(events: list[dict[str, Any]]) -> Timeline:
    starts: dict[int, dict[str, Any]] = {}
    ends: dict[int, dict[str, Any]] = {}
    fallbacks: dict[Any, list[dict[str, Any]]] = {}
    attempt_starts: dict[tuple[Any, int], dict[str, Any]] = {}
    attempt_ends: dict[tuple[Any, int], dict[str, Any]] = {}
    orphan_order: list[tuple[Any, int]] = []
    order: list[int] = []
    for e in events:
        kind = e.get("kind")
        if kind == ev.CALL_START and e.get("call") is not None:
            starts[_hk(e["call"])] = e
            order.append(_hk(e["call"]))
        elif kind == ev.CALL_END:
            ends[_hk(e.get("call"))] = e
        elif kind == ev.FALLBACK:
            fallbacks.setdefault(_hk(e.get("call")), []).append(e)
        elif kind == ev.ATTEMPT_START:
            key = (_hk(e.get("call")), _int(e.get("attempt")))
            if e.get("call") is None:
                key = (("orphan", e.get("seq")), key[1])
                orphan_order.append(key)
            attempt_starts[key] = e
        elif kind == ev.ATTEMPT_END:
            if e.get("call") is None:
                # orphans: match the latest unmatched start with this attempt number
                for okey in reversed(orphan_order):
                    if okey[1] == e.get("attempt") and okey not in attempt_ends:
                        attempt_ends[okey] = e
                        break
            else:
                attempt_ends[(_hk(e.get("call")), _int(e.get("attempt")))] = e
    by_call: dict[Any, list[Attempt]] = {}
    orphans: list[Attempt] = []
    for key, start in attempt_starts.items():
        attempt = _attempt(start, attempt_ends.get(key))
        if isinstance(key[0], tuple):
            orphans.append(attempt)
        else:
            by_call.setdefault(key[0], []).append(attempt)
    if not order and events and _has_wire(events):
        _whole_excerpt_call(events, starts, ends, order)
    wire = _wire_attempts(events, starts, ends, order, by_call)
    calls: list[Call] = []
    for call_id in order:
        start = starts[call_id]
        end = ends.get(call_id)
        attempts = tuple(sorted(by_call.pop(call_id, []), key=lambda a: a.number))
        if not attempts:
            attempts = wire.pop(call_id, ())
        method = start.get("method") or (attempts[0].method if attempts else None)
        calls.append(
            Call(
                id=call_id,
                label=str(start.get("label") or ""),
                method=method,
                idempotent=start.get("idempotent"),
                t_start=float(start["t"]),
                t_end=None if end is None else float(end["t"]),
                outcome=None if end is None else end.get("outcome"),
                error=None if end is None else end.get("error"),
                error_kind=None if end is None else end.get("error_kind"),
                value=None if end is None else end.get("value"),
                attempts=attempts,
                fallback_events=tuple(fallbacks.get(call_id, ())),
                start_event=start,
                end_event=end,
            )
        )
    # attempts of calls whose call_start is outside the excerpt count as orphans
    for leftover in by_call.values():
        orphans.extend(leftover)
    orphans.extend(wire.pop(None, ()))
    orphans.sort(key=lambda a: a.t_start)
    return Timeline(events, _keys_from_server(events, calls), orphans)


def _keys_from_server(events: list[dict[str, Any]], calls: list[Call]) -> list[Call]:
    """An attempt that journaled no idempotency key takes the one the server read from the
    request it answered (a key passed positionally, in a body the client does not parse):
    a key counts whatever carried it. Only an unambiguous match is taken."""
    served = sorted(
        (float(e["t"]), e.get("method"), e["idempotency_key"])
        for e in events
        if e.get("kind") == ev.SERVER_REQUEST
        and isinstance(e.get("idempotency_key"), str)
        and isinstance(e.get("t"), int | float)
    )
    if not served:
        return calls
    times = [t for t, _, _ in served]
    found = []
    for call in calls:
        attempts = tuple(_keyed(a, served, times) for a in call.attempts)
        changed = any(a is not b for a, b in zip(attempts, call.attempts, strict=True))
        found.append(replace(call, attempts=attempts) if changed else call)
    return found


def _keyed(attempt: Attempt, served: list[tuple[float, Any, str]], times: list[float]) -> Attempt:
    if attempt.key or attempt.t_end is None:
        return attempt
    lo = bisect.bisect_left(times, attempt.t_start)
    hi = bisect.bisect_right(times, attempt.t_end)
    keys = {
        key
        for _, method, key in served[lo:hi]
        if attempt.method is None or method is None or method == attempt.method
    }
    return replace(attempt, key=keys.pop()) if len(keys) == 1 else attempt


# ---- attempts seen on the wire ---------------------------------------------------------------
WHOLE_EXCERPT_CALL = 0
"""The id of the one logical call an excerpt with wire exchanges and no ``call_start`` is
read as (in the pytest plugin: the test)."""


def _has_wire(events: list[dict[str, Any]]) -> bool:
    return any(e.get("kind") in (ev.WIRE_REQUEST, ev.UPSTREAM_FAILED) for e in events)


def _whole_excerpt_call(
    events: list[dict[str, Any]],
    starts: dict[Any, dict[str, Any]],
    ends: dict[Any, dict[str, Any]],
    order: list[Any],
) -> None:
    """No logical call was marked: the whole excerpt is one call (one test, one call)."""
    t0 = min(float(e["t"]) for e in events)
    t1 = max(float(e["t"]) for e in events)
    label = "the whole excerpt (no logical_call marked)"
    starts[WHOLE_EXCERPT_CALL] = {
        "kind": ev.CALL_START, "call": WHOLE_EXCERPT_CALL, "t": t0, "seq": -1, "label": label,
    }  # fmt: skip
    ends[WHOLE_EXCERPT_CALL] = {
        "kind": ev.CALL_END, "call": WHOLE_EXCERPT_CALL, "t": t1, "seq": -1, "outcome": None,
    }  # fmt: skip
    order.append(WHOLE_EXCERPT_CALL)


def _wire_outcome(end: dict[str, Any] | None) -> tuple[str | None, str | None, str | None, bool]:
    """(outcome, error_kind, error, transient) of an exchange by its closing event."""
    if end is None:
        return None, None, None, False
    if end.get("kind") == ev.WIRE_RESPONSE:
        status = _int(end.get("status"))
        if status >= 400:
            return (
                "error",
                wire.http_kind(status),
                f"HTTP {status}",
                wire.is_transient_status(status),
            )
        if end.get("rpc_error"):
            kind = str(end["rpc_error"])
            return "error", kind, f"{kind} (code {end.get('rpc_code')})", bool(end.get("transient"))
        return "ok", None, None, False
    kind = str(end.get("error_kind") or wire.CLOSED_WITHOUT_RESPONSE)
    return "error", kind, str(end.get("error") or kind), True


def _wire_attempt(
    start: dict[str, Any],
    end: dict[str, Any] | None,
    call: Any,
    n: int,
    decided: float | None = None,
) -> Attempt:
    """An attempt from one exchange. ``decided``: when a fault had the proxy answer it
    itself (``replied``): the answer cannot have reached the client earlier, while the
    ``wire_response`` stamp can trail the write (an h2 answer is journaled as it passes
    the relay, measured up to 23 ms after grpcio had it), so the earlier time ends it."""
    outcome, kind, error, transient = _wire_outcome(end)
    headers = start.get("headers") if isinstance(start.get("headers"), dict) else {}
    method = start.get("method")
    target = start.get("target")
    path = str(target).split("?", 1)[0] if target is not None else None
    label = start.get("rpc_method") or (f"{method} {path}" if method else None)
    retry_after = end.get("retry_after") if end is not None else None
    return Attempt(
        call=call,
        number=n,
        method=label,
        key=headers.get("idempotency-key") if headers else None,
        t_start=float(start["t"]),
        t_end=_answered(end, decided),
        outcome=outcome,
        error=error,
        error_kind=kind,
        transient=transient if outcome == "error" else None,
        events=(start,) if end is None or end is start else (start, end),
        source="wire",
        http_method=str(method) if method else None,
        path=path,
        status=_int(end.get("status")) if end is not None and end.get("status") else None,
        retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
        connection=_int(start.get("connection")),
        end_exact=end is None or end.get("error_kind") != wire.CLIENT_GAVE_UP,
        protocol=str(start["protocol"]) if start.get("protocol") else None,
        deadline=_number(start.get("deadline")),
        pushback_ms=_whole(end.get("pushback_ms")) if end is not None else None,
        previous_attempts=_whole(start.get("previous_attempts")),
    )


def _answered(end: dict[str, Any] | None, decided: float | None) -> float | None:
    if end is None:
        return None
    t = float(end["t"])
    if decided is not None and end.get("injected") is True:
        return min(decided, t)  # an HTTP/2 stream id is never reused on a connection
    return t


def _number(value: Any) -> float | None:
    """A number as journaled, or ``None`` (a hand-edited journal may hold anything)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _whole(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _transparent(end: dict[str, Any] | None) -> bool:
    """A stream the server never processed (left out by a GOAWAY, refused): gRPC clients
    retry it transparently, and A6 does not count it as an attempt."""
    return end is not None and end.get("kind") == ev.WIRE_UNANSWERED and end.get("refused") is True


def _wire_attempts(
    events: list[dict[str, Any]],
    starts: dict[Any, dict[str, Any]],
    ends: dict[Any, dict[str, Any]],
    order: list[Any],
    client_attempts: dict[Any, list[Attempt]],
) -> dict[Any, tuple[Attempt, ...]]:
    """Wire exchanges as attempts of the logical calls that journaled none (key ``None``:
    exchanges outside every such call). A call takes the exchanges that began inside its
    window on its ``proxy`` (every proxy if it names none). When windows overlap, an
    exchange goes to the call whose idempotency key or request id it carries, else to the
    call that already used its connection, else to the call that began last."""
    Ref = tuple[str, Any, Any]
    requests: dict[Ref, dict[str, Any]] = {}
    closing: dict[Ref, dict[str, Any]] = {}
    decided: dict[Ref, float] = {}
    found: list[tuple[dict[str, Any], Ref | None]] = []
    for e in events:
        kind = e.get("kind")
        here = (str(e.get("proxy", "")), _hk(e.get("connection")), _hk(e.get("exchange")))
        if kind == ev.FAULT and e.get("replied") is True and e.get("stream") is not None:
            stream = (here[0], here[1], _hk(e.get("stream")))
            decided.setdefault(stream, float(e["t"]))
        elif kind == ev.WIRE_REQUEST:
            requests[here] = e
            found.append((e, here))
        elif kind in (ev.WIRE_RESPONSE, ev.WIRE_UNANSWERED):
            if here in requests:
                closing.setdefault(here, e)
        elif kind == ev.UPSTREAM_FAILED:
            found.append((e, None))  # the client's connection was closed at once
    if not found:
        return {}
    open_calls = [c for c in order if not client_attempts.get(c)]
    windows = []
    for call_id in open_calls:
        start = starts[call_id]
        end = ends.get(call_id)
        windows.append(
            (
                call_id,
                float(start["t"]),
                float(end["t"]) if end is not None else float("inf"),
                start.get("proxy"),
                start.get("idempotency_key") or start.get("request_id"),
            )
        )
    assigned: dict[Any, list[Attempt]] = {}
    used: dict[tuple[str, Any], Any] = {}
    for e, ref in found:
        t = float(e["t"])
        proxy = str(e.get("proxy", ""))
        fits = [w for w in windows if w[1] <= t <= w[2] and (not w[3] or w[3] == proxy)]
        owner: Any = None
        if len(fits) == 1:
            owner = fits[0][0]
        elif fits:
            raw_headers = e.get("headers")
            headers: dict[str, Any] = raw_headers if isinstance(raw_headers, dict) else {}
            tags = {headers.get("idempotency-key"), headers.get("x-request-id")} - {None}
            tagged = [w for w in fits if w[4] is not None and w[4] in tags]
            by_conn = used.get((proxy, _hk(e.get("connection"))))
            if tagged:
                owner = tagged[0][0]
            elif by_conn is not None and any(w[0] == by_conn for w in fits):
                owner = by_conn
            else:
                owner = max(fits, key=lambda w: w[1])[0]
        if owner is not None:
            used[(proxy, _hk(e.get("connection")))] = owner
        attempts = assigned.setdefault(owner, [])
        if ref is None:  # upstream_failed: no request was read, the client saw a close
            request = {**e, "method": None, "target": None}
            closed = {
                **e,
                "kind": ev.WIRE_UNANSWERED,
                "error_kind": wire.UNREACHABLE,
                "error": f"the proxy could not reach the server: {e.get('error')}",
            }
            attempts.append(_wire_attempt(request, closed, owner, len(attempts) + 1))
        elif not _transparent(closing.get(ref)):
            end = closing.get(ref)
            n = len(attempts) + 1
            attempts.append(_wire_attempt(e, end, owner, n, decided.get(ref)))
    closes = {
        (str(e.get("proxy", "")), _hk(e.get("connection"))): float(e["t"])
        for e in events
        if e.get("kind") == ev.WIRE_CLIENT_CLOSED
    }
    return {
        call: tuple(items if call is None else _late_answers(items, closes))
        for call, items in assigned.items()
    }


LATE_ANSWER = 0.1
"""Seconds: a response written at most this long before the client closed the connection,
followed by another attempt of the same call, came after the client had given up."""


LAZY_CLOSE = 0.02
"""Seconds: a connection closed this close to the call's next attempt was closed by it (urllib3
drops a timed-out connection only when it next needs one, after its backoff)."""
LAZY_CLOSE_MAX = 2.0
"""Seconds: the longest backoff a lazily closed give-up is recognised across."""


def _late_answers(attempts: list[Attempt], closes: dict[tuple[str, Any], float]) -> list[Attempt]:
    """A response the proxy wrote just before the client closed that connection and tried
    again was not what the client got: its timeout fired first (the response raced it).
    Such an attempt failed as a give-up, and its end is only an upper bound. "Just before":
    within :data:`LATE_ANSWER`, or any time up to :data:`LAZY_CLOSE_MAX` when the close came
    with the next attempt (a client that closes a dead connection lazily). A client that
    retries a success it did read and closes lazily is read as giving up (R2 cannot see it)."""
    found = list(attempts)
    for i, attempt in enumerate(found[:-1]):
        if attempt.t_end is None or attempt.outcome is None or attempt.connection is None:
            continue
        proxy = str(attempt.events[0].get("proxy", ""))
        closed = closes.get((proxy, attempt.connection))
        if closed is None or found[i + 1].t_start < closed:
            continue  # the next attempt began before the close: it was not a give-up
        after = closed - attempt.t_end
        lazy = found[i + 1].t_start - closed <= LAZY_CLOSE and after <= LAZY_CLOSE_MAX
        if not (0.0 <= after <= LATE_ANSWER or (after >= 0.0 and lazy)):
            continue
        found[i] = replace(
            attempt,
            outcome="error",
            error_kind=wire.CLIENT_GAVE_UP,
            error=(
                f"the response (HTTP {attempt.status}) came as the client gave up: it closed "
                f"the connection {_ms(closed - attempt.t_end)} later and tried again"
            ),
            transient=True,
            end_exact=False,
        )
    return found


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# ---- connections ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Connection:
    """One client connection through a proxy, opened..closed, with the faults that acted on it."""

    proxy: str
    ordinal: int
    t_open: float
    t_close: float | None
    failed: bool
    faults: tuple[dict[str, Any], ...]


def connections(source: Source | Timeline) -> list[Connection]:
    """Every proxied connection (``connection`` .. ``connection_closed``), by opening time;
    an ``upstream_failed`` connection is one whose server could not be reached."""
    events = source.events if isinstance(source, Timeline) else events_of(source)
    opened: dict[tuple[str, Any], dict[str, Any]] = {}
    closed: dict[tuple[str, Any], float] = {}
    failed: set[tuple[str, Any]] = set()
    faults: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for e in events:
        kind = e.get("kind")
        key = (str(e.get("proxy", "")), _hk(e.get("connection")))
        if kind in (ev.CONNECTION, ev.UPSTREAM_FAILED):
            opened.setdefault(key, e)
            if kind == ev.UPSTREAM_FAILED:
                failed.add(key)
        elif kind == ev.CONNECTION_CLOSED:
            closed.setdefault(key, float(e["t"]))
        elif kind == ev.FAULT and acted(e):
            faults.setdefault(key, []).append(e)
    found = [
        Connection(
            proxy=key[0],
            ordinal=_int(key[1]),
            t_open=float(e["t"]),
            t_close=closed.get(key),
            failed=key in failed,
            faults=tuple(faults.get(key, ())),
        )
        for key, e in opened.items()
    ]
    return sorted(found, key=lambda c: (c.t_open, c.proxy, c.ordinal))


# ---- fault windows and the per-clock index reports read ------------------------------------
@dataclass(frozen=True)
class FaultWindow:
    """A stretch of time a fault was in place: a toxic (added..removed) or a process fault."""

    kind: str  # "toxic" | "process" | "proxy" (a proxy disabled: every connection refused)
    name: str  # toxic name, "pause server", or "disable <proxy>"
    type: str  # toxic type, the process action, or "disable"
    start: float
    end: float
    proxy: str = ""
    stream: str = ""
    toxicity: float = 1.0
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def overlaps(self, start: float, end: float) -> bool:
        return self.start <= end and self.end >= start

    def clip(self, start: float, end: float) -> FaultWindow:
        return replace(self, start=max(self.start, start), end=min(self.end, end))


def _any_between(times: list[float], start: float, end: float) -> bool:
    i = bisect.bisect_left(times, start)
    return i < len(times) and times[i] <= end


@dataclass
class Index:
    """One clock's events (one process, or one xdist worker: never mix their times), indexed
    once for time-range questions: fault windows, faults that acted, completed attempts, and
    each ``test`` event with the ``verdict`` events journaled for it."""

    events: list[dict[str, Any]]
    times: list[float] = field(default_factory=list)
    windows: list[FaultWindow] = field(default_factory=list)
    acting_t: list[float] = field(default_factory=list)
    acting_by_toxic: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    fault_t: list[float] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    attempt_starts: list[float] = field(default_factory=list)
    tests: list[tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=list)

    def acting_between(self, start: float, end: float) -> bool:
        """Is there an event that :func:`acted` in ``[start, end]``?"""
        return _any_between(self.acting_t, start, end)

    def acted_between(self, start: float, end: float) -> bool:
        """Did a fault act in ``[start, end]``: an acting event, or a process fault or
        disabled-proxy window?"""
        return self.acting_between(start, end) or any(
            w.kind != "toxic" and w.overlaps(start, end) for w in self.windows
        )

    def fault_events_between(self, start: float, end: float) -> int:
        return bisect.bisect_right(self.fault_t, end) - bisect.bisect_left(self.fault_t, start)

    def window_acted(self, win: FaultWindow, start: float, end: float) -> bool:
        """A process fault or a disabled proxy always acts; a toxic only if it touched
        traffic in ``[start, end]``."""
        if win.kind != "toxic":
            return True
        times = self.acting_by_toxic.get((win.proxy, win.name), [])
        return _any_between(times, max(start, win.start), min(end, win.end))

    def windows_between(self, start: float, end: float) -> list[FaultWindow]:
        return [w.clip(start, end) for w in self.windows if w.overlaps(start, end)]

    def between(self, start: float, end: float) -> list[dict[str, Any]]:
        lo = bisect.bisect_left(self.times, start)
        return self.events[lo : bisect.bisect_right(self.times, end)]


def index(events: list[dict[str, Any]]) -> Index:
    """Index one clock's events, in the order (by time) they were read."""
    idx = Index(events, times=[float(e["t"]) for e in events])
    open_toxics: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    open_process: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    open_disabled: dict[str, tuple[float, dict[str, Any]]] = {}
    pending: dict[str, list[dict[str, Any]]] = {}
    end_t = idx.times[-1] if idx.times else 0.0
    for e in events:
        kind, t = e["kind"], float(e["t"])
        if acted(e):
            idx.acting_t.append(t)
            if kind == ev.FAULT:
                key = (str(e.get("proxy", "")), str(e.get("toxic", "")))
                idx.acting_by_toxic.setdefault(key, []).append(t)
        if kind in (ev.TOXIC_ADDED, ev.TOXIC_UPDATED):
            key = (str(e.get("proxy", "")), str(e.get("toxic") or e.get("name") or ""))
            if key in open_toxics:
                idx.windows.append(_toxic_window(*open_toxics.pop(key), t))
            open_toxics[key] = (t, e)
        elif kind == ev.PROXY_DELETED:  # a deleted proxy's toxics go with it, unjournaled
            for key in [k for k in open_toxics if k[0] == str(e.get("proxy", ""))]:
                idx.windows.append(_toxic_window(*open_toxics.pop(key), t))
            # deleting stops the proxy first (proxy_disabled just before): no fault window
            open_disabled.pop(str(e.get("proxy", "")), None)
        elif kind == ev.PROXY_DISABLED:
            open_disabled.setdefault(str(e.get("proxy", "")), (t, e))
        elif kind == ev.PROXY_ENABLED:
            if str(e.get("proxy", "")) in open_disabled:
                idx.windows.append(_proxy_window(*open_disabled.pop(str(e.get("proxy", ""))), t))
        elif kind == ev.TOXIC_REMOVED:
            key = (str(e.get("proxy", "")), str(e.get("toxic") or e.get("name") or ""))
            if key in open_toxics:
                idx.windows.append(_toxic_window(*open_toxics.pop(key), t))
        elif kind == ev.PROCESS:
            action = str(e.get("action", ""))
            target = str(e.get("target", "server"))
            if action in ev.PROCESS_WINDOWS:
                open_process.setdefault((target, action), (t, e))
            for opener in ev.PROCESS_CLOSERS.get(action, ()):
                if (target, opener) in open_process:
                    start, first = open_process.pop((target, opener))
                    idx.windows.append(_process_window(start, first, t))
        elif kind == ev.FAULT:
            idx.fault_t.append(t)
        elif kind == ev.VERDICT:
            pending.setdefault(str(e.get("nodeid", "")), []).append(e)
        elif kind == ev.TEST:
            idx.tests.append((e, pending.pop(str(e.get("nodeid", "")), [])))
    for start, e in open_toxics.values():
        idx.windows.append(_toxic_window(start, e, end_t))
    for start, e in open_process.values():
        idx.windows.append(_process_window(start, e, end_t))
    for start, e in open_disabled.values():
        idx.windows.append(_proxy_window(start, e, end_t))
    idx.windows.sort(key=lambda x: (x.start, x.end, x.name))
    idx.acting_t.sort()
    for times in idx.acting_by_toxic.values():
        times.sort()
    idx.fault_t.sort()
    found = _build(events).attempts
    idx.attempts = sorted((a for a in found if a.t_end is not None), key=lambda a: a.t_start)
    idx.attempt_starts = [a.t_start for a in idx.attempts]
    return idx


def _toxic_window(start: float, e: dict[str, Any], end: float) -> FaultWindow:
    attrs = e.get("attributes")
    toxicity = e.get("toxicity", 1.0)
    return FaultWindow(
        kind="toxic",
        name=str(e.get("toxic") or e.get("name") or e.get("type") or "toxic"),
        type=str(e.get("type", "")),
        start=start,
        end=end,
        proxy=str(e.get("proxy", "")),
        stream=str(e.get("stream", "")),
        toxicity=float(toxicity) if isinstance(toxicity, int | float) else 1.0,
        attributes=dict(attrs) if isinstance(attrs, dict) else {},
    )


def _process_window(start: float, e: dict[str, Any], end: float) -> FaultWindow:
    action = str(e.get("action", ""))
    target = str(e.get("target", "server"))
    return FaultWindow(kind="process", name=f"{action} {target}", type=action, start=start, end=end)


def _proxy_window(start: float, e: dict[str, Any], end: float) -> FaultWindow:
    proxy = str(e.get("proxy", ""))
    return FaultWindow(
        kind="proxy", name=f"disable {proxy}", type="disable", start=start, end=end, proxy=proxy
    )
