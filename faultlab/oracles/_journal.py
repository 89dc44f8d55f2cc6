"""The journal seen as logical calls made of attempts, plus the faults that acted on traffic.

Oracles never look at live objects: they rebuild calls from ``call_start`` /
``attempt_*`` / ``call_end`` events (faultlab.lab.events), and ask the proxy's
``fault`` events and the ``process`` events whether a fault touched traffic at
all (vacuity).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from faultlab.lab import events as ev

__all__ = ["Attempt", "Call", "Source", "Timeline", "events_of", "timeline"]


@runtime_checkable
class _HasEvents(Protocol):
    def events(self) -> list[dict[str, Any]]: ...


Source = _HasEvents | Iterable[Mapping[str, Any]]
"""A Journal, a Pair (its ``events()`` merges server processes' events), or a list of events."""

PASSIVE_DECISIONS = frozenset({"toxicity", "pass", "pass_frame"})
"""``fault`` decisions that leave traffic untouched (the toxic looked but did nothing)."""
PROCESS_FAULTS = frozenset({"pause", "kill", "stop", "restart"})


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
    """Did this event change traffic or the server (a fault that did something)?"""
    kind = event.get("kind")
    if kind == "fault":
        decision = event.get("decision")
        if decision in PASSIVE_DECISIONS:
            return False
        return not (decision == "delay" and not event.get("delay_ms"))
    if kind == ev.PROCESS:
        return event.get("action") in PROCESS_FAULTS
    return kind == "upstream_failed"


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
        number=int(start.get("attempt") or 0),
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
    events = events_of(source)
    starts: dict[int, dict[str, Any]] = {}
    ends: dict[int, dict[str, Any]] = {}
    fallbacks: dict[Any, list[dict[str, Any]]] = {}
    attempt_starts: dict[tuple[Any, int], dict[str, Any]] = {}
    attempt_ends: dict[tuple[Any, int], dict[str, Any]] = {}
    orphan_order: list[tuple[Any, int]] = []
    order: list[int] = []
    for e in events:
        kind = e.get("kind")
        if kind == ev.CALL_START:
            starts[e["call"]] = e
            order.append(e["call"])
        elif kind == ev.CALL_END:
            ends[e["call"]] = e
        elif kind == ev.FALLBACK:
            fallbacks.setdefault(e.get("call"), []).append(e)
        elif kind == ev.ATTEMPT_START:
            key = (e.get("call"), int(e.get("attempt") or 0))
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
                attempt_ends[(e.get("call"), int(e.get("attempt") or 0))] = e
    by_call: dict[Any, list[Attempt]] = {}
    orphans: list[Attempt] = []
    for key, start in attempt_starts.items():
        attempt = _attempt(start, attempt_ends.get(key))
        if isinstance(key[0], tuple):
            orphans.append(attempt)
        else:
            by_call.setdefault(key[0], []).append(attempt)
    calls: list[Call] = []
    for call_id in order:
        start = starts[call_id]
        end = ends.get(call_id)
        attempts = tuple(sorted(by_call.pop(call_id, []), key=lambda a: a.number))
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
    orphans.sort(key=lambda a: a.t_start)
    return Timeline(events, calls, orphans)
