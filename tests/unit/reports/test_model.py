"""The run model: loading, validation, merging, and what the journal says about each test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from faultlab.errors import FaultlabError
from faultlab.journal import Journal
from faultlab.journal.fileformat import (
    SCHEMA,
    JournalError,
    UnsupportedSchemaError,
    dump_journal,
    load_journal,
    write_journal,
)
from faultlab.reports.model import (
    FAILED,
    NOT_TRIGGERED,
    PASSED,
    SKIPPED,
    VACUOUS,
    RunModel,
    build_model,
    fault_label,
    quantile,
)
from tests.unit.reports.journals import JournalBuilder


def _write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _by_cell(model: RunModel) -> dict[tuple[str, str, str], list[str]]:
    cells: dict[tuple[str, str, str], list[str]] = {}
    for case in model.cases:
        cells.setdefault(case.cell_key, []).append(case.status)
    return cells


# ---- status classification -----------------------------------------------------------------
def test_every_status_is_classified_from_events(model: RunModel) -> None:
    cells = _by_cell(model)
    lat = "latency[latency=40,jitter=5]"
    assert cells[("tcp", "binrpc", "reset_peer[timeout=0]")] == [FAILED]
    assert cells[("unix", "jsonrpc", "drop[probability=0.3]")] == [VACUOUS]
    assert cells[("unix", "binrpc", lat)] == [NOT_TRIGGERED]
    assert cells[("tcp", "jsonrpc", lat)] == [PASSED]
    assert cells[("tcp", "jsonrpc", "none")] == [PASSED, SKIPPED]
    assert model.counts == {
        FAILED: 1,
        VACUOUS: 1,
        NOT_TRIGGERED: 1,
        PASSED: 14,
        SKIPPED: 1,
    }


def test_cell_shows_its_worst_status(model: RunModel) -> None:
    matrix = model.matrix()
    assert matrix.faults[0] == "none"
    assert ("tcp", "binrpc") in matrix.rows
    assert matrix.get(("tcp", "jsonrpc"), "none") is not None
    cell = matrix.get(("tcp", "jsonrpc"), "none")
    assert cell is not None
    assert cell.status == PASSED
    assert cell.counts == {PASSED: 1, SKIPPED: 1}
    assert matrix.get(("unix", "binrpc"), "pause server") is None


def test_a_soft_failed_verdict_fails_the_case_even_if_pytest_passed() -> None:
    b = JournalBuilder()
    b.case(
        "tcp",
        "binrpc",
        {"type": "latency", "latency": 5},
        verdicts=(("deadline", "within", False, False),),
    )
    model = build_model(_loaded(b.data()))
    assert model.cases[0].outcome == "passed"
    assert model.cases[0].status == FAILED


def test_vacuous_needs_every_verdict_vacuous() -> None:
    b = JournalBuilder()
    b.case("tcp", "binrpc", None, verdicts=(("a", "p", True, True), ("b", "q", True, False)))
    b.case("tcp", "binrpc", None, name="t2", verdicts=(("a", "p", True, True),))
    statuses = [c.status for c in build_model(_loaded(b.data())).cases]
    assert statuses == [PASSED, VACUOUS]


def test_not_triggered_ignores_passive_decisions_but_counts_process_faults() -> None:
    b = JournalBuilder()
    b.case("tcp", "binrpc", {"type": "latency", "latency": 5, "toxicity": 0.0}, triggered=False)
    b.case("tcp", "binrpc", None, name="test_pause", process="pause", calls=3)
    first, second = build_model(_loaded(b.data())).cases
    assert (first.status, first.configured, first.triggered) == (NOT_TRIGGERED, True, False)
    assert first.fault_events == 1  # the toxicity draw
    assert (second.status, second.triggered, second.fault_label) == (PASSED, True, "pause server")
    assert [w.kind for w in second.fault_windows] == ["process"]


def test_a_clean_test_is_passed_not_untriggered(model: RunModel) -> None:
    clean = [c for c in model.cases if c.fault_label == "none" and c.outcome == "passed"]
    assert clean
    assert all(not c.configured and c.status == PASSED for c in clean)


# ---- latency, windows, timeline, plan ------------------------------------------------------
def test_latency_samples_split_clean_and_faulted(model: RunModel) -> None:
    cells = model.matrix().cells
    clean = cells[("tcp", "binrpc", "none")]
    lat = cells[("tcp", "binrpc", "latency[latency=40,jitter=5]")]
    untriggered = cells[("unix", "binrpc", "latency[latency=40,jitter=5]")]
    assert clean.faulted_latencies == []
    assert len(clean.clean_latencies) == 6
    assert lat.clean_latencies == []
    assert len(lat.faulted_latencies) == 6
    assert max(lat.faulted_latencies) > 0.04 > max(clean.clean_latencies)
    # a toxic in place that never acted leaves its attempts clean
    assert untriggered.faulted_latencies == []
    assert len(untriggered.clean_latencies) == 6


def test_attempt_durations_come_from_start_end_pairs() -> None:
    b = JournalBuilder()
    b.case("tcp", "binrpc", None, calls=1)
    case = build_model(_loaded(b.data())).cases[0]
    starts = [e for e in b.events if e["kind"] == "attempt_start"]
    ends = [e for e in b.events if e["kind"] == "attempt_end"]
    assert [s.duration for s in case.latency] == pytest.approx([ends[0]["t"] - starts[0]["t"]])


def test_failing_case_has_a_timeline_with_fault_windows_plan_and_replay(model: RunModel) -> None:
    (case,) = model.failing
    lanes = {s.lane for s in case.timeline}
    assert {"calls", "attempts", "faults", "server"} <= lanes
    assert any(s.status == "error" for s in case.timeline if s.lane == "attempts")
    assert all(case.t_start <= s.start <= case.t_end for s in case.timeline)
    (window,) = case.fault_windows
    assert (window.kind, window.name, window.type) == (
        "toxic",
        "reset_peer_downstream",
        "reset_peer",
    )
    assert case.t_start <= window.start < window.end <= case.t_end  # clipped to the test
    assert case.plan["shrunk_from"] == 9
    assert case.replay.endswith("--faultlab-seed=4242")
    assert case.reason == "retry.bounded_retries: bounded_retries: 3 attempts > max_attempts=2"
    assert case.verdict_summary() == "1 failed, 1 passed"
    passing = [c for c in model.cases if c.status != FAILED]
    assert all(c.timeline == () for c in passing)  # only failing cases carry one


def test_reason_falls_back_to_pytests_error_line() -> None:
    b = JournalBuilder()
    b.case(
        "tcp",
        "binrpc",
        None,
        outcome="failed",
        verdicts=(),
        message="    def test():\n>       boom()\nE       RuntimeError: boom\n\nx.py:3: Error",
    )
    assert build_model(_loaded(b.data())).cases[0].reason == "RuntimeError: boom"


def test_replay_defaults_when_the_test_event_has_none() -> None:
    b = JournalBuilder(seed=9)
    b.case("tcp", "binrpc", None)
    data = b.data()
    for e in data["events"]:
        e.pop("replay", None)
    case = build_model(_loaded(data)).cases[0]
    assert case.replay == f"pytest '{case.nodeid}' --faultlab-seed=9"


def test_test_without_t_start_uses_its_duration() -> None:
    b = JournalBuilder()
    b.case("tcp", "binrpc", None)
    data = b.data()
    test = next(e for e in data["events"] if e["kind"] == "test")
    test["t_start"] = None
    case = build_model(_loaded(data)).cases[0]
    assert case.t_start == pytest.approx(test["t"] - test["duration"])


def test_summary_is_json_ready(model: RunModel) -> None:
    summary = model.summary()
    json.dumps(summary, allow_nan=False)
    assert summary["counts"][FAILED] == 1
    assert summary["total"] == 18
    assert summary["replay"] == "pytest --faultlab-seed=4242"


# ---- loading, merging, validation ----------------------------------------------------------
def _loaded(data: dict[str, Any]) -> Any:
    from faultlab.journal.fileformat import LoadedJournal, validate

    validate(data)
    return LoadedJournal(seed=data["seed"], events=tuple(dict(e) for e in data["events"]))


def test_xdist_worker_journals_merge_by_time_without_mixing_clocks(tmp_path: Path) -> None:
    a, b = JournalBuilder(seed=5), JournalBuilder(seed=5)
    a.case("tcp", "binrpc", {"type": "latency", "latency": 30})
    b.case("unix", "binrpc", None)  # overlaps a's test in time, on another worker's clock
    _write(tmp_path / "journal-gw0.json", a.data())
    _write(tmp_path / "journal-gw1.json", b.data())
    journal = load_journal(tmp_path)
    assert journal.workers == ("gw0", "gw1")
    times = [e["t"] for e in journal.events]
    assert times == sorted(times)
    assert len(journal.events) == len(a.events) + len(b.events)
    model = build_model(journal)
    unix = next(c for c in model.cases if c.transport == "unix")
    assert unix.worker == "gw1"
    assert unix.fault_windows == ()
    assert unix.status == PASSED
    assert all(not s.faulted for s in unix.latency)


def test_duplicate_events_are_dropped(journal_path: Path, tmp_path: Path) -> None:
    copy = _write(tmp_path / "again.json", journal_path.read_text())
    once = load_journal(journal_path)
    twice = load_journal([journal_path, copy, journal_path])
    assert twice.events == once.events


def test_journals_of_different_runs_are_refused(tmp_path: Path) -> None:
    a = _write(tmp_path / "journal-gw0.json", JournalBuilder(seed=1).data())
    b = _write(tmp_path / "journal-gw1.json", JournalBuilder(seed=2).data())
    with pytest.raises(JournalError, match="different runs"):
        load_journal([a, b])


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        ("{", JournalError, "not JSON"),
        ("[1, 2]", JournalError, "top level is list"),
        ('{"seed": 1, "events": []}', JournalError, "no 'schema'"),
        (
            '{"schema": "faultlab.journal/2", "seed": 1, "events": []}',
            UnsupportedSchemaError,
            "not supported",
        ),
        (
            '{"schema": "other/1", "seed": 1, "events": []}',
            UnsupportedSchemaError,
            "not a faultlab journal",
        ),
        ('{"schema": "faultlab.journal/1", "seed": "x", "events": []}', JournalError, "'seed'"),
        ('{"schema": "faultlab.journal/1", "seed": 1, "events": {}}', JournalError, "'events'"),
        (
            '{"schema": "faultlab.journal/1", "seed": 1, "events": [3]}',
            JournalError,
            "event #0 is not an object",
        ),
        (
            '{"schema": "faultlab.journal/1", "seed": 1, "events": [{"t": 1}]}',
            JournalError,
            "no 'kind'",
        ),
        (
            '{"schema": "faultlab.journal/1", "seed": 1, "events": [{"kind": "x", "t": "1"}]}',
            JournalError,
            "'t' must be a finite number",
        ),
        (
            '{"schema": "faultlab.journal/1", "seed": 1, "events": [{"kind": "x", "t": NaN}]}',
            JournalError,
            "'t' must be a finite number",
        ),
        (
            '{"schema": "faultlab.journal/1", "seed": 1, "events": [], "environment": []}',
            JournalError,
            "'environment'",
        ),
        ("[" * 100_000, JournalError, "nested too deeply|not JSON"),
    ],
)
def test_malformed_journals_raise_a_typed_error(
    tmp_path: Path, content: str, error: type[Exception], match: str
) -> None:
    path = _write(tmp_path / "journal.json", content)
    with pytest.raises(error, match=match) as info:
        load_journal(path)
    assert isinstance(info.value, FaultlabError)
    assert isinstance(info.value, ValueError)
    assert info.value.path == str(path)


def test_missing_inputs_raise_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no such file"):
        load_journal(tmp_path / "nope.json")
    with pytest.raises(JournalError, match=r"no journal\*\.json"):
        load_journal(tmp_path)
    with pytest.raises(JournalError, match="no journal files"):
        load_journal([])
    _write(tmp_path / "bin.json", "")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(JournalError, match="cannot read"):
        load_journal(tmp_path / "bin.json")


def test_model_survives_odd_but_valid_events() -> None:
    events = [
        {"kind": "attempt_end", "t": 0.1, "call": 1, "attempt": 1},  # no start
        {"kind": "toxic_removed", "t": 0.2, "proxy": "p", "toxic": "x"},  # never added
        {"kind": "process", "t": 0.3, "action": "resume"},
        {"kind": "toxic_added", "t": 0.4, "proxy": "p", "toxic": "y", "toxicity": "bad"},
        {"kind": "test", "t": 0.5, "nodeid": "t::a", "duration": "?", "outcome": "passed"},
        {"kind": "mystery", "t": 0.6, "anything": [1, {"x": None}]},
    ]
    data = {"schema": SCHEMA, "seed": 3, "events": events}
    model = build_model(_loaded(data))
    (case,) = model.cases
    assert case.duration == 0.0
    assert case.transport == "-"
    assert model.event_kinds["mystery"] == 1


# ---- writing -------------------------------------------------------------------------------
def test_write_journal_records_environment_and_reads_back(tmp_path: Path) -> None:
    journal = Journal()
    journal.record("call_start", call=1, method="add", params="(1, 2)")
    journal.record("fault", proxy="p", toxic="x", decision="delay", ratio=float("nan"))
    path = write_journal(tmp_path / "out" / "journal-gw3.json", journal, 77, {"argv": ["-x"]})
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA
    assert data["seed"] == 77
    assert set(data["environment"]) >= {"python", "platform", "faultlab"}
    assert data["extra"] == {"argv": ["-x"]}
    loaded = load_journal(path)
    assert loaded.seed == 77
    assert loaded.workers == ("gw3",)
    assert loaded.environment["faultlab"] == data["environment"]["faultlab"]
    assert [e["kind"] for e in loaded.events] == ["call_start", "fault"]
    assert loaded.created is not None
    assert not list(tmp_path.glob("out/.*.tmp"))


def test_dump_journal_is_deterministic_and_valid_json() -> None:
    events = [{"t": 0.5, "kind": "b", "z": 1, "a": 2}, {"kind": "a", "t": 0.1}]
    one = dump_journal({"seed": 1, "schema": SCHEMA}, events)
    two = dump_journal({"schema": SCHEMA, "seed": 1}, [dict(reversed(e.items())) for e in events])
    assert one == two
    assert json.loads(one)["events"][0] == {"a": 2, "kind": "b", "t": 0.5, "z": 1}
    assert json.loads(dump_journal({}, []))["events"] == []


def test_run_id_is_stable_and_derived_from_the_journal(journal_path: Path) -> None:
    one = build_model(load_journal(journal_path)).run_id
    assert one == build_model(load_journal(journal_path)).run_id
    assert one.startswith("20251009-")


@pytest.mark.parametrize(
    ("fault", "label"),
    [
        (None, "none"),
        ({"type": "latency", "latency": 100}, "latency[latency=100]"),
        (
            {"type": "timeout", "stream": "upstream", "attributes": {"timeout": 0}},
            "timeout[timeout=0]",
        ),
        ({"type": "drop", "toxicity": 0.5}, "drop[toxicity=0.5]"),
        ([{"type": "a"}, {"type": "b"}], "a+b"),
        ("partition", "partition"),
    ],
)
def test_fault_labels(fault: Any, label: str) -> None:
    assert fault_label(fault) == label


def test_quantile() -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([5.0], 0.95) == 5.0
    with pytest.raises(ValueError, match="nothing"):
        quantile([], 0.5)


def test_deleting_a_proxy_closes_its_toxic_windows() -> None:
    b = JournalBuilder()
    b.ev("toxic_added", 0.1, proxy="p", toxic="lat", type="latency", stream="downstream")
    b.ev("proxy_deleted", 0.1, proxy="p")
    b.case("tcp", "binrpc", None, calls=1)  # later test on a new proxy: no fault window
    (case,) = build_model(_loaded(b.data())).cases
    assert case.fault_windows == ()
    assert case.status == PASSED
