"""JSON outputs: the merged journal (``reports/<run-id>/journal.json``) and ``summary.json``.

Both are deterministic (sorted keys, fixed layout) so two renders of one run diff clean, and
the merged journal is itself a ``faultlab.journal/1`` file that ``faultlab report`` re-reads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from faultlab.journal.fileformat import dump_journal
from faultlab.reports.model import RunModel

__all__ = ["render_journal", "render_summary", "write_json"]


def render_journal(model: RunModel) -> str:
    """The run's merged journal (xdist workers folded in), as ``faultlab.journal/1`` text."""
    header = model.journal.header()
    header["run_id"] = model.run_id
    return dump_journal(header, model.journal.events)


def render_summary(model: RunModel) -> str:
    """Counts, cells and cases: the small file a CI job or a dashboard reads."""
    return json.dumps(model.summary(), sort_keys=True, indent=2, default=repr) + "\n"


def write_json(model: RunModel, folder: str | os.PathLike[str]) -> Path:
    """Write ``<folder>/<run-id>/journal.json`` and ``summary.json``; returns that directory."""
    target = Path(folder) / model.run_id
    target.mkdir(parents=True, exist_ok=True)
    (target / "journal.json").write_text(render_journal(model), encoding="utf-8")
    (target / "summary.json").write_text(render_summary(model), encoding="utf-8")
    return target
