"""The journal file format ``faultlab.journal/1``: write, read, validate and merge.

One JSON object ``{"schema", "seed", "events", ...}``; optional header fields ``worker``,
``workers``, ``run_id``, ``created``, ``environment``, ``dropped``, ``merged`` and ``extra``.
Readers accept any ``faultlab.journal/1`` file and refuse other versions with
:class:`UnsupportedSchemaError`; writers add fields, never rename or retype them. Under xdist
each worker writes ``journal-<worker>.json`` and the controller merges them into one
``journal.json`` (:func:`merge_journals`), the file reports and ``faultlab report`` read.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from faultlab.errors import FaultlabError
from faultlab.journal.schema import SCHEMA

__all__ = [
    "SCHEMA",
    "JournalError",
    "LoadedJournal",
    "UnsupportedSchemaError",
    "dump_journal",
    "environment",
    "load_journal",
    "merge_journals",
    "validate",
    "write_journal",
]

_SCHEMA_FAMILY = "faultlab.journal/"


class JournalError(FaultlabError, ValueError):
    """A journal is missing, not JSON, or not a faultlab journal: reports refuse it clearly."""

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class UnsupportedSchemaError(JournalError):
    """A journal of another schema version: newer faultlab wrote it, or it is not ours."""


# ---- writing -------------------------------------------------------------------------------
# ---- writing -------------------------------------------------------------------------------
def environment() -> dict[str, str]:
    """Where this run happened: recorded by the writer because a re-render runs elsewhere."""
    try:
        version = metadata.version("faultlab")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        version = "unknown"
    return {
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "faultlab": version,
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
        """The merged journal's header (what :func:`merge_journals` and reports write)."""
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
    # a merged journal.json stands for the worker files it was made from: read those once
    covered = {str(n) for d in parsed for n in d.get("merged") or ()}
    if covered:
        kept = [(d, p) for d, p in zip(parsed, files, strict=True) if p.name not in covered]
        parsed, files = [d for d, _ in kept], [p for _, p in kept]
    return _merge(parsed, files)


def merge_journals(paths: Sequence[str | os.PathLike[str]], target: str | os.PathLike[str]) -> Path:
    """Merge per-worker journal files (an xdist run's ``journal-<worker>.json``) into one
    ``faultlab.journal/1`` file at ``target``, atomically; it names the files it covers in
    ``merged`` so a reader given the whole directory reads each event once."""
    loaded = load_journal(list(paths))
    header = loaded.header()
    header["merged"] = sorted(Path(s).name for s in loaded.sources)
    if header["run_id"] is None:
        del header["run_id"]
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(dump_journal(header, loaded.events), encoding="utf-8")
    os.replace(tmp, out)
    return out


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
    for key in ("merged", "workers"):
        names = data.get(key)
        if names is not None and (
            not isinstance(names, list) or not all(isinstance(n, str) for n in names)
        ):
            raise JournalError(f"{key!r} must be a list of strings", path)
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
