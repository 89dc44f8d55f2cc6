"""The run model: test cases, matrix statuses, latency samples and failing-case timelines.

The journal is the source of truth (see ``docs/reports.md``): every report view (HTML, JSON,
JUnit, terminal) is rendered from a :class:`RunModel`, and a :class:`RunModel` is built from
journal events and nothing else, so a report can be re-rendered at any time from the files a
run left behind. The file format and the reading of events (fault windows, which faults acted,
attempts) are the journal floor's (:mod:`faultlab.journal`); this module only decides what a
test case's status is and what a report shows of it.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from faultlab.journal import schema as ev
from faultlab.journal.fileformat import (  # re-exported: older code imports them from here
    SCHEMA,
    JournalError,
    LoadedJournal,
    UnsupportedSchemaError,
    dump_journal,
    environment,
    load_journal,
    validate,
    write_journal,
)
from faultlab.journal.timeline import Attempt, Call, FaultWindow, Index, acted, index, timeline
from faultlab.oracles.fallback import fallback_reason

__all__ = [
    "CALL_RESULTS",
    "FAILED",
    "NOT_TRIGGERED",
    "PASSED",
    "SCHEMA",
    "SKIPPED",
    "STATUSES",
    "SYMBOLS",
    "VACUOUS",
    "CallRecord",
    "Cell",
    "FaultWindow",
    "JournalError",
    "LatencySample",
    "LoadedJournal",
    "Matrix",
    "RunModel",
    "Span",
    "TestCase",
    "UnsupportedSchemaError",
    "VerdictRecord",
    "build_model",
    "call_record",
    "dump_journal",
    "environment",
    "fallback_evidence",
    "fault_label",
    "load_journal",
    "quantile",
    "rank",
    "validate",
    "write_journal",
]

PASSED = "passed"
FAILED = "failed"
VACUOUS = "vacuous"
NOT_TRIGGERED = "not triggered"
SKIPPED = "skipped"
#: Every matrix status, worst first: a cell shows the worst status of its test cases.
STATUSES = (FAILED, VACUOUS, NOT_TRIGGERED, PASSED, SKIPPED)
#: One glyph per status, so the matrix reads without colour too.
SYMBOLS = {PASSED: "✓", FAILED: "✗", VACUOUS: "∅", NOT_TRIGGERED: "○", SKIPPED: "↷"}


def rank(status: str) -> int:
    """A status's place in :data:`STATUSES` (0: failed, the worst; unknown ones last)."""
    return STATUSES.index(status) if status in STATUSES else len(STATUSES)


#: What a logical call's caller got: the primary's value, a fallback, an error, or nothing
#: yet (the call did not end inside the test).
CALL_OK = "ok"
CALL_FALLBACK = "fallback"
CALL_ERROR = "error"
CALL_UNFINISHED = "unfinished"
CALL_RESULTS = (CALL_OK, CALL_FALLBACK, CALL_ERROR, CALL_UNFINISHED)


def fallback_evidence(call: Call, *, faults_active: bool) -> str | None:
    """Why the caller of ``call`` got a fallback rather than the primary outcome, or ``None``.

    The report's one definition of "answered by a fallback" (every view draws a call through
    it). It is the fallback oracle's (:func:`faultlab.oracles.fallback.fallback_reason`
    without a policy, since a journal does not carry the declared fallback value): a
    ``fallback`` event for the call, a ``call_end`` whose outcome is ``"fallback"``, a value
    returned although the call's last attempt failed (the primary cannot have produced it),
    or a value returned without any attempt. The report adds one condition to the last: a
    fault must have acted (``faults_active``), since on a clean run a call that needs no
    attempt is the client's own cache answering, not a fallback for a failing primary.
    """
    reason = fallback_reason(call)
    if reason is None:
        return None
    if call.fallback_events:
        why = call.fallback_events[0].get("reason")
        return f"{reason} ({why})" if why else reason
    if call.outcome == "value" and not call.attempts and not faults_active:
        return None
    return reason


# ---- the model -----------------------------------------------------------------------------
@dataclass(frozen=True)
class VerdictRecord:
    """One oracle verdict, as the plugin journaled it."""

    oracle: str
    property: str
    passed: bool
    vacuous: bool
    message: str
    evidence: tuple[int, ...] = ()


