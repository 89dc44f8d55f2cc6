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
from faultlab.journal.timeline import Attempt, FaultWindow, Index, acted, index

__all__ = [
    "FAILED",
    "NOT_TRIGGERED",
    "PASSED",
    "SCHEMA",
    "SKIPPED",
    "STATUSES",
    "SYMBOLS",
    "VACUOUS",
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
    "dump_journal",
    "environment",
    "fault_label",
    "load_journal",
    "quantile",
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
    status: str  # "ok" | "error" | "fault" | "info"
    detail: str = ""


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
        timeline=_timeline(w, start, end) if status == FAILED else (),
        plan=test.get("plan"),
        replay=str(replay) if replay else f"pytest '{nodeid}' --faultlab-seed={case_seed}",
        message=str(test.get("message") or ""),
    )
    return case, used


def _timeline(w: Index, start: float, end: float) -> tuple[Span, ...]:
    """Calls, attempts, faults, server and process events of one failing test, in order."""
    spans: list[Span] = []
    opened: dict[tuple[str, str], dict[str, Any]] = {}
    for e in w.between(start, end):
        kind, t = e["kind"], float(e["t"])
        if kind in (ev.CALL_START, ev.ATTEMPT_START):
            opened[(kind, repr((e.get("call"), e.get("attempt"))))] = e
        elif kind == ev.CALL_END:
            s = opened.pop((ev.CALL_START, repr((e.get("call"), None))), None)
            method = (s or {}).get("method") or (s or {}).get("label") or ""
            ok = e.get("outcome") in ("value", "fallback")
            detail = str(e.get("error") or e.get("value") or e.get("outcome") or "")
            spans.append(
                Span(
                    "calls",
                    f"call {e.get('call')} {method}".strip(),
                    float(s["t"]) if s else max(start, t - _num(e.get("duration"), 0.0)),
                    t,
                    "ok" if ok else "error",
                    f"{e.get('outcome')}: {detail}",
                )
            )
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
        if len(spans) >= MAX_TIMELINE_SPANS:
            break
    for (kind, _), s in opened.items():  # started but never ended inside the window
        lane = "calls" if kind == ev.CALL_START else "attempts"
        label = f"call {s.get('call')}" + (f" #{s.get('attempt')}" if lane == "attempts" else "")
        spans.append(Span(lane, label, float(s["t"]), end, "error", "did not finish"))
    spans.sort(key=lambda s: (s.start, s.lane, s.label))
    return tuple(spans)
