"""The journal: the one record every layer writes and every reader reads.

- :mod:`~faultlab.journal.schema`: event kinds and their fields, one versioned schema;
- :mod:`~faultlab.journal.store`: :class:`Journal` (in memory) and :class:`FileJournal` (a child
  process's, followed by its parent);
- :mod:`~faultlab.journal.fileformat`: the ``faultlab.journal/1`` file (write, read, merge the
  per-worker files of an xdist run);
- :mod:`~faultlab.journal.timeline`: the one reading of events (calls, attempts, connections,
  fault windows, which faults acted) that oracles and reports share.

This is the floor: it imports nothing of faultlab but :mod:`faultlab.errors`.
"""

from __future__ import annotations

from faultlab.journal.fileformat import (
    JournalError,
    LoadedJournal,
    UnsupportedSchemaError,
    load_journal,
    merge_journals,
    validate,
    write_journal,
)
from faultlab.journal.schema import SCHEMA
from faultlab.journal.store import DEFAULT_MAX_EVENTS, FileJournal, Journal, read_appended
from faultlab.journal.timeline import Attempt, Call, Timeline, acted, timeline

__all__ = [
    "DEFAULT_MAX_EVENTS",
    "SCHEMA",
    "Attempt",
    "Call",
    "FileJournal",
    "Journal",
    "JournalError",
    "LoadedJournal",
    "Timeline",
    "UnsupportedSchemaError",
    "acted",
    "load_journal",
    "merge_journals",
    "read_appended",
    "timeline",
    "validate",
    "write_journal",
]