@dataclass(frozen=True)
class LatencySample:
    """One attempt's duration (attempt_start..attempt_end); ``faulted`` if a fault touched it."""

    call: Any
    attempt: int
    t: float
    duration: float
    outcome: str
    faulted: bool
    error_kind: str | None = None


@dataclass(frozen=True)
class Span:
    """One item on a failing case's timeline (``end`` is None for an instant)."""

    lane: str
    label: str
    start: float
    end: float | None
    status: str  # "ok" | "fallback" | "error" | "fault" | "info"
    detail: str = ""


@dataclass(frozen=True)
class CallRecord:
    """One logical call of a test as the report draws it: what its caller got, and why."""

    call: Any
    method: str
    t_start: float
    t_end: float | None
    attempts: int
    result: str
    """One of :data:`CALL_RESULTS`; ``fallback`` per :func:`fallback_evidence`."""
    got: str
    """What the caller got: the value, the error, or ``-``."""
    why: str = ""
    """For a fallback, the evidence (:func:`fallback_evidence`)."""

    @property
    def label(self) -> str:
        return f"call {self.call} {self.method}".strip()


def call_record(call: Call, *, faults_active: bool) -> CallRecord:
    """A :class:`CallRecord` of one journaled call (see :func:`fallback_evidence`)."""
    why = fallback_evidence(call, faults_active=faults_active)
    if call.end_event is None:
        result, got = CALL_UNFINISHED, "did not finish"
    elif why is not None:
        result, got = CALL_FALLBACK, str(call.value if call.value is not None else "-")
    elif call.outcome == "value":
        result, got = CALL_OK, str(call.value if call.value is not None else "-")
    else:
        result = CALL_ERROR
        got = str(call.error_kind or call.error or call.outcome or "error")
    return CallRecord(
        call=call.id,
        method=str(call.method or call.label or ""),
        t_start=call.t_start,
        t_end=call.t_end,
        attempts=len(call.attempts),
        result=result,
        got=got,
        why=why or "",
    )


@dataclass(frozen=True)
class TestCase:
    """One executed test (one ``test`` event) with everything the journal says about it."""

    nodeid: str
    worker: str
    transport: str
    protocol: str
    fault: Any
    fault_label: str
    backend: str
    outcome: str
    status: str
    duration: float
    t_start: float
    t_end: float
    seed: int
    verdicts: tuple[VerdictRecord, ...]
    triggered: bool
    configured: bool
    fault_events: int
    latency: tuple[LatencySample, ...]
    fault_windows: tuple[FaultWindow, ...]
    timeline: tuple[Span, ...]
    plan: Any
    replay: str
    message: str
    calls: tuple[CallRecord, ...] = ()
    """Every logical call journaled inside the test, with what its caller got."""

    @property
    def call_counts(self) -> dict[str, int]:
        """Calls per result (ok, fallback, error, unfinished), only those present."""
        c = Counter(r.result for r in self.calls)
        return {k: c[k] for k in CALL_RESULTS if c[k]}

    def call_summary(self) -> str:
        """``4 ok, 2 fallback`` (or ``no calls``): one line for tables and the terminal."""
        counts = self.call_counts
        return ", ".join(f"{n} {k}" for k, n in counts.items()) or "no calls"

    @property
    def cell_key(self) -> tuple[str, str, str]:
        return (self.transport, self.protocol, self.fault_label)

    @property
    def clean_latencies(self) -> list[float]:
        return [s.duration for s in self.latency if not s.faulted]

    @property
    def faulted_latencies(self) -> list[float]:
        return [s.duration for s in self.latency if s.faulted]

    @property
    def reason(self) -> str:
        """Why it failed, in one line: the broken verdicts, else pytest's first ``E`` line."""
        broken = [f"{v.oracle}.{v.property}: {v.message}" for v in self.verdicts if not v.passed]
        if broken:
            return "; ".join(broken)
        lines = [line.strip() for line in self.message.splitlines() if line.strip()]
        errors = [line[1:].strip() for line in lines if line.startswith("E ")]
        if errors:
            return errors[0]
        return lines[-1] if lines else self.outcome

    def verdict_summary(self) -> str:
        """``2 passed, 1 vacuous`` (or ``no verdicts``): one line for JUnit and tables."""
        if not self.verdicts:
            return "no verdicts"
        counts = Counter(
            "failed" if not v.passed else "vacuous" if v.vacuous else "passed"
            for v in self.verdicts
        )
        return ", ".join(f"{counts[k]} {k}" for k in ("failed", "vacuous", "passed") if counts[k])


