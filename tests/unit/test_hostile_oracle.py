"""check_hostile on hand-built runs: each property fails on the run that breaks it, passes
(or is vacuous, saying why) otherwise; and the report's hostile section from a journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faultlab.journal.fileformat import write_journal
from faultlab.journal.store import Journal
from faultlab.suites.hostile import (
    H1,
    H2,
    H3,
    H4,
    H5,
    HostileBudget,
    HostileError,
    HostileLimits,
    check_hostile,
)
from faultlab.suites.hostile._net import NotLoopback, parse_target

MiB = 1024 * 1024


def run(
    *,
    latencies: tuple[float, ...] = (0.01,) * 20,
    failures: int = 0,
    answers: dict[str, int] | None = None,
    attack: str = "malformed",
    probe_ok: bool = True,
    alive: bool | None = True,
    rss: tuple[int, ...] = (20 * MiB, 22 * MiB, 21 * MiB),
    pid: int | None = 4242,
    hwm: tuple[int, ...] | None = None,
    journal: Journal | None = None,
    run_id: str = "r1",
) -> list[dict[str, Any]]:
    """A run's events: baseline RSS at t=0, the attack from t=1 to t=3, canary calls in it."""
    j = journal if journal is not None else Journal()
    j.record("hostile_run", t=0.0, run=run_id, phase="start", target="127.0.0.1:1",
             protocol="http", wire="http", seed=1, pid=pid, attacks=[attack],
             budget=HostileBudget().to_json())  # fmt: skip
    if pid is not None:
        j.record("hostile_rss", t=0.5, run=run_id, pid=pid, rss=rss[0], main=rss[0],
                 hwm=(hwm or rss)[0])  # fmt: skip
    j.record("hostile_attack", t=1.0, run=run_id, attack=attack, phase="start", bad_input=True)
    for i, latency in enumerate(latencies):
        ok = i >= failures
        j.record("hostile_canary", t=1.0 + 0.05 * i, run=run_id, latency=latency, ok=ok,
                 error=None if ok else "ConnectionRefusedError: refused")  # fmt: skip
    if pid is not None:
        for k, value in enumerate(rss[1:]):
            j.record("hostile_rss", t=1.5 + k, run=run_id, pid=pid, rss=value, main=value,
                     hwm=(hwm or rss)[k + 1])  # fmt: skip
    j.record("hostile_attack", t=3.0, run=run_id, attack=attack, phase="end", bad_input=True,
             counts={"inputs": 3}, answers=answers or {"http_400": 3},
             samples=[{"input": "cut at 3", "answer": a} for a in (answers or {})])  # fmt: skip
    j.record("hostile_probe", t=3.5, run=run_id, ok=probe_ok, latency=0.01,
             error=None if probe_ok else "ConnectionRefusedError", alive=alive)  # fmt: skip
    j.record("hostile_run", t=3.6, run=run_id, phase="end")
    return [e for e in j.events() if e.get("run") == run_id]


def checks(events: list[dict[str, Any]], budget: HostileBudget | None = None) -> dict[str, Any]:
    return {c.property: c for c in check_hostile(events, budget).checks}


def test_a_healthy_run_passes_every_property() -> None:
    verdict = check_hostile(run())
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous
    assert set(checks(run())) == {H1, H2, H3, H4, H5}


def test_h1_fails_when_the_probe_fails_or_the_process_is_gone() -> None:
    assert not checks(run(probe_ok=False))[H1].passed
    gone = checks(run(alive=False))[H1]
    assert not gone.passed
    assert "process is gone" in gone.message


@pytest.mark.parametrize(
    ("attack", "answers", "ok"),
    [
        ("malformed", {"http_400": 2, "close": 1}, True),
        ("malformed", {"http_200": 3}, True),  # an RPC error travels in a 200
        ("malformed", {"http_500": 1, "http_400": 2}, False),
        ("malformed", {"timeout": 1, "reset": 2}, False),
        ("oversized", {"http_413": 1, "reset": 1, "close": 1}, True),
        ("oversized", {"http_200": 1}, False),  # an oversized body accepted
        ("h2_continuation", {"goaway": 1}, True),
        ("h2_continuation", {"http_501": 1}, True),  # an HTTP/1.1 server refusing PRI
        ("h2_continuation", {"held": 1}, False),
    ],
)
def test_h2_judges_each_answer_to_bad_input(attack: str, answers: dict[str, int], ok: bool) -> None:
    found = checks(run(attack=attack, answers=answers))[H2]
    assert found.passed is ok, found.report()
    if not ok:
        assert attack in found.message


