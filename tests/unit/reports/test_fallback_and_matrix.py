"""Reports draw a call answered by a fallback as a fallback, and put failing cells first.

Journals are built event by event in the shape the Lab writes them (``call_start``,
``attempt_*``, ``fallback``, ``call_end``, ``fault``, ``verdict``, ``test``); the views are
rendered and their output read back.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from faultlab.journal.timeline import timeline
from faultlab.reports.model import (
    FAILED,
    PASSED,
    VACUOUS,
    RunModel,
    build_model,
    fallback_evidence,
    load_journal,
)
from faultlab.reports.terminal import print_summary
from tests.unit.reports.journals import JournalBuilder

NODE = "tests/test_svc.py::test_cached[tcp-jsonrpc-reset_peer]"


def _load(tmp_path: Path, data: dict[str, Any]) -> RunModel:
    path = tmp_path / f"journal{len(list(tmp_path.glob('journal*.json')))}.json"
    path.write_text(json.dumps(data))
    return build_model(load_journal(path))


def _call(
    b: JournalBuilder,
    call: int,
    attempts: list[str],
    outcome: str,
    *,
    value: str = "3",
    fallback: str | None = None,
    fault_first: bool = False,
) -> None:
    """One logical call: its attempts (``"ok"`` / ``"error"``), maybe a fallback event."""
    b.ev("call_start", 0.001, call=call, method="add", params="(1, 2)", idempotent=True, label="")
    for n, result in enumerate(attempts, 1):
        b.ev("attempt_start", 0.0005, call=call, attempt=n, method="add")
        if result == "error":
            if fault_first:
                b.ev(
                    "fault", 0.0002, proxy="p", connection=1, direction="downstream",
                    toxic="reset_peer_downstream", type="reset_peer", decision="reset",
                )  # fmt: skip
            b.ev(
                "attempt_end", 0.001, call=call, attempt=n, outcome="error",
                error="ConnectionResetError", error_kind="connection_reset", transient=True,
            )  # fmt: skip
        else:
            b.ev("attempt_end", 0.001, call=call, attempt=n, outcome="ok")
    if fallback is not None:
        b.ev("fallback", 0.0002, call=call, reason=fallback)
    end: dict[str, Any] = {"outcome": outcome, "attempts": len(attempts), "duration": 0.003}
    if outcome in ("value", "fallback"):
        end["value"] = value
    else:
        end.update(error="ConnectionResetError", error_kind="connection_reset")
    b.ev("call_end", 0.0002, call=call, **end)


def _test(
    b: JournalBuilder,
    nodeid: str,
    t_start: float,
    *,
    fault: dict[str, Any] | None,
    verdict: tuple[bool, bool] = (True, False),
    transport: str = "tcp",
    protocol: str = "jsonrpc",
) -> None:
    passed, vacuous = verdict
    b.ev(
        "verdict", 0.0003, nodeid=nodeid, oracle="fallback", property="F1 fallback iff handled",
        passed=passed, vacuous=vacuous, message="ok" if passed else "the error was masked",
        evidence=[],
    )  # fmt: skip
    b.ev(
        "test", 0.0005, nodeid=nodeid, outcome="passed", duration=round(b.t - t_start, 6),
        transport=transport, protocol=protocol, fault=fault, backend="thread", seed=b.seed,
        plan=None, replay=f"pytest '{nodeid}' --faultlab-seed={b.seed}", t_start=t_start,
        message="",
    )  # fmt: skip


def _fallback_journal() -> dict[str, Any]:
    """One failing test whose calls got: the primary's value, a fallback by each kind of
    evidence, and a plain error."""
    b = JournalBuilder(seed=7)
    t0 = round(b.t + 0.001, 6)
    b.t = t0
    b.ev(
        "toxic_added", 0.0005, proxy="p", toxic="reset_peer_downstream",
        name="reset_peer_downstream", type="reset_peer", stream="downstream", toxicity=1.0,
        attributes={"timeout": 0},
    )  # fmt: skip
    _call(b, 1, ["ok"], "value")  # the primary answered
    _call(b, 2, ["error"], "fallback", value="'cached'", fault_first=True)  # outcome fallback
    _call(b, 3, ["error"], "value", value="'cached'", fallback="cache")  # a fallback event
    _call(b, 4, ["error", "error"], "value", value="'stale'", fault_first=True)  # wire's view
    _call(b, 5, [], "value", value="'from cache'")  # no attempt while a fault acted
    _call(b, 6, ["error"], "error", fault_first=True)  # the caller got the error
    _test(b, NODE, t0, fault={"type": "reset_peer", "timeout": 0}, verdict=(False, False))
    b.ev("toxic_removed", 0.001, proxy="p", toxic="reset_peer_downstream")
    return b.data()


@pytest.fixture
def fallback_model(tmp_path: Path) -> RunModel:
    return _load(tmp_path, _fallback_journal())


# ---- the model: one definition of "answered by a fallback" --------------------------------
def test_each_kind_of_evidence_makes_a_fallback(fallback_model: RunModel) -> None:
    (case,) = fallback_model.cases
    results = {r.call: r.result for r in case.calls}
    assert results == {1: "ok", 2: "fallback", 3: "fallback", 4: "fallback", 5: "fallback",
                       6: "error"}  # fmt: skip
    got = {r.call: r.got for r in case.calls}
    assert got[4] == "'stale'"  # what the caller got, not "ok"
    why = {r.call: r.why for r in case.calls}
    assert why[3] == "the client journaled a fallback (cache)"
    assert why[2] == "the call ended as a fallback"
    assert "last attempt failed with 'connection_reset'" in why[4]
    assert "without a single request" in why[5]
    assert why[1] == why[6] == ""
    assert case.call_counts == {"ok": 1, "fallback": 4, "error": 1}


def test_a_value_without_attempts_and_without_faults_is_no_fallback(tmp_path: Path) -> None:
    """A cache hit on a clean run needs no attempt: it is the primary's answer, not a
    fallback; the same call while a fault acts is one."""
    b = JournalBuilder(seed=3)
    b.ev("call_start", 0.001, call=1, method="add", label="")
    b.ev("call_end", 0.001, call=1, outcome="value", value="3")
    (call,) = timeline(b.events).calls
    assert fallback_evidence(call, faults_active=False) is None
    assert fallback_evidence(call, faults_active=True) is not None
    t0 = 0.0
    _test(b, "t.py::test_clean", t0, fault=None)
    (case,) = _load(tmp_path, b.data()).cases
    assert [r.result for r in case.calls] == ["ok"]


def test_the_timeline_draws_fallbacks_apart_from_ok(fallback_model: RunModel) -> None:
    (case,) = fallback_model.cases
    spans = {s.label: s.status for s in case.timeline if s.lane == "calls"}
    assert spans["call 1 add"] == "ok"
    for call in (2, 3, 4, 5):
        assert spans[f"call {call} add"] == "fallback"
    assert spans["call 6 add"] == "error"


# ---- HTML ----------------------------------------------------------------------------------
def test_html_shows_a_fallback_call_as_fallback_not_ok(fallback_model: RunModel) -> None:
    pytest.importorskip("jinja2")
    pytest.importorskip("matplotlib")
    from faultlab.reports.html import FALLBACK, render_html

    html = render_html(fallback_model)
    results = re.findall(r'<tr data-result="([a-z]+)"><td class="num">(\d+)</td>', html)
    assert results == [("ok", "1"), ("fallback", "2"), ("fallback", "3"), ("fallback", "4"),
                       ("fallback", "5"), ("error", "6")]  # fmt: skip
    row4 = html[html.index('<td class="num">4</td>') :]
    row4 = row4[: row4.index("</tr>")]
    assert "↩ fallback" in row4
    assert "✓ ok" not in row4
    assert "&#39;stale&#39;" in row4  # what the caller got
    assert f"--c: {FALLBACK}" in row4  # amber, not the green of ok
    assert '<span class="cc cc-fallback">4 fallback</span>' in html  # the all-tests table
    # the timeline plot has an amber bar and a "fallback" legend entry
    svg = html[html.index('id="fig-timeline-0"') :]
    svg = svg[: svg.index("</svg>")]
    assert FALLBACK.lstrip("#").lower() in svg.lower()
    assert ">fallback<" in svg


def _matrix_journal() -> dict[str, Any]:
    """Twelve fault columns over three rows; the failing and vacuous cells sit at the end."""
    b = JournalBuilder(seed=11)
    faults = [{"type": "latency", "latency": 10 + i} for i in range(12)]
    for transport, protocol in (("tcp", "binrpc"), ("unix", "jsonrpc"), ("tcp", "xmlrpc")):
        for i, fault in enumerate(faults):
            verdicts: tuple[tuple[str, str, bool, bool], ...] = (("retry", "R1", True, False),)
            if (transport, protocol, i) == ("tcp", "xmlrpc", 11):
                verdicts = (("retry", "R1", False, False),)
            elif (transport, protocol, i) == ("unix", "jsonrpc", 9):
                verdicts = (("retry", "R1", True, True),)
            b.case(transport, protocol, fault, name=f"test_{i}", verdicts=verdicts, calls=2)
    return b.data()


@pytest.fixture
def matrix_model(tmp_path: Path) -> RunModel:
    return _load(tmp_path, _matrix_journal())


def test_matrix_by_status_puts_failing_then_vacuous_first(matrix_model: RunModel) -> None:
    plain = matrix_model.matrix()
    assert plain.rows[-1] == ("unix", "jsonrpc")
    assert plain.faults[0] == "latency[latency=10]"
    m = plain.by_status()
    assert m.rows == (("tcp", "xmlrpc"), ("unix", "jsonrpc"), ("tcp", "binrpc"))
    assert m.faults[0] == "latency[latency=21]"  # the failing column
    assert m.faults[1] == "latency[latency=19]"  # the vacuous one
    assert list(m.faults[2:]) == [f for f in plain.faults if f not in m.faults[:2]]
    assert m.row_status(m.rows[0]) == FAILED
    assert m.fault_status(m.faults[1]) == VACUOUS
    assert m.row_status(m.rows[2]) == PASSED


def test_html_matrix_failing_cells_come_first(matrix_model: RunModel) -> None:
    pytest.importorskip("jinja2")
    pytest.importorskip("matplotlib")
    from faultlab.reports.html import render_html

    html = render_html(matrix_model)
    table = html[html.index('<table class="matrix"') : html.index("</table>", html.index(
        '<table class="matrix"'))]  # fmt: skip
    statuses = re.findall(r'<td class="cell" data-status="([^"]+)"', table)
    assert len(statuses) == 36
    assert statuses[0] == FAILED  # first row, first column
    assert statuses[:2] == [FAILED, PASSED]  # the failing row: its failing column first
    assert statuses[12:14] == [PASSED, VACUOUS]  # the vacuous row, the vacuous column second
    rows = re.findall(r'<tr data-worst="([^"]+)">', table)
    assert rows == [FAILED, VACUOUS, PASSED]
    heads = re.findall(r'<th class="fault" data-col="([^"]+)" title="([^"]+)"', table)
    assert heads[0] == (FAILED, "latency[latency=21]")
    assert heads[1] == (VACUOUS, "latency[latency=19]")
    assert {c for c, _ in heads[2:]} == {PASSED}
    first_row = table[table.index('<tr data-worst="failed">') :]
    first_row = first_row[: first_row.index("</tr>")]
    assert first_row.index('data-status="failed"') < first_row.index('data-status="passed"')


def test_html_matrix_has_filter_sticky_headers_and_no_script(matrix_model: RunModel) -> None:
    pytest.importorskip("jinja2")
    pytest.importorskip("matplotlib")
    from faultlab.reports.html import render_html

    html = render_html(matrix_model)
    assert "<script" not in html
    assert not re.search(r"https?://", html)
    # the three filter states, as radio buttons before the table they filter (pure CSS)
    radios = re.findall(r'<input type="radio" name="matrix-filter" id="(mf-[a-z]+)"', html)
    assert radios == ["mf-failed", "mf-attention", "mf-all"]
    assert re.search(r'id="mf-all" class="mf" aria-label="all" checked>', html)
    assert html.index('id="mf-all"') < html.index('<table class="matrix"')
    assert "failing only (1)" in html
    assert "failing + ∅ vacuous (2)" in html
    assert "all (36)" in html
    css = html[html.index("<style>") : html.index("</style>")]
    assert re.search(
        r'#mf-failed:checked ~ \.matrix-wrap tr\[data-worst\]:not\(\[data-worst="failed"\]\)',
        css,
    )
    assert '#mf-failed:checked ~ .matrix-wrap [data-col]:not([data-col="failed"])' in css
    assert '#mf-attention:checked ~ .matrix-wrap [data-col="passed"]' in css
    head_rule = re.search(r"table\.matrix thead th \{[^}]*\}", css)
    assert head_rule is not None
    assert "position: sticky" in head_rule[0]
    assert "top: 0" in head_rule[0]
    col_rule = re.search(r"table\.matrix th\.rowh \{[^}]*\}", css)
    assert col_rule is not None
    assert "position: sticky" in col_rule[0]
    assert "left: 0" in col_rule[0]
    assert "writing-mode: vertical-rl" in css  # fault names upright: narrow columns
    assert '<th scope="row" class="rowh">tcp · xmlrpc</th>' in html


def test_no_failing_cell_says_so_under_the_failing_filter(fallback_model: RunModel) -> None:
    pytest.importorskip("jinja2")
    pytest.importorskip("matplotlib")
    from faultlab.reports.html import render_html

    html = render_html(fallback_model)  # one failing cell: no "no failing cell" note
    assert "No failing cell." not in html
    assert "No failing, vacuous or not-triggered cell." not in html


# ---- terminal, JUnit, JSON -----------------------------------------------------------------
def test_terminal_summary_sorts_and_names_fallbacks(
    fallback_model: RunModel, matrix_model: RunModel
) -> None:
    out = io.StringIO()
    print_summary(fallback_model, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "calls: 1 ok, 4 fallback, 1 error" in text
    assert "call 2 add: fallback, got 'cached'" in text
    out = io.StringIO()
    print_summary(matrix_model, Console(file=out, width=400, color_system=None))
    lines = [line for line in out.getvalue().splitlines() if "│" in line or "┃" in line]
    header = next(line for line in lines if "latency" in line)
    assert header.index("latency[latency=21]") < header.index("latency[latency=10]")
    body = [line for line in lines if "tcp" in line or "unix" in line]
    assert "xmlrpc" in body[0]
    assert "binrpc" in body[-1]


def test_junit_and_summary_carry_call_results(fallback_model: RunModel) -> None:
    from faultlab.reports.junit import case_properties

    (case,) = fallback_model.cases
    assert ("faultlab_calls", "1 ok, 4 fallback, 1 error") in case_properties(case)
    summary = fallback_model.summary()
    assert summary["cases"][0]["calls"] == {"ok": 1, "fallback": 4, "error": 1}
