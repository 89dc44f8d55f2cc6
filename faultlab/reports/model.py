"""The report model: a versioned journal file format and a run model built from events only.

The journal is the source of truth (see ``docs/reports.md``): every report view (HTML, JSON,
JUnit, terminal) is rendered from a :class:`RunModel`, and a :class:`RunModel` is built from
journal events and nothing else, so a report can be re-rendered at any time from the files a
run left behind.

File format ``faultlab.journal/1``: one JSON object ``{"schema", "seed", "events", ...}``;
optional header fields ``worker``, ``run_id``, ``created``, ``environment``, ``dropped`` and
``extra``. Readers accept any ``faultlab.journal/1`` file and refuse other versions with
:class:`UnsupportedSchemaError`; writers add fields, never rename or retype them.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from faultlab.errors import FaultlabError

__all__ = [
    "ACTING",
    "FAILED",
    "NOT_TRIGGERED",
    "PASSED",
    "PASSIVE_DECISIONS",
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

SCHEMA = "faultlab.journal/1"
_SCHEMA_FAMILY = "faultlab.journal/"

PASSED = "passed"
FAILED = "failed"
VACUOUS = "vacuous"
NOT_TRIGGERED = "not triggered"
SKIPPED = "skipped"
#: Every matrix status, worst first: a cell shows the worst status of its test cases.
STATUSES = (FAILED, VACUOUS, NOT_TRIGGERED, PASSED, SKIPPED)
#: One glyph per status, so the matrix reads without colour too.
SYMBOLS = {PASSED: "✓", FAILED: "✗", VACUOUS: "∅", NOT_TRIGGERED: "○", SKIPPED: "↷"}

#: ``fault`` decisions that leave traffic untouched: a toxicity draw (even an active one) or a
#: toxic letting a chunk pass. Any other decision (delay, drop, reset, ...) acted on traffic.
PASSIVE_DECISIONS = frozenset({"toxicity", "pass", "pass_frame"})
#: ``process`` actions that are faults (they open a fault window until resume/restart).
ACTING = frozenset({"pause", "kill"})
_PROCESS_CLOSERS = {"resume": "pause", "restart": "kill"}


class JournalError(FaultlabError, ValueError):
    """A journal is missing, not JSON, or not a faultlab journal: reports refuse it clearly."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class UnsupportedSchemaError(JournalError):
    """A journal of another schema version: newer faultlab wrote it, or it is not ours."""


# ---- writing -------------------------------------------------------------------------------
def environment() -> dict[str, str]:
    """Where this run happened: recorded by the writer because a re-render runs elsewhere."""
    from faultlab import __version__

    return {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "faultlab": __version__,
        "executable": sys.executable,
    }