def test_h3_counts_only_calls_inside_the_attack_window_against_the_budget() -> None:
    three_failed = run(failures=3)  # 3 of 20: 85%
    assert not checks(three_failed)[H3].passed
    assert "17 of 20" in checks(three_failed)[H3].message
    assert checks(three_failed, HostileBudget(min_success_rate=0.8))[H3].passed


def test_h4_is_the_p99_of_the_canary_latency() -> None:
    slow = run(latencies=(0.01,) * 19 + (0.9,))  # p99 of 20 calls is the slowest
    assert not checks(slow)[H4].passed
    assert "900.0 ms" in checks(slow)[H4].message
    assert checks(slow, HostileBudget(max_p99=1.0))[H4].passed


def test_h5_fails_on_growth_past_the_budget_and_sees_a_peak_between_samples() -> None:
    grown = checks(run(rss=(20 * MiB, 90 * MiB, 30 * MiB)))[H5]
    assert not grown.passed
    assert "70.0 MiB" in grown.message
    # samples never saw the peak, the process's high-water mark did
    between = run(rss=(20 * MiB, 21 * MiB, 21 * MiB), hwm=(25 * MiB, 25 * MiB, 120 * MiB))
    assert not checks(between)[H5].passed
    # a high-water mark from before the run (start-up) is no growth
    old_peak = run(rss=(20 * MiB, 21 * MiB, 21 * MiB), hwm=(200 * MiB,) * 3)
    assert checks(old_peak)[H5].passed


def test_h5_is_vacuous_without_a_pid() -> None:
    found = checks(run(pid=None))[H5]
    assert found.passed
    assert found.vacuous
    assert "Address" in found.message


def test_a_run_without_canary_calls_in_the_attacks_fails() -> None:
    found = checks(run(latencies=()))
    assert not found[H3].passed
    assert not found[H4].passed


def test_check_hostile_wants_exactly_one_run() -> None:
    j = Journal()
    run(journal=j, run_id="a")
    run(journal=j, run_id="b")
    with pytest.raises(HostileError, match="exactly one hostile run"):
        check_hostile(j.events())


def test_settings_and_targets_are_checked() -> None:
    with pytest.raises(HostileError):
        HostileBudget(min_success_rate=1.5)
    with pytest.raises(HostileError):
        HostileLimits(flood_connections=-1)
    halved = HostileLimits().scaled(0.5)
    assert halved.flood_connections == HostileLimits().flood_connections // 2
    assert halved.flood_hold == HostileLimits().flood_hold  # durations unchanged
    assert parse_target("http://localhost:8080").port == 8080
    assert parse_target("tcp://[::1]:9").host == "::1"
    with pytest.raises(NotLoopback):
        parse_target("example.com:80")
    assert parse_target("192.0.2.1:80", allow_remote=True).host == "192.0.2.1"


def test_the_report_shows_the_canary_over_the_attack(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from faultlab.reports.html import render_html
    from faultlab.reports.model import build_model, load_journal

    j = Journal()
    run(journal=j, failures=2, attack="flood", answers={"held": 256})
    path = write_journal(tmp_path / "journal.json", j, 1)
    html = render_html(build_model(load_journal(path)))
    assert 'id="hostile"' in html
    assert 'id="fig-hostile-0"' in html  # the chart, an inline SVG
    assert "canary latency" in html
    assert "held=256" in html
    assert "20 canary calls, 2 failed" in html


def test_the_report_has_no_hostile_section_without_hostile_runs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from faultlab.reports.html import render_html
    from faultlab.reports.model import build_model, load_journal

    j = Journal()
    j.record("mark", proxy="p")
    html = render_html(build_model(load_journal(write_journal(tmp_path / "j.json", j, 1))))
    assert 'id="hostile"' not in html