@dataclass(frozen=True)
class Cell:
    """One transport x protocol x fault cell of the matrix: its cases and worst status."""

    transport: str
    protocol: str
    fault: str
    cases: tuple[TestCase, ...]

    @property
    def status(self) -> str:
        present = {c.status for c in self.cases}
        return next((s for s in STATUSES if s in present), SKIPPED)

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(case.status for case in self.cases)
        return {s: c[s] for s in STATUSES if c[s]}

    @property
    def clean_latencies(self) -> list[float]:
        return sorted(d for case in self.cases for d in case.clean_latencies)

    @property
    def faulted_latencies(self) -> list[float]:
        return sorted(d for case in self.cases for d in case.faulted_latencies)

    @property
    def label(self) -> str:
        return f"{self.transport} · {self.protocol} · {self.fault}"


@dataclass(frozen=True)
class Matrix:
    """Rows are (transport, protocol), columns faults; ``cells`` maps each key present."""

    rows: tuple[tuple[str, str], ...]
    faults: tuple[str, ...]
    cells: Mapping[tuple[str, str, str], Cell]

    def get(self, row: tuple[str, str], fault: str) -> Cell | None:
        return self.cells.get((row[0], row[1], fault))

    def row_status(self, row: tuple[str, str]) -> str:
        """The worst status of the row's cells."""
        return _worst(c.status for f in self.faults if (c := self.get(row, f)) is not None)

    def fault_status(self, fault: str) -> str:
        """The worst status of the column's cells."""
        return _worst(c.status for row in self.rows if (c := self.get(row, fault)) is not None)

    def by_status(self) -> Matrix:
        """The same cells with the rows and columns holding failures first, then vacuous,
        then not triggered, passed and skipped ones (worst cell first, then the number of
        cells that bad, then the original order: the clean baseline first among equals)."""

        def row_key(item: tuple[int, tuple[str, str]]) -> tuple[int, int, int]:
            i, row = item
            statuses = [c.status for f in self.faults if (c := self.get(row, f)) is not None]
            worst = _worst(statuses)
            return (rank(worst), -statuses.count(worst), i)

        def fault_key(item: tuple[int, str]) -> tuple[int, int, int]:
            i, fault = item
            statuses = [c.status for r in self.rows if (c := self.get(r, fault)) is not None]
            worst = _worst(statuses)
            return (rank(worst), -statuses.count(worst), i)

        rows = tuple(r for _, r in sorted(enumerate(self.rows), key=row_key))
        faults = tuple(f for _, f in sorted(enumerate(self.faults), key=fault_key))
        return Matrix(rows, faults, self.cells)


def _worst(statuses: Iterable[str]) -> str:
    present = set(statuses)
    return next((s for s in STATUSES if s in present), SKIPPED)