def dump_journal(header: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> str:
    """Deterministic JSON text: sorted keys, one event per line (diffable, greppable)."""
    head = _finite({k: v for k, v in header.items() if k != "events"})
    lines = [json.dumps(_finite(e), sort_keys=True, default=repr, allow_nan=False) for e in events]
    text = json.dumps(head, sort_keys=True, default=repr, indent=1, allow_nan=False)
    body = ",\n".join(lines)
    events_json = f'"events": [\n{body}\n]' if lines else '"events": []'
    if text == "{}":
        return "{\n" + events_json + "\n}\n"
    return text[:-2] + ",\n " + events_json + "\n}\n"


def write_journal(
    path: str | os.PathLike[str],
    journal: Any,
    seed: int,
    extra: Mapping[str, Any] | None = None,
    *,
    worker: str | None = None,
) -> Path:
    """Write ``journal`` (a :class:`faultlab.journal.Journal` or a list of events) as a
    ``faultlab.journal/1`` file, with the environment, atomically (a crash leaves no half file).
    """
    events = journal.events() if hasattr(journal, "events") else list(journal)
    header: dict[str, Any] = {
        "schema": SCHEMA,
        "seed": int(seed),
        "environment": environment(),
        "dropped": int(getattr(journal, "dropped", 0)),
    }
    created = getattr(journal, "wall_origin", None)
    if isinstance(created, int | float):
        header["created"] = round(float(created), 3)
    if worker is not None:
        header["worker"] = worker
    if extra:
        header["extra"] = dict(extra)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(dump_journal(header, events), encoding="utf-8")
    os.replace(tmp, target)
    return target


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN/inf (not JSON) become strings, mapping keys become strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# ---- loading -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadedJournal:
    """One run's events (xdist worker journals merged, ordered by time, deduplicated)."""

    seed: int
    events: tuple[dict[str, Any], ...]
    environment: Mapping[str, str] = field(default_factory=dict)
    workers: tuple[str, ...] = ("main",)
    sources: tuple[str, ...] = ()
    run_id: str | None = None
    created: float | None = None
    dropped: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def header(self) -> dict[str, Any]:
        """The merged journal's header, as written by :func:`faultlab.reports.json`."""
        head: dict[str, Any] = {
            "schema": SCHEMA,
            "seed": self.seed,
            "run_id": self.run_id,
            "workers": list(self.workers),
            "environment": dict(self.environment),
            "dropped": self.dropped,
        }
        if self.created is not None:
            head["created"] = self.created
        if self.extra:
            head["extra"] = dict(self.extra)
        return head


def load_journal(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> LoadedJournal:
    """Read and merge journal files (a directory means every ``journal*.json`` in it).

    Raises :class:`JournalError` (never a bare ``KeyError``/``JSONDecodeError``) on missing,
    unreadable, malformed or differently-versioned input.
    """
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(p.glob("journal*.json"))
            if not found:
                raise JournalError("no journal*.json files in this directory", p)
            files.extend(found)
        else:
            files.append(p)
    if not files:
        raise JournalError("no journal files given")
    parsed = [_read_file(p) for p in files]
    return _merge(parsed, files)


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JournalError("no such file", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JournalError(f"cannot read: {exc}", path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JournalError(
            f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", path
        ) from None
    except RecursionError:
        raise JournalError("not a faultlab journal: JSON nested too deeply", path) from None
    return validate(data, path)


def validate(data: Any, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Check one decoded journal object against ``faultlab.journal/1``; return it."""
    if not isinstance(data, dict):
        raise JournalError(f"not a faultlab journal: top level is {type(data).__name__}", path)
    schema = data.get("schema")
    if schema is None:
        raise JournalError("not a faultlab journal: no 'schema' field", path)
    if not isinstance(schema, str) or not schema.startswith(_SCHEMA_FAMILY):
        raise UnsupportedSchemaError(f"not a faultlab journal: schema {schema!r}", path)
    if schema != SCHEMA:
        raise UnsupportedSchemaError(
            f"journal schema {schema!r} is not supported by this faultlab (reads {SCHEMA!r});"
            " upgrade faultlab to render it",
            path,
        )
    seed = data.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise JournalError(f"'seed' must be an integer, got {seed!r}", path)
    events = data.get("events")
    if not isinstance(events, list):
        raise JournalError("'events' must be a list", path)
    for i, event in enumerate(events):
        _check_event(event, i, path)
    for key, kind in (("environment", dict), ("extra", dict), ("worker", str), ("run_id", str)):
        if key in data and data[key] is not None and not isinstance(data[key], kind):
            raise JournalError(f"{key!r} must be a {kind.__name__}", path)
    for key in ("created", "dropped"):
        value = data.get(key)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise JournalError(f"{key!r} must be a number", path)
    return data


def _check_event(event: Any, i: int, path: str | os.PathLike[str] | None) -> None:
    if not isinstance(event, dict):
        raise JournalError(f"event #{i} is not an object", path)
    kind = event.get("kind")
    if not isinstance(kind, str) or not kind:
        raise JournalError(f"event #{i} has no 'kind'", path)
    t = event.get("t")
    if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
        raise JournalError(f"event #{i} ({kind}): 't' must be a finite number, got {t!r}", path)
    seq = event.get("seq")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
        raise JournalError(f"event #{i} ({kind}): 'seq' must be an integer, got {seq!r}", path)


def _worker_of(data: Mapping[str, Any], path: Path) -> str:
    worker = data.get("worker")
    if isinstance(worker, str) and worker:
        return worker
    stem = path.stem  # the plugin names xdist worker files journal-<worker>.json
    return stem[len("journal-") :] if stem.startswith("journal-") else "main"


def _merge(parsed: list[dict[str, Any]], files: list[Path]) -> LoadedJournal:
    seeds = {d["seed"] for d in parsed}
    if len(seeds) > 1:
        raise JournalError(
            f"journals come from different runs (seeds {sorted(seeds)}): render each run on its own"
        )
    seen: set[str] = set()
    merged: list[dict[str, Any]] = []
    workers: set[str] = set()
    env: dict[str, str] = {}
    extra: dict[str, Any] = {}
    created: list[float] = []
    run_ids: set[str] = set()
    dropped = 0
    for data, path in sorted(zip(parsed, files, strict=True), key=lambda dp: str(dp[1])):
        default_worker = _worker_of(data, path)
        for k, v in (data.get("environment") or {}).items():
            env.setdefault(str(k), str(v))
        for k, v in (data.get("extra") or {}).items():
            extra.setdefault(str(k), v)
        if data.get("created") is not None:
            created.append(float(data["created"]))
        if data.get("run_id"):
            run_ids.add(data["run_id"])
        dropped += int(data.get("dropped") or 0)
        for raw in data["events"]:
            event = dict(raw)
            event.setdefault("worker", default_worker)
            key = json.dumps(event, sort_keys=True, default=repr)
            if key in seen:
                continue
            seen.add(key)
            workers.add(str(event["worker"]))
            merged.append(event)
    merged.sort(key=lambda e: (e["t"], str(e["worker"]), e.get("seq", -1)))
    seed = seeds.pop()
    run_id = min(run_ids) if run_ids else None
    return LoadedJournal(
        seed=seed,
        events=tuple(merged),
        environment=env,
        workers=tuple(sorted(workers)) or ("main",),
        sources=tuple(str(f) for f in files),
        run_id=run_id,
        created=min(created) if created else None,
        dropped=dropped,
        extra=extra,
    )


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
class FaultWindow:
    """A stretch of time a fault was in place: a toxic (added..removed) or a process fault."""

    kind: str  # "toxic" | "process"
    name: str  # toxic name, or "pause server"
    type: str  # toxic type, or the process action
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
@dataclass
class _Worker:
    """Per-worker indexes (xdist workers have their own clocks: never mix their times)."""

    windows: list[FaultWindow] = field(default_factory=list)
    acting_t: list[float] = field(default_factory=list)
    acting_by_toxic: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    fault_t: list[float] = field(default_factory=list)
    attempts: list[tuple[float, float, dict[str, Any], dict[str, Any]]] = field(
        default_factory=list
    )
    attempt_starts: list[float] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    tests: list[tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=list)


MAX_TIMELINE_SPANS = 4000


def build_model(journal: LoadedJournal) -> RunModel:
    """Turn events into test cases, matrix statuses, latency samples and timelines."""
    by_worker: dict[str, _Worker] = {}
    kinds: Counter[str] = Counter()
    for event in journal.events:
        kinds[event["kind"]] += 1
        w = by_worker.setdefault(str(event.get("worker", "main")), _Worker())
        w.events.append(event)
        w.times.append(float(event["t"]))
    for w in by_worker.values():
        _index(w)
    cases: list[TestCase] = []
    assigned: set[int] = set()
    for name in sorted(by_worker):
        w = by_worker[name]
        for test, verdicts in w.tests:
            case, used = _case(name, w, test, verdicts, journal.seed)
            cases.append(case)
            assigned.update(used)
    others = []
    for w in by_worker.values():
        acted = [win for win in w.windows if _acted(w, win, win.start, win.end)]
        for start, end, a, b in w.attempts:
            if id(a) not in assigned:
                others.append(_sample(w, start, end, a, b, acted))
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


def _index(w: _Worker) -> None:
    open_toxics: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    open_process: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    attempts: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
    pending: dict[str, list[dict[str, Any]]] = {}
    end_t = w.times[-1] if w.times else 0.0
    for e in w.events:
        kind, t = e["kind"], float(e["t"])
        if kind in ("toxic_added", "toxic_updated"):
            key = (str(e.get("proxy", "")), str(e.get("toxic") or e.get("name") or ""))
            if key in open_toxics:
                w.windows.append(_toxic_window(*open_toxics.pop(key), t))
            open_toxics[key] = (t, e)
        elif kind == "proxy_deleted":  # a deleted proxy's toxics go with it, unjournaled
            gone = [k for k in open_toxics if k[0] == str(e.get("proxy", ""))]
            for key in gone:
                w.windows.append(_toxic_window(*open_toxics.pop(key), t))
        elif kind == "toxic_removed":
            key = (str(e.get("proxy", "")), str(e.get("toxic") or e.get("name") or ""))
            if key in open_toxics:
                w.windows.append(_toxic_window(*open_toxics.pop(key), t))
        elif kind == "process":
            action = str(e.get("action", ""))
            target = str(e.get("target", "server"))
            if action in ACTING:
                open_process.setdefault((target, action), (t, e))
            elif action in _PROCESS_CLOSERS and (target, _PROCESS_CLOSERS[action]) in open_process:
                start, opener = open_process.pop((target, _PROCESS_CLOSERS[action]))
                w.windows.append(_process_window(start, opener, t))
        elif kind == "fault":
            w.fault_t.append(t)
            if str(e.get("decision", "")) not in PASSIVE_DECISIONS:
                w.acting_t.append(t)
                key = (str(e.get("proxy", "")), str(e.get("toxic", "")))
                w.acting_by_toxic.setdefault(key, []).append(t)
        elif kind == "attempt_start":
            attempts[(repr(e.get("call")), repr(e.get("attempt")))] = (t, e)
        elif kind == "attempt_end":
            started = attempts.pop((repr(e.get("call")), repr(e.get("attempt"))), None)
            if started is not None:
                w.attempts.append((started[0], t, started[1], e))
        elif kind == "verdict":
            pending.setdefault(str(e.get("nodeid", "")), []).append(e)
        elif kind == "test":
            w.tests.append((e, pending.pop(str(e.get("nodeid", "")), [])))
    for start, e in open_toxics.values():
        w.windows.append(_toxic_window(start, e, end_t))
    for start, e in open_process.values():
        w.windows.append(_process_window(start, e, end_t))
    w.windows.sort(key=lambda x: (x.start, x.end, x.name))
    w.attempts.sort(key=lambda a: a[0])
    w.attempt_starts = [a[0] for a in w.attempts]


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


def _any_between(times: list[float], start: float, end: float) -> bool:
    i = bisect.bisect_left(times, start)
    return i < len(times) and times[i] <= end


def _count_between(times: list[float], start: float, end: float) -> int:
    return bisect.bisect_right(times, end) - bisect.bisect_left(times, start)


def _sample(
    w: _Worker,
    start: float,
    end: float,
    a: dict[str, Any],
    b: dict[str, Any],
    windows: Iterable[FaultWindow],
) -> LatencySample:
    faulted = any(win.overlaps(start, end) for win in windows) or _any_between(
        w.acting_t, start, end
    )
    attempt = a.get("attempt")
    kind = b.get("error_kind")
    return LatencySample(
        call=a.get("call"),
        attempt=attempt if isinstance(attempt, int) else 0,
        t=start,
        duration=max(0.0, end - start),
        outcome=str(b.get("outcome", "")),
        faulted=faulted,
        error_kind=None if kind is None else str(kind),
    )


def _acted(w: _Worker, win: FaultWindow, start: float, end: float) -> bool:
    """A process fault always acts; a toxic only if it touched traffic during this test."""
    if win.kind != "toxic":
        return True
    times = w.acting_by_toxic.get((win.proxy, win.name), [])
    return _any_between(times, max(start, win.start), min(end, win.end))


def _num(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default


def _case(
    worker: str, w: _Worker, test: dict[str, Any], verdict_events: list[dict[str, Any]], seed: int
) -> tuple[TestCase, set[int]]:
    t_event = float(test["t"])
    duration = max(0.0, _num(test.get("duration"), 0.0))
    start = _num(test.get("t_start"), t_event - duration)
    end = max(start + duration, t_event)
    windows = tuple(win.clip(start, end) for win in w.windows if win.overlaps(start, end))
    process_faults = any(win.kind == "process" for win in windows)
    fault = test.get("fault")
    n_fault_events = _count_between(w.fault_t, start, end)
    configured = fault is not None or bool(windows) or n_fault_events > 0
    triggered = _any_between(w.acting_t, start, end) or process_faults
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
    acted = [win for win in windows if _acted(w, win, start, end)]
    for a_start, a_end, a, b in w.attempts[lo:]:
        if a_start > end:
            break
        used.add(id(a))
        samples.append(_sample(w, a_start, a_end, a, b, acted))
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


def _timeline(w: _Worker, start: float, end: float) -> tuple[Span, ...]:
    """Calls, attempts, faults, server and process events of one failing test, in order."""
    lo = bisect.bisect_left(w.times, start)
    hi = bisect.bisect_right(w.times, end)
    spans: list[Span] = []
    opened: dict[tuple[str, str], dict[str, Any]] = {}
    for e in w.events[lo:hi]:
        kind, t = e["kind"], float(e["t"])
        if kind in ("call_start", "attempt_start"):
            opened[(kind, repr((e.get("call"), e.get("attempt"))))] = e
        elif kind == "call_end":
            s = opened.pop(("call_start", repr((e.get("call"), None))), None)
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
        elif kind == "attempt_end":
            s = opened.pop(("attempt_start", repr((e.get("call"), e.get("attempt")))), None)
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
        elif kind == "fault" and str(e.get("decision")) not in PASSIVE_DECISIONS:
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
        elif kind == "server_request":
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
        elif kind == "process":
            spans.append(
                Span(
                    "process", f"{e.get('action')} {e.get('target', '')}".strip(), t, None, "fault"
                )
            )
        elif kind in ("breaker", "fallback"):
            label = f"breaker {e.get('state')}" if kind == "breaker" else "fallback"
            spans.append(
                Span(
                    "breaker", label, t, None, "info", str(e.get("label") or e.get("reason") or "")
                )
            )
        if len(spans) >= MAX_TIMELINE_SPANS:
            break
    for (kind, _), s in opened.items():  # started but never ended inside the window
        lane = "calls" if kind == "call_start" else "attempts"
        label = f"call {s.get('call')}" + (f" #{s.get('attempt')}" if lane == "attempts" else "")
        spans.append(Span(lane, label, float(s["t"]), end, "error", "did not finish"))
    spans.sort(key=lambda s: (s.start, s.lane, s.label))
    return tuple(spans)
