"""The HTML report in a real browser, and a report rendered from a real pytest run's journal.

Headless Chromium opens the report from disk with networking off: the page must render with
no console message (it has no JS, and any failed resource load would log one), its DOM must hold
the matrix and the plots, and a screenshot lands in ``reports/report.png`` for humans to judge.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from faultlab.reports.model import NOT_TRIGGERED, PASSED, VACUOUS, build_model, load_journal
from tests.unit.reports.journals import sample_journal

pytest.importorskip("jinja2")
pytest.importorskip("matplotlib")

CHROMIUM = Path("/usr/bin/chromium")
REPORTS = Path(__file__).resolve().parents[2] / "reports"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium not installed: apt-get install -y chromium")
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture
def report(tmp_path: Path) -> Path:
    from faultlab.reports.html import write_html

    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps(sample_journal()))
    return write_html(build_model(load_journal(journal)), tmp_path / "report.html")


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    result = _chromium(tmp_path, "--dump-dom", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert _console(result.stderr) == []
    assert '<table class="matrix" id="matrix-table">' in dom
    assert dom.count('data-status="failed"') == 1
    assert dom.count('data-status="vacuous"') == 1
    assert dom.count('data-status="not triggered"') == 1
    assert dom.count('<svg viewBox="') >= 2  # the latency plot and one timeline
    assert 'id="fig-latency"' in dom
    assert 'id="fig-timeline-0"' in dom
    assert "pytest --faultlab-seed=4242" in dom

    REPORTS.mkdir(exist_ok=True)
    shot = REPORTS / "report.png"
    result = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,2000", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert _console(result.stderr) == []
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a blank page is a few KB


def test_report_from_a_real_pytest_run(tmp_path: Path) -> None:
    """The plugin's journal (real events from Lab, proxy and client) renders correctly."""
    (tmp_path / "test_service.py").write_text(
        textwrap.dedent(
            """
            from types import SimpleNamespace
            import pytest

            FAULTS = [None, {"type": "latency", "latency": 15},
                      {"type": "latency", "latency": 15, "toxicity": 0.0}]

            @pytest.mark.faultlab(transports=["tcp"], protocols=["binrpc"], faults=FAULTS)
            def test_call(faultlab_pair, faultlab_fault, faultlab_check):
                if faultlab_fault:
                    attrs = {k: v for k, v in faultlab_fault.items() if k != "type"}
                    faultlab_pair.proxy.add_toxic(faultlab_fault["type"], **attrs)
                for _ in range(3):
                    faultlab_pair.run(lambda c: c.add(1, 2))
                faultlab_check(SimpleNamespace(oracle="retry", property="bounded", passed=True,
                                               vacuous=False, message="", evidence=[]))

            @pytest.mark.faultlab(transports=["tcp"], protocols=["binrpc"])
            def test_vacuous(faultlab_pair, faultlab_check):
                faultlab_check(SimpleNamespace(oracle="fallback", property="used", passed=True,
                                               vacuous=True, message="no call failed",
                                               evidence=[]))
            """
        )
    )
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--faultlab-seed=11",
            "--faultlab-report=out",
            "test_service.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    model = build_model(load_journal(tmp_path / "out"))
    statuses = {(c.nodeid.split("::")[1], c.fault_label): c.status for c in model.cases}
    assert statuses == {
        ("test_call[tcp-binrpc-None]", "none"): PASSED,
        ("test_call[tcp-binrpc-latency[latency=15]]", "latency[latency=15]"): PASSED,
        (
            "test_call[tcp-binrpc-latency[latency=15,toxicity=0.0]]",
            "latency[latency=15,toxicity=0.0]",
        ): NOT_TRIGGERED,
        ("test_vacuous[tcp-binrpc]", "none"): VACUOUS,
    }
    latency = next(c for c in model.cases if c.fault_label == "latency[latency=15]")
    assert len(latency.faulted_latencies) == 3
    assert min(latency.faulted_latencies) >= 0.015 - 0.001  # a timer may fire 1 ms early
    clean = next(c for c in model.cases if c.fault_label == "none" and c.latency)
    assert clean.faulted_latencies == []

    from faultlab.cli import main

    assert main(["report", str(tmp_path / "out"), "-o", str(tmp_path / "report.html")]) == 0
    assert 'data-status="not triggered"' in (tmp_path / "report.html").read_text()
