"""Oracle vacuity and a report's "not triggered" share one definition of a fault that acted.

Before the journal floor, reports counted any ``fault`` decision but a pass as acting (so a 0 ms
``delay`` triggered a case the deadline oracle called vacuous) and ignored ``upstream_failed``
(so a case the oracle judged under a fault showed as "not triggered"). These journals are those
two cases plus a real delay; oracle and report must now say the same of each.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from faultlab.journal import Journal, load_journal, timeline, write_journal
from faultlab.journal import schema as ev
from faultlab.oracles import DeadlinePolicy, check_deadline
from faultlab.oracles.verdict import Verdict, record_verdict
from faultlab.reports.model import NOT_TRIGGERED, PASSED, VACUOUS, build_model

if TYPE_CHECKING:
    from faultlab.reports.model import TestCase

NODEID = "test_x.py::test_add"
FAULT = {"type": "latency", "latency": 0}

ZERO_DELAY = {"kind": ev.FAULT, "decision": "delay", "delay_ms": 0, "toxic": "lat"}
UPSTREAM_FAILED = {"kind": ev.UPSTREAM_FAILED, "upstream": "tcp://127.0.0.1:9", "error": "refused"}
REAL_DELAY = {"kind": ev.FAULT, "decision": "delay", "delay_ms": 50, "toxic": "lat"}


def _journal(fault: dict[str, Any], *, with_verdict: bool) -> tuple[Journal, Verdict]:
    """One test: a latency toxic in place, one call during which ``fault`` is journaled."""
    j = Journal()
    t0 = j.now()
    j.record(ev.TOXIC_ADDED, t=t0, proxy="p", toxic="lat", type="latency", stream="downstream")
    j.record(ev.CALL_START, t=t0 + 0.010, call=1, method="add", params="(1, 2)", label="")
    j.record(ev.ATTEMPT_START, t=t0 + 0.011, call=1, attempt=1, method="add")
    fields = {k: v for k, v in fault.items() if k != "kind"}
    j.record(fault["kind"], t=t0 + 0.012, proxy="p", connection=1, direction="downstream", **fields)
    j.record(ev.ATTEMPT_END, t=t0 + 0.013, call=1, attempt=1, outcome="ok")
    j.record(ev.CALL_END, t=t0 + 0.014, call=1, outcome="value", value="3", duration=0.004)
    verdict = check_deadline(j, DeadlinePolicy(deadline=1.0))
    if with_verdict:
        record_verdict(j, verdict, nodeid=NODEID)
    j.record(
        ev.TEST,
        t=max(j.now(), t0 + 0.02),
        nodeid=NODEID,
        outcome="passed",
        duration=0.015,
        transport="tcp",
        protocol="binrpc",
        fault=FAULT,
        t_start=t0 + 0.005,
    )
    return j, verdict


def _case(tmp_path: Path, j: Journal) -> TestCase:
    """The report's view, through the file as a run leaves it."""
    path = write_journal(tmp_path / "journal.json", j, seed=7)
    (case,) = build_model(load_journal(path)).cases
    return case


@pytest.mark.parametrize(
    ("fault", "acted"),
    [(ZERO_DELAY, False), (UPSTREAM_FAILED, True), (REAL_DELAY, True)],
    ids=["zero-ms-delay", "upstream-failed", "real-delay"],
)
def test_oracle_vacuity_and_report_trigger_agree(
    tmp_path: Path, fault: dict[str, Any], acted: bool
) -> None:
    j, verdict = _journal(fault, with_verdict=True)
    case = _case(tmp_path, j)
    assert verdict.passed
    assert verdict.vacuous is not acted
    assert case.triggered is acted
    assert timeline(j).touched() is acted
    assert case.status == (PASSED if acted else VACUOUS)
    (record,) = case.verdicts
    assert record.vacuous is verdict.vacuous


@pytest.mark.parametrize(
    ("fault", "status"),
    [(ZERO_DELAY, NOT_TRIGGERED), (UPSTREAM_FAILED, PASSED), (REAL_DELAY, PASSED)],
    ids=["zero-ms-delay", "upstream-failed", "real-delay"],
)
def test_without_a_verdict_the_report_status_follows_the_same_rule(
    tmp_path: Path, fault: dict[str, Any], status: str
) -> None:
    j, _ = _journal(fault, with_verdict=False)
    assert _case(tmp_path, j).status == status
