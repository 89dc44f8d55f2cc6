"""The bundled suites against a service given only as a Command: ``pytest --pyargs
faultlab.suites --faultlab-target tests.blackbox.target:fastapi`` passes (or skips with a
reason) and the report shows the target's cases, labelled tcp/http."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_suites_pass_against_fastapi_given_as_a_command(tmp_path: Path) -> None:
    report = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--pyargs",
            "faultlab.suites",
            "--faultlab-target",
            "tests.blackbox.target:fastapi",
            f"--faultlab-report={report}",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    journal = json.loads((report / "journal.json").read_text())
    tests = [e for e in journal["events"] if e["kind"] == "test"]
    faulted = [t for t in tests if t["protocol"] == "http" and t["transport"] == "tcp"]
    assert len(faulted) >= 10, [t["nodeid"] for t in tests]
    assert all(t["outcome"] in ("passed", "skipped") for t in tests)
    assert any("test_faults.py" in t["nodeid"] and t["outcome"] == "passed" for t in faulted)
    verdicts = [e for e in journal["events"] if e["kind"] == "verdict"]
    assert any(not v["vacuous"] for v in verdicts if v["oracle"] == "retry")
    assert all(v["passed"] for v in verdicts)
    wire = [e for e in journal["events"] if e["kind"] == "wire_request"]
    assert wire, "the suites' calls must be seen on the wire"
    html = subprocess.run(
        [
            sys.executable,
            "-m",
            "faultlab",
            "report",
            str(report / "journal.json"),
            "-o",
            str(tmp_path / "report.html"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert html.returncode == 0, html.stdout + html.stderr
    assert "test_latency_respects_retry_and_deadline" in (tmp_path / "report.html").read_text()
