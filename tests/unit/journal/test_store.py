"""The stores: the in-memory journal, and the file-backed one a child process writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faultlab.journal import FileJournal, Journal, read_appended


def test_journal_orders_bounds_and_filters() -> None:
    j = Journal(max_events=2)
    j.record("a", x=1)
    j.record("b", t=5.0)
    j.record("a")
    assert [e["seq"] for e in j.events()] == [1, 2]
    assert j.dropped == 1
    assert [e["kind"] for e in j.events(kinds=["a"])] == ["a"]
    assert j.events(since=2)[0]["kind"] == "a"
    assert j.events()[0]["t"] == 5.0
    with pytest.raises(ValueError, match="max_events"):
        Journal(max_events=0)


def test_file_journal_appends_lines_a_parent_follows(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    child = FileJournal(path, origin=0.0)
    child.record("server_request", method="add", outcome="ok", t=1.5)
    events, offset = read_appended(path)
    assert [(e["kind"], e["method"], e["t"]) for e in events] == [("server_request", "add", 1.5)]
    assert read_appended(path, offset) == ([], offset)
    child.record("side_effect", key="k", t=2.0)
    with open(path, "a") as f:  # a line the child is still writing is left for the next read
        f.write('{"kind": "side_eff')
    events, offset2 = read_appended(path, offset)
    assert [e["kind"] for e in events] == ["side_effect"]
    with open(path, "a") as f:
        f.write('ect", "t": 3.0, "seq": 9}\n')
    events, _ = read_appended(path, offset2)
    assert events == [{"kind": "side_effect", "t": 3.0, "seq": 9}]
    child.close()
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_read_appended_of_a_file_not_yet_written(tmp_path: Path) -> None:
    assert read_appended(tmp_path / "missing.jsonl", 7) == ([], 7)
