"""The bundled suites, run as a user runs them (pytest --pyargs faultlab.suites), in a subprocess.

The example target passes; the deliberately careless client fails with a readable message.
"""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

SMALL = ["--faultlab-transports=tcp,unix", "--faultlab-protocols=binrpc,jsonrpc"]


def test_bundled_suites_pass_against_the_example(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--pyargs",
        "faultlab.suites",
        "-p",
        "no:cacheprovider",
        "--faultlab-seed=11",
        "--faultlab-report=out",
        *SMALL,
        timeout=600,
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()[-5000:]
    assert outcomes.get("errors", 0) == 0, result.stdout.str()[-5000:]
    assert outcomes.get("passed", 0) >= 40, outcomes
    journal = json.loads((pytester.path / "out" / "journal.json").read_text())
    kinds = {e["kind"] for e in journal["events"]}
    assert {"test", "verdict", "fault", "call_start", "attempt_end"} <= kinds
    result.stdout.fnmatch_lines(["*faultlab resilience summary*"])


def test_careless_client_is_caught_with_a_readable_report(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--pyargs",
        "faultlab.suites",
        "-p",
        "no:cacheprovider",
        "--faultlab-seed=12",
        "--faultlab-target=faultlab.examples.target:careless_calc",
        "--faultlab-transports=tcp",
        "--faultlab-protocols=binrpc",
        "-k",
        "test_faults",
        "--faultlab-report=out",
        timeout=600,
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 3, outcomes
    result.stdout.fnmatch_lines(
        [
            "*R1 attempt bound*the policy allows at most 4*",
            "*faultlab replay*",
        ]
    )
    from faultlab.cli.report_cmd import render_files

    model, _files = render_files(
        [pytester.path / "out" / "journal.json"], pytester.path / "report.html"
    )
    html = (pytester.path / "report.html").read_text()
    assert "R1 attempt bound" in html
    assert any(case.status == "failed" for case in model.cases)
