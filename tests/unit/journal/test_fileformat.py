"""The file format's merge: an xdist run's per-worker journals become one journal.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faultlab.journal import (
    SCHEMA,
    Journal,
    JournalError,
    load_journal,
    merge_journals,
    validate,
    write_journal,
)


def _worker(folder: Path, name: str, kinds: list[str], *, seed: int = 3, dropped: int = 0) -> Path:
    j = Journal()
    for i, kind in enumerate(kinds):
        j.record(kind, t=0.1 * (i + 1), who=name)
    j.dropped = dropped
    return write_journal(folder / f"journal-{name}.json", j, seed, worker=name)


def test_merge_writes_one_journal_of_every_worker(tmp_path: Path) -> None:
    a = _worker(tmp_path, "gw0", ["call_start", "call_end"], dropped=2)
    b = _worker(tmp_path, "gw1", ["test"], dropped=1)
    out = merge_journals([a, b], tmp_path / "journal.json")
    data = validate(json.loads(out.read_text()))
    assert data["schema"] == SCHEMA
    assert data["merged"] == ["journal-gw0.json", "journal-gw1.json"]
    assert data["workers"] == ["gw0", "gw1"]
    assert data["dropped"] == 3
    assert [(e["worker"], e["kind"]) for e in data["events"]] == [
        ("gw0", "call_start"),
        ("gw1", "test"),
        ("gw0", "call_end"),
    ]


def test_a_directory_with_the_merged_file_reads_each_event_once(tmp_path: Path) -> None:
    a = _worker(tmp_path, "gw0", ["call_start", "call_end"], dropped=2)
    b = _worker(tmp_path, "gw1", ["test"])
    merge_journals([a, b], tmp_path / "journal.json")
    whole = load_journal(tmp_path)
    assert len(whole.events) == 3
    assert whole.dropped == 2
    assert whole.sources == (str(tmp_path / "journal.json"),)
    assert load_journal([a, b]).events == whole.events


def test_merge_refuses_journals_of_different_runs(tmp_path: Path) -> None:
    a = _worker(tmp_path, "gw0", ["test"], seed=1)
    b = _worker(tmp_path, "gw1", ["test"], seed=2)
    with pytest.raises(JournalError, match="different runs"):
        merge_journals([a, b], tmp_path / "journal.json")
    assert not (tmp_path / "journal.json").exists()


@pytest.mark.parametrize("field", ["merged", "workers"])
def test_validate_checks_the_merge_header(field: str) -> None:
    with pytest.raises(JournalError, match=field):
        validate({"schema": SCHEMA, "seed": 1, "events": [], field: "journal-gw0.json"})