@dataclass(frozen=True)
class RunModel:
    """Everything a report shows, derived from one (merged) journal."""

    journal: LoadedJournal
    run_id: str
    cases: tuple[TestCase, ...]
    other_latency: tuple[LatencySample, ...]
    event_kinds: Mapping[str, int]

    @property
    def seed(self) -> int:
        return self.journal.seed

    @property
    def environment(self) -> Mapping[str, str]:
        return self.journal.environment

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(case.status for case in self.cases)
        return {s: c[s] for s in STATUSES}

    @property
    def failing(self) -> tuple[TestCase, ...]:
        return tuple(c for c in self.cases if c.status == FAILED)

    @property
    def replay(self) -> str:
        return f"pytest --faultlab-seed={self.seed}"

    def matrix(self) -> Matrix:
        groups: dict[tuple[str, str, str], list[TestCase]] = {}
        for case in self.cases:
            groups.setdefault(case.cell_key, []).append(case)
        cells = {k: Cell(k[0], k[1], k[2], tuple(v)) for k, v in sorted(groups.items())}
        rows = tuple(sorted({(k[0], k[1]) for k in cells}))
        # faults in the order tests ran them (the marker's order), the clean baseline first
        seen = dict.fromkeys(c.fault_label for c in self.cases)
        faults = tuple(sorted(seen, key=lambda f: f != "none"))
        return Matrix(rows, faults, cells)

    def summary(self) -> dict[str, Any]:
        """A small JSON-ready digest (``summary.json``): counts, cells, failing cases."""
        matrix = self.matrix()
        return {
            "schema": "faultlab.summary/1",
            "run_id": self.run_id,
            "seed": self.seed,
            "replay": self.replay,
            "environment": dict(self.environment),
            "workers": list(self.journal.workers),
            "events": len(self.journal.events),
            "dropped_events": self.journal.dropped,
            "counts": self.counts,
            "total": len(self.cases),
            "cells": [
                {
                    "transport": c.transport,
                    "protocol": c.protocol,
                    "fault": c.fault,
                    "status": c.status,
                    "counts": c.counts,
                    "latency_clean": _stats(c.clean_latencies),
                    "latency_faulted": _stats(c.faulted_latencies),
                }
                for c in matrix.cells.values()
            ],
            "cases": [
                {
                    "nodeid": c.nodeid,
                    "transport": c.transport,
                    "protocol": c.protocol,
                    "fault": c.fault,
                    "status": c.status,
                    "outcome": c.outcome,
                    "duration": round(c.duration, 6),
                    "verdicts": c.verdict_summary(),
                    "calls": c.call_counts,
                    "triggered": c.triggered,
                    "plan": c.plan,
                    "replay": c.replay,
                }
                for c in self.cases
            ],
        }


def _stats(values: list[float]) -> dict[str, float | int] | None:
    if not values:
        return None
    return {
        "n": len(values),
        "p50": round(quantile(values, 0.5), 6),
        "p95": round(quantile(values, 0.95), 6),
        "max": round(values[-1], 6),
    }


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted sequence (numpy's default method)."""
    if not sorted_values:
        raise ValueError("quantile of nothing")
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def fault_label(fault: Any) -> str:
    """A short, stable name for a fault parameter: ``latency[latency=100]``, ``none``."""
    if fault is None:
        return "none"
    if isinstance(fault, list | tuple):
        return "+".join(fault_label(f) for f in fault) or "none"
    if isinstance(fault, dict):
        kind = str(fault.get("type", "fault"))
        attrs: dict[str, Any] = {}
        nested = fault.get("attributes")
        if isinstance(nested, dict):
            attrs.update(nested)
        for k, v in fault.items():
            if k in ("type", "stream", "name", "attributes") or (k == "toxicity" and v == 1):
                continue
            attrs[k] = v
        inner = ",".join(f"{k}={_short(v)}" for k, v in attrs.items())
        return f"{kind}[{inner}]" if inner else kind
    return str(fault)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=repr)
    return text if len(text) <= 24 else text[:21] + "..."


# ---- building ------------------------------------------------------------------------------
MAX_TIMELINE_SPANS = 4000


def build_model(journal: LoadedJournal) -> RunModel:
    """Turn events into test cases, matrix statuses, latency samples and timelines."""
    by_worker: dict[str, list[dict[str, Any]]] = {}
    kinds: Counter[str] = Counter()
    for event in journal.events:
        kinds[event["kind"]] += 1
        by_worker.setdefault(str(event.get("worker", "main")), []).append(event)
    indexes = {name: index(events) for name, events in by_worker.items()}
    cases: list[TestCase] = []
    assigned: set[int] = set()
    for name in sorted(indexes):
        w = indexes[name]
        for test, verdicts in w.tests:
            case, used = _case(name, w, test, verdicts, journal.seed)
            cases.append(case)
            assigned.update(used)
    others = []
    for w in indexes.values():
        acted = [win for win in w.windows if w.window_acted(win, win.start, win.end)]
        for attempt in w.attempts:
            if id(attempt) not in assigned:
                others.append(_sample(w, attempt, acted))
    cases.sort(key=lambda c: (c.t_start, c.worker, c.nodeid))
    return RunModel(
        journal=journal,
        run_id=journal.run_id or _run_id(journal),
        cases=tuple(cases),
        other_latency=tuple(others),
        event_kinds=dict(sorted(kinds.items())),
    )


