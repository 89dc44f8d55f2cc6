"""Verdicts become journal events in the oracle layer: a library user gets the plugin's record."""

from __future__ import annotations

from pathlib import Path

from faultlab.journal import Journal, load_journal, write_journal
from faultlab.journal import schema as ev
from faultlab.oracles import Verdict
from faultlab.oracles.verdict import MAX_EVIDENCE_SEQS, record_verdict
from faultlab.reports.model import FAILED, build_model


def test_to_event_has_the_schema_fields_and_evidence_seqs() -> None:
    evidence = [{"seq": 4, "kind": "fault"}, {"kind": "no seq"}, {"seq": 9, "kind": "call_end"}]
    event = Verdict("retry", "R1 bound", False, False, "3 attempts", evidence).to_event(nodeid="n")
    assert set(event) == set(ev.KINDS[ev.VERDICT])
    assert event == {
        "nodeid": "n",
        "oracle": "retry",
        "property": "R1 bound",
        "passed": False,
        "vacuous": False,
        "message": "3 attempts",
        "evidence": [4, 9],
    }
    many = [{"seq": i} for i in range(MAX_EVIDENCE_SEQS + 5)]
    assert len(Verdict("o", "p", True, evidence=many).to_event()["evidence"]) == MAX_EVIDENCE_SEQS


def test_a_library_user_journals_a_verdict_a_report_shows(tmp_path: Path) -> None:
    """No pytest: record_verdict, then the test event, and the report attaches the verdict."""
    j = Journal()
    verdict = Verdict("deadline", "T2 return by the deadline", False, False, "late by 2 s")
    event = record_verdict(j, verdict, nodeid="job-7")
    assert event["kind"] == ev.VERDICT
    j.record(ev.TEST, nodeid="job-7", outcome="passed", duration=0.0, t_start=0.0)
    path = write_journal(tmp_path / "journal.json", j, seed=1)
    (case,) = build_model(load_journal(path)).cases
    assert case.status == FAILED
    assert [(v.oracle, v.passed, v.message) for v in case.verdicts] == [
        ("deadline", False, "late by 2 s")
    ]
