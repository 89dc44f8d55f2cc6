"""Verdicts read well, round-trips use ``same``, and the virtual clock patches the libraries."""

from __future__ import annotations

import datetime as dt
import time

import pybreaker
import pytest
import tenacity
from hypothesis import given, settings

from faultlab.codecs import get_codec
from faultlab.journal.timeline import acted, timeline
from faultlab.oracles import (
    OracleFailure,
    Verdict,
    VirtualClock,
    check_roundtrip,
    check_roundtrip_pair,
    check_roundtrip_pairs,
    combine,
    format_evidence,
)

from .helpers import Script


def test_verdict_report_and_raise() -> None:
    events = [
        {"seq": 4, "t": 1.0, "kind": "attempt_start", "call": 1, "attempt": 1, "method": "add"},
        {"seq": 5, "t": 1.25, "kind": "attempt_end", "call": 1, "attempt": 1, "outcome": "ok"},
    ]
    v = Verdict("retry", "R1 attempt bound", False, False, "too many", events)
    text = v.report()
    assert text.startswith("retry R1 attempt bound: FAILED: too many")
    assert "+  0.0000s #4 attempt_start call=1 attempt=1 method=add" in text
    assert "+  0.2500s #5 attempt_end" in text
    with pytest.raises(OracleFailure) as info:
        v.raise_if_failed()
    assert isinstance(info.value, AssertionError)
    assert info.value.verdict is v
    ok = Verdict("retry", "R1", True)
    assert ok.raise_if_failed() is ok
    assert bool(ok)
    assert v.to_json()["evidence"] == [4, 5]


def test_evidence_excerpt_keeps_both_ends() -> None:
    events = [{"seq": i, "t": i / 10, "kind": "chunk"} for i in range(100)]
    text = format_evidence(events, limit=10)
    assert "#0 chunk" in text
    assert "#99 chunk" in text
    assert "events skipped" in text


def test_combine() -> None:
    a = Verdict("x", "A1 one", True, True, "nothing")
    b = Verdict("x", "A2 two", False, False, "broke", [{"seq": 1}])
    c = Verdict("x", "A3 three", False, False, "broke too")
    bad = combine("x", [a, b, c])
    assert not bad.passed
    assert bad.property == "A2 two"
    assert bad.message == "broke (also failed: A3 three)"
    good = combine("x", [a, a])
    assert good.passed
    assert good.vacuous
    assert good.property == "A1"


def test_acted_distinguishes_passive_fault_events() -> None:
    assert not acted({"kind": "fault", "decision": "toxicity", "active": True})
    assert not acted({"kind": "fault", "decision": "pass"})
    assert not acted({"kind": "fault", "decision": "delay", "delay_ms": 0})
    assert acted({"kind": "fault", "decision": "delay", "delay_ms": 10})
    assert acted({"kind": "process", "action": "kill"})
    assert not acted({"kind": "process", "action": "resume"})


def test_timeline_rebuilds_calls_and_orphans() -> None:
    s = Script()
    s.simple("add", ["unavailable", None], gap=0.1)
    s.record("attempt_start", call=None, attempt=1, method="echo")
    s.record("attempt_end", call=None, attempt=1, outcome="ok")
    tl = timeline(s.journal)
    assert len(tl.calls) == 1
    assert tl.calls[0].name == "call 1 (add)"
    assert [a.number for a in tl.calls[0].attempts] == [1, 2]
    assert len(tl.orphans) == 1
    assert tl.orphans[0].ok
    assert len(tl.attempts) == 3


@settings(max_examples=25, deadline=None)
@given(get_codec("json").domain())
def test_roundtrip_over_a_codec_domain(value: object) -> None:
    check_roundtrip("json", value).raise_if_failed()


def test_roundtrip_detects_changes_and_refusals() -> None:
    refused = check_roundtrip("json", b"bytes")
    assert refused.passed
    assert refused.vacuous
    assert "typed error" in refused.message
    changed = check_roundtrip_pair([1, 2], (1, 2))
    assert not changed.passed
    assert "list" in changed.message
    assert "tuple" in changed.message
    assert check_roundtrip_pair(1.0, 1.0).passed
    assert not check_roundtrip_pair(1, 1.0).passed  # == would hide it
    assert not check_roundtrip_pair(1, True).passed
    many = check_roundtrip_pairs([("a", "a"), ("abc", None, 7)])
    assert not many.passed
    assert "call 7 sent 'abc' and got back None" in many.message
    assert check_roundtrip_pairs([]).vacuous


def test_virtual_clock_sleeps_instantly_and_patches_libraries() -> None:
    clock = VirtualClock()
    journal = clock.journal()
    t0 = time.monotonic()
    before = journal.now()
    clock.sleep(30.0)
    assert journal.now() - before >= 30.0
    assert time.monotonic() - t0 < 1.0
    seen: list[float] = []
    remove = clock.on_advance(seen.append)
    clock.advance(1.0)
    remove()
    clock.advance(1.0)
    assert len(seen) == 1
    assert clock.slept == [30.0]
    with pytest.raises(ValueError, match="cannot sleep"):
        clock.sleep(-1)

    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError
        return 7

    with clock.patch_tenacity():
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(100), wait=tenacity.wait_fixed(20)
        )
        assert retrying(flaky) == 7  # 40 s of backoff, instantly
    assert clock.slept[-2:] == [20.0, 20.0]

    cb = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=60)
    with clock.patch_pybreaker():
        with pytest.raises(pybreaker.CircuitBreakerError):
            cb.call(lambda: 1 / 0)
        with pytest.raises(pybreaker.CircuitBreakerError):
            cb.call(lambda: 1)
        clock.advance(61)
        assert cb.call(lambda: 1) == 1
    assert pybreaker.datetime is dt.datetime