def _run_id(journal: LoadedJournal) -> str:
    digest = hashlib.sha256()
    digest.update(str(journal.seed).encode())
    for event in journal.events:
        digest.update(json.dumps(event, sort_keys=True, default=repr).encode())
    stamp = (
        time.strftime("%Y%m%d-%H%M%S", time.gmtime(journal.created))
        if journal.created is not None
        else f"seed{journal.seed}"
    )
    return f"{stamp}-{digest.hexdigest()[:8]}"


def _sample(w: Index, attempt: Attempt, windows: Iterable[FaultWindow]) -> LatencySample:
    start, end = attempt.t_start, attempt.t_end if attempt.t_end is not None else attempt.t_start
    faulted = any(win.overlaps(start, end) for win in windows) or w.acting_between(start, end)
    number = attempt.events[0].get("attempt")
    return LatencySample(
        call=attempt.call,
        attempt=number if isinstance(number, int) else 0,
        t=start,
        duration=max(0.0, end - start),
        outcome=str(attempt.outcome or ""),
        faulted=faulted,
        error_kind=None if attempt.error_kind is None else str(attempt.error_kind),
    )


def _num(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default


def _case(
    worker: str, w: Index, test: dict[str, Any], verdict_events: list[dict[str, Any]], seed: int
) -> tuple[TestCase, set[int]]:
    t_event = float(test["t"])
    duration = max(0.0, _num(test.get("duration"), 0.0))
    start = _num(test.get("t_start"), t_event - duration)
    end = max(start + duration, t_event)
    windows = tuple(w.windows_between(start, end))
    fault = test.get("fault")
    n_fault_events = w.fault_events_between(start, end)
    configured = fault is not None or bool(windows) or n_fault_events > 0
    triggered = w.acted_between(start, end)
    verdicts = tuple(
        VerdictRecord(
            oracle=str(v.get("oracle", "")),
            property=str(v.get("property", "")),
            passed=bool(v.get("passed")),
            vacuous=bool(v.get("vacuous")),
            message=str(v.get("message") or ""),
            evidence=tuple(x for x in v.get("evidence") or () if isinstance(x, int)),
        )
        for v in verdict_events
    )
    outcome = str(test.get("outcome", ""))
    if outcome == "failed" or any(not v.passed for v in verdicts):
        status = FAILED
    elif outcome == "skipped":
        status = SKIPPED
    elif verdicts and all(v.vacuous for v in verdicts):
        status = VACUOUS
    elif configured and not triggered:
        status = NOT_TRIGGERED
    else:
        status = PASSED
    used: set[int] = set()
    samples = []
    lo = bisect.bisect_left(w.attempt_starts, start)
    acted = [win for win in windows if w.window_acted(win, start, end)]
    for attempt in w.attempts[lo:]:
        if attempt.t_start > end:
            break
        used.add(id(attempt))
        samples.append(_sample(w, attempt, acted))
    label = fault_label(fault)
    if fault is None and windows:
        label = "+".join(
            sorted({(win.type or win.name) if win.kind == "toxic" else win.name for win in windows})
        )
    nodeid = str(test.get("nodeid", ""))
    calls = _calls(w, start, end)
    test_seed = test.get("seed")
    case_seed = test_seed if isinstance(test_seed, int) else seed
    replay = test.get("replay")
    case = TestCase(
        nodeid=nodeid,
        worker=worker,
        transport=str(test.get("transport") or "-"),
        protocol=str(test.get("protocol") or "-"),
        fault=fault,
        fault_label=label,
        backend=str(test.get("backend") or ""),
        outcome=outcome,
        status=status,
        duration=duration,
        t_start=start,
        t_end=end,
        seed=case_seed,
        verdicts=verdicts,
        triggered=triggered,
        configured=configured,
        fault_events=n_fault_events,
        latency=tuple(samples),
        fault_windows=windows,
        timeline=_timeline(w, start, end, calls) if status == FAILED else (),
        plan=test.get("plan"),
        replay=str(replay) if replay else f"pytest '{nodeid}' --faultlab-seed={case_seed}",
        message=str(test.get("message") or ""),
        calls=calls,
    )
    return case, used


def _calls(w: Index, start: float, end: float) -> tuple[CallRecord, ...]:
    """The logical calls journaled in ``[start, end]``, read as the oracles read them
    (:func:`~faultlab.journal.timeline.timeline`: wire attempts stand in for the attempts of
    an uninstrumented client), each with what its caller got."""
    records = []
    for call in timeline(w.between(start, end)).calls:
        if call.start_event.get("seq") == -1:
            continue  # the stand-in for an excerpt without calls, not a call of the test
        until = call.t_end if call.t_end is not None else end
        records.append(call_record(call, faults_active=w.acted_between(start, until)))
    return tuple(records)


def _timeline(
    w: Index, start: float, end: float, calls: Sequence[CallRecord] = ()
) -> tuple[Span, ...]:
    """Calls, attempts, faults, server and process events of one failing test, in order."""
    spans: list[Span] = []
    for rec in calls[:MAX_TIMELINE_SPANS]:
        detail = f"{rec.result}: {rec.got}" + (f" ({rec.why})" if rec.why else "")
        status = rec.result if rec.result in ("ok", "fallback") else "error"
        until = rec.t_end if rec.t_end is not None else end
        spans.append(Span("calls", rec.label, rec.t_start, until, status, detail))
    opened: dict[tuple[str, str], dict[str, Any]] = {}
    for e in w.between(start, end):
        if len(spans) >= MAX_TIMELINE_SPANS:
            break
        kind, t = e["kind"], float(e["t"])
        if kind == ev.ATTEMPT_START:
            opened[(kind, repr((e.get("call"), e.get("attempt"))))] = e
        elif kind == ev.ATTEMPT_END:
            s = opened.pop((ev.ATTEMPT_START, repr((e.get("call"), e.get("attempt")))), None)
            ok = e.get("outcome") == "ok"
            spans.append(
                Span(
                    "attempts",
                    f"call {e.get('call')} #{e.get('attempt')}",
                    float(s["t"]) if s else t,
                    t,
                    "ok" if ok else "error",
                    "ok" if ok else str(e.get("error_kind") or e.get("error") or "error"),
                )
            )
        elif kind == ev.FAULT and acted(e):
            spans.append(
                Span(
                    "faults",
                    f"{e.get('toxic')} {e.get('decision')}",
                    t,
                    None,
                    "fault",
                    f"{e.get('proxy')} conn {e.get('connection')} {e.get('direction')}"
                    f" frame {e.get('frame_index', e.get('index', '-'))}"
                    f" size {e.get('size', '-')}",
                )
            )
        elif kind == ev.SERVER_REQUEST:
            spans.append(
                Span(
                    "server",
                    str(e.get("method", "")),
                    t,
                    None,
                    "ok" if e.get("outcome") == "ok" else "error",
                    str(e.get("error_kind") or e.get("outcome") or ""),
                )
            )
        elif kind == ev.PROCESS:
            spans.append(
                Span(
                    "process", f"{e.get('action')} {e.get('target', '')}".strip(), t, None, "fault"
                )
            )
        elif kind in (ev.BREAKER, ev.FALLBACK):
            label = f"breaker {e.get('state')}" if kind == ev.BREAKER else "fallback"
            spans.append(
                Span(
                    "breaker", label, t, None, "info", str(e.get("label") or e.get("reason") or "")
                )
            )
    for s in opened.values():  # started but never ended inside the window
        label = f"call {s.get('call')} #{s.get('attempt')}"
        spans.append(Span("attempts", label, float(s["t"]), end, "error", "did not finish"))
    spans.sort(key=lambda s: (s.start, s.lane, s.label))
    return tuple(spans)
