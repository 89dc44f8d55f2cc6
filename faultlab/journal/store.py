"""Journal stores: the in-memory journal every layer writes, and a file-backed one for children.

Events are plain dicts (JSON-ready) with a ``kind``, a time ``t`` in seconds
since the journal started (monotonic clock) and kind-specific fields. The
journal is thread-safe and bounded: past ``max_events`` the oldest events are
dropped and counted in ``dropped``, so a long soak cannot eat the memory.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

__all__ = ["DEFAULT_MAX_EVENTS", "FileJournal", "Journal", "copy_appended", "read_appended"]

DEFAULT_MAX_EVENTS = 200_000


class Journal:
    """Thread-safe, bounded, in-memory: what a Lab, a proxy engine or a client records into."""

    def __init__(self, *, max_events: int = DEFAULT_MAX_EVENTS, origin: float | None = None):
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        self.origin = time.monotonic() if origin is None else origin
        self.wall_origin = time.time()
        self._events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self.dropped = 0
        self._listeners: tuple[Callable[[dict[str, Any]], None], ...] = ()

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``listener(event)`` for each event recorded from now on, on the recording
        thread (live counters: ``/metrics`` counts faults without rescanning); it must not
        change the event. Returns the function that unsubscribes it."""
        with self._lock:
            self._listeners += (listener,)

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = tuple(f for f in self._listeners if f is not listener)

        return unsubscribe

    def now(self) -> float:
        return time.monotonic() - self.origin

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one event; returns it (with ``seq`` and ``t`` filled in)."""
        return self._append({"seq": 0, "t": fields.pop("t", None), "kind": kind, **fields})

    def record_merged(
        self, kind: str, shared: Mapping[str, Any], fields: dict[str, Any]
    ) -> dict[str, Any]:
        """``record(kind, **shared, **fields)`` building one dict instead of three: the proxy
        journals a fault per chunk with fields fixed per link (``shared``)."""
        return self._append(
            {"seq": 0, "t": fields.pop("t", None), "kind": kind, **shared, **fields}
        )

    def _append(self, event: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            event["seq"] = next(self._seq)
            if event["t"] is None:
                event["t"] = self.now()
            if len(self._events) == self._events.maxlen:
                self.dropped += 1
            self._events.append(event)
        for listener in self._listeners:
            listener(event)
        return event

    def events(self, *, since: int = 0, kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """A copy of the events with ``seq >= since`` (optionally only some kinds)."""
        wanted = set(kinds) if kinds is not None else None
        with self._lock:
            return [
                dict(e)
                for e in self._events
                if e["seq"] >= since and (wanted is None or e["kind"] in wanted)
            ]

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.events())


class FileJournal(Journal):
    """A journal that also appends every event as a JSON line, so a parent process can follow
    a child's events (:func:`read_appended`) while the child runs or after it was killed."""

    def __init__(self, path: str | Path, origin: float) -> None:
        super().__init__(origin=origin)
        self.path = Path(path)
        self._file: IO[str] = open(self.path, "a", buffering=1)  # noqa: SIM115 - process-long
        self._write_lock = threading.Lock()

    def _append(self, event: dict[str, Any]) -> dict[str, Any]:
        super()._append(event)
        with self._write_lock:
            self._file.write(json.dumps(event, default=repr) + "\n")
        return event

    def close(self) -> None:
        with self._write_lock:
            self._file.close()


def read_appended(path: str | Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The complete JSON lines a :class:`FileJournal` appended past ``offset``, and the offset
    to read from next (a line still being written is left for the next read)."""
    try:
        with open(path) as f:
            f.seek(offset)
            complete, _, _ = f.read().rpartition("\n")
    except FileNotFoundError:
        return [], offset
    events = [json.loads(line) for line in complete.splitlines() if line.strip()]
    return events, offset + len(complete) + (1 if complete else 0)


def copy_appended(path: str | Path, offset: int, journal: Journal) -> int:
    """Record into ``journal`` what a child's :class:`FileJournal` appended past ``offset``
    (renumbered on ``journal``'s sequence); return the offset to read from next."""
    events, offset = read_appended(path, offset)
    for event in events:
        kind = event.pop("kind")
        event.pop("seq", None)
        journal.record(kind, **event)
    return offset
