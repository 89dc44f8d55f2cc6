"""The views rendered from a run model: HTML, JSON, JUnit XML, terminal, and the CLI."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from faultlab.cli import main
from faultlab.reports.json import render_journal, render_summary, write_json
from faultlab.reports.junit import render_junit, write_junit
from faultlab.reports.model import FAILED, RunModel, build_model, load_journal
from faultlab.reports.terminal import print_summary, run_progress
from tests.unit.reports.journals import JournalBuilder, sample_journal

pytest.importorskip("jinja2")
pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, Path]:
    """The sample rendered twice, each from its own load of the file (rendering is slow)."""
    from faultlab.reports.html import render_html

    path = tmp_path_factory.mktemp("journal") / "journal.json"
    path.write_text(json.dumps(sample_journal()))
    first = render_html(build_model(load_journal(path)))
    second = render_html(build_model(load_journal(path)))
    return first, second, path


# ---- HTML ----------------------------------------------------------------------------------
def test_same_journal_renders_byte_identical_html(rendered: tuple[str, str, Path]) -> None:
    first, second, _ = rendered
    assert first.encode() == second.encode()


def test_html_is_self_contained(rendered: tuple[str, str, Path]) -> None:
    html = rendered[0]
    assert "<script" not in html
    assert not re.search(r"https?://", html)  # no fonts, styles, images or namespaces to fetch
    assert not re.findall(r'(?:src|href)="(?!#)', html)
    assert "@import" not in html
    assert "url(http" not in html
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "duplicate element ids across inline SVGs"
    refs = set(re.findall(r'(?:url\(#|href="#)([^)"]+)', html))
    assert refs <= set(ids), f"dangling references: {sorted(refs - set(ids))}"


def test_html_has_every_section(rendered: tuple[str, str, Path]) -> None:
    html = rendered[0]
    for section in ("summary", "matrix", "latency", "failing", "tests", "environment"):
        assert f'id="{section}"' in html
    statuses = re.findall(r'<td class="cell" data-status="([^"]+)"', html)
    assert statuses.count("failed") == 1
    assert statuses.count("vacuous") == 1
    assert statuses.count("not triggered") == 1
    assert 'id="fig-latency"' in html
    assert 'id="fig-timeline-0"' in html
    assert "pytest --faultlab-seed=4242" in html
    assert "test_resilient_call[tcp-binrpc-reset_peer]" in html
    assert "&#34;shrunk_from&#34;: 9" in html or '"shrunk_from": 9' in html
    assert "3.11.9 (CPython)" in html  # environment from the journal, not from this process


def test_html_escapes_journal_text(tmp_path: Path) -> None:
    from faultlab.reports.html import render_html

    b = JournalBuilder()
    b.case(
        "tcp",
        "binrpc",
        None,
        name="test_x",
        outcome="failed",
        verdicts=(),
        message="E   <script>alert(1)</script>",
    )
    html = render_html(build_model(_load(tmp_path, b.data())))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_html_of_a_journal_without_tests(tmp_path: Path) -> None:
    from faultlab.reports.html import render_html

    b = JournalBuilder()
    b.ev("call_start", 0.1, call=1, method="add")
    b.ev("attempt_start", 0.1, call=1, attempt=1)
    b.ev("attempt_end", 0.1, call=1, attempt=1, outcome="ok")
    model = build_model(_load(tmp_path, b.data()))
    assert len(model.other_latency) == 1
    html = render_html(model)
    assert "No test cases in this journal" in html
    assert "No test events in this journal" in html


# ---- JSON ----------------------------------------------------------------------------------
def test_json_writer_is_deterministic_and_rereadable(model: RunModel, tmp_path: Path) -> None:
    folder = write_json(model, tmp_path / "reports")
    assert folder == tmp_path / "reports" / model.run_id
    text = (folder / "journal.json").read_text()
    assert text == render_journal(build_model(load_journal(folder / "journal.json")))
    again = build_model(load_journal(folder / "journal.json"))
    assert again.run_id == model.run_id
    assert again.counts == model.counts
    summary = json.loads((folder / "summary.json").read_text())
    assert summary == json.loads(render_summary(model))
    assert summary["schema"] == "faultlab.summary/1"
    assert list(summary) == sorted(summary)


# ---- JUnit ---------------------------------------------------------------------------------
def _props(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


def test_junit_carries_faultlab_properties(model: RunModel, tmp_path: Path) -> None:
    path = write_junit(model, tmp_path / "out" / "junit.xml")
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "18"
    assert suite.get("failures") == "1"
    assert suite.get("skipped") == "1"
    suite_props = {p.get("name"): p.get("value") for p in suite.find("properties") or []}
    assert suite_props["faultlab_seed"] == "4242"
    assert suite_props["faultlab_count.not_triggered"] == "1"
    cases = {f"{c.get('classname')}::{c.get('name')}": c for c in suite.iter("testcase")}
    failed = cases["tests.test_service::test_resilient_call[tcp-binrpc-reset_peer]"]
    props = _props(failed)
    assert props["faultlab_seed"] == "4242"
    assert props["faultlab_transport"] == "tcp"
    assert props["faultlab_protocol"] == "binrpc"
    assert json.loads(props["faultlab_fault"]) == {"type": "reset_peer", "timeout": 0}
    assert json.loads(props["faultlab_plan"])["shrunk_from"] == 9
    assert props["faultlab_status"] == FAILED
    assert props["faultlab_verdicts"] == "1 failed, 1 passed"
    assert props["faultlab_verdict.retry.bounded_retries"] == "failed"
    assert props["faultlab_replay"].endswith("--faultlab-seed=4242")
    failure = failed.find("failure")
    assert failure is not None
    assert "3 attempts > max_attempts=2" in failure.get("message", "")
    vacuous = cases["tests.test_service::test_resilient_call[unix-jsonrpc-drop]"]
    assert _props(vacuous)["faultlab_status"] == "vacuous"
    assert vacuous.find("failure") is None
    skipped = cases["tests.test_service::test_needs_docker[tcp-jsonrpc-none]"]
    assert skipped.find("skipped") is not None
    assert render_junit(model) == path.read_text()


# ---- terminal ------------------------------------------------------------------------------
def test_terminal_summary_shows_matrix_and_replay_lines(model: RunModel) -> None:
    out = io.StringIO()
    print_summary(model, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "seed 4242" in text
    assert "1 failed" in text
    assert "1 not triggered" in text
    assert "latency[latency=40,jitter=5]" in text  # brackets are not eaten as rich markup
    assert "not triggered" in text
    assert "vacuous" in text
    replay = "pytest 'tests/test_service.py::test_resilient_call[tcp-binrpc-reset_peer]'"
    assert f"replay: {replay} --faultlab-seed=4242" in text


def test_run_progress_counts_statuses() -> None:
    out = io.StringIO()
    with run_progress(3, "demo", console=Console(file=out, width=100)) as progress:
        progress.advance("passed")
        progress.advance("failed")
        progress.note("last one")
        progress.advance()
    assert progress.counts["passed"] == 1
    assert progress.counts["failed"] == 1


# ---- CLI -----------------------------------------------------------------------------------
def test_cli_renders_every_output(
    journal_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    html, xml, folder = tmp_path / "r" / "report.html", tmp_path / "j.xml", tmp_path / "json"
    code = main(
        ["report", str(journal_path), "-o", str(html), "--junit", str(xml), "--json", str(folder)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert html.read_text().startswith("<!DOCTYPE html>")
    assert ET.parse(xml).getroot().tag == "testsuites"
    assert len(list(folder.glob("*/summary.json"))) == 1
    assert f"wrote HTML report: {html}" in out
    assert f"wrote JUnit XML: {xml}" in out
    assert "18 test cases: 1 failed" in out


def test_cli_reads_a_directory_of_worker_journals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for worker in ("gw0", "gw1"):
        b = JournalBuilder(worker=worker)
        b.case("tcp", worker, None)
        (tmp_path / f"journal-{worker}.json").write_text(json.dumps(b.data()))
    assert main(["report", str(tmp_path), "-o", "-", "--summary"]) == 0
    out = capsys.readouterr().out
    assert "2 test cases: 2 passed" in out
    assert "wrote" not in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("not json", "not JSON"),
        ('{"schema": "faultlab.journal/7", "seed": 1, "events": []}', "not supported"),
    ],
)
def test_cli_errors_are_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    path = tmp_path / "journal.json"
    if content is not None:
        path.write_text(content)
    assert main(["report", str(path), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("faultlab report: error: ")
    assert str(path) in err
    assert message in err
    assert not (tmp_path / "r.html").exists()


def test_cli_reports_unwritable_output(
    journal_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = journal_path  # a file where a directory is needed
    assert main(["report", str(journal_path), "-o", "-", "--junit", f"{blocker}/x.xml"]) == 2
    assert "cannot write" in capsys.readouterr().err


def _load(tmp_path: Path, data: dict[str, Any]) -> Any:
    path = tmp_path / "journal.json"
    path.write_text(json.dumps(data))
    return load_journal(path)


def test_html_is_identical_in_another_process(
    rendered: tuple[str, str, Path], tmp_path: Path
) -> None:
    """No hash-seed, clock or font-cache dependence: another interpreter gives the same bytes."""
    import os
    import subprocess
    import sys

    first, _, path = rendered
    out = tmp_path / "report.html"
    subprocess.run(
        [sys.executable, "-m", "faultlab", "report", str(path), "-o", str(out)],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert out.read_bytes() == first.encode()


def test_render_files_is_the_library_entry_point(journal_path: Path, tmp_path: Path) -> None:
    from faultlab.cli.report_cmd import render_files

    model, written = render_files([journal_path], None, junit=tmp_path / "j.xml")
    assert model.seed == 4242
    assert written == [("JUnit XML", tmp_path / "j.xml")]
