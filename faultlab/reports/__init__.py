"""Reports rendered from the journal: HTML, JSON, JUnit XML and a terminal summary.

``load_journal`` (the journal floor's, re-exported) reads and merges journal files,
``build_model`` turns their events into a :class:`RunModel`, and each view renders that model.
Nothing here looks at live state.
"""

from __future__ import annotations

from faultlab.journal.fileformat import (
    SCHEMA,
    JournalError,
    LoadedJournal,
    UnsupportedSchemaError,
    load_journal,
    write_journal,
)
from faultlab.reports.model import RunModel, build_model

__all__ = [
    "SCHEMA",
    "JournalError",
    "LoadedJournal",
    "RunModel",
    "UnsupportedSchemaError",
    "build_model",
    "load_journal",
    "write_journal",
]
