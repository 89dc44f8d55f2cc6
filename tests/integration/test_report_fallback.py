"""A report rendered from a real Lab run draws calls answered by a fallback as fallbacks.

A real pair (the example service behind a real proxy, the instrumented client) runs four
logical calls: one clean, then with ``rpc_error`` failing ``add``: one where the client marks
its fallback, one where it silently returns a cached value (the journal only shows a value
after a failed attempt), and one where it lets the error through. The journal file the run
leaves is rendered and read back.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from faultlab.journal import write_journal
from faultlab.lab.pair import Lab
from faultlab.reports.model import FAILED, build_model, load_journal
from faultlab.reports.terminal import print_summary
from faultlab.rpc.errors import ServiceUnavailable

SEED = 2024
NODE = "tests/test_shop.py::test_cached_price[tcp-binrpc-rpc_error]"


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run") / "journal.json"
    with Lab(seed=SEED) as lab:
        pair = lab.pair(protocol="binrpc")
        journal = lab.journal
        t_start = journal.record("marker", note="test starts")["t"]
        with pair.logical_call("clean", method="add") as call:
            call.value = pair.client.add(1, 2)
        pair.proxy.add_toxic("rpc_error", stream="upstream", method="add")
        with pair.logical_call("marked", method="add") as call:
            try:
                call.value = pair.client.add(1, 2)
            except ServiceUnavailable:
                call.mark_fallback("cache")
                call.value = 3
        with pair.logical_call("silent", method="add") as call:
            try:
                call.value = pair.client.add(2, 2)
            except ServiceUnavailable:
                call.value = 4  # a cached value, nothing journaled about it
        with pytest.raises(ServiceUnavailable), pair.logical_call("raw", method="add") as call:
            call.value = pair.client.add(3, 3)
        journal.record(
            "verdict", nodeid=NODE, oracle="fallback", property="F1", passed=False,
            vacuous=False, message="the caller got the error", evidence=[],
        )  # fmt: skip
        end = journal.record("marker", note="test ends")["t"]
        journal.record(
            "test", nodeid=NODE, outcome="failed", duration=end - t_start, t_start=t_start,
            transport="tcp", protocol="binrpc", fault={"type": "rpc_error", "method": "add"},
            backend="thread", seed=SEED, message="AssertionError: fallback",
        )  # fmt: skip
        write_journal(path, journal, SEED)
    return path


def test_the_model_reads_each_call_as_the_caller_got_it(journal: Path) -> None:
    (case,) = build_model(load_journal(journal)).cases
    assert case.status == FAILED
    results = [(r.method, r.result, r.got) for r in case.calls]
    assert results == [
        ("add", "ok", "3"),
        ("add", "fallback", "3"),
        ("add", "fallback", "4"),
        ("add", "error", "unavailable"),
    ]
    assert "failed with 'unavailable'" in case.calls[2].why


def test_html_and_terminal_draw_the_fallbacks(journal: Path) -> None:
    pytest.importorskip("jinja2")
    pytest.importorskip("matplotlib")
    from faultlab.reports.html import render_html

    model = build_model(load_journal(journal))
    html = render_html(model)
    assert re.findall(r'<tr data-result="([a-z]+)">', html) == ["ok", "fallback", "fallback",
                                                                 "error"]  # fmt: skip
    assert '<span class="cc cc-fallback">2 fallback</span>' in html
    out = io.StringIO()
    print_summary(model, Console(file=out, width=200, color_system=None))
    assert "calls: 1 ok, 2 fallback, 1 error" in out.getvalue()
