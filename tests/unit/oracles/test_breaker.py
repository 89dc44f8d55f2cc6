"""check_breaker: the journal replayed through a reference pybreaker-like breaker."""

from __future__ import annotations

from faultlab.oracles import BreakerPolicy, FallbackPolicy, check_breaker

from .helpers import Script

POLICY = BreakerPolicy(fail_max=3, reset_timeout=1.0, excluded=frozenset({"application_error"}))


def trip(s: Script, n: int = 3) -> None:
    for _ in range(n):
        s.simple("add", ["unavailable"])
        s.sleep(0.01)


def test_correct_breaker_cycle_passes() -> None:
    s = Script()
    s.simple("add")
    trip(s)
    s.reject()  # open
    s.sleep(0.3)
    s.reject()
    s.sleep(1.0)
    s.simple("add", ["unavailable"])  # failed probe: re-open
    s.reject()
    s.sleep(1.05)
    s.simple("add")  # successful probe: closed
    s.simple("add")
    verdict = check_breaker(s.journal, POLICY)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous
    assert "opened 2 time(s)" in verdict.message


def test_never_tripped_is_vacuous() -> None:
    s = Script()
    trip(s, 2)
    s.simple("add")
    trip(s, 2)
    verdict = check_breaker(s.journal, POLICY)
    assert verdict.passed
    assert verdict.vacuous
    assert "longest run of consecutive failures was 2" in verdict.message


def test_c1_never_opens() -> None:
    s = Script()
    trip(s, 5)
    verdict = check_breaker(s.journal, POLICY)
    assert verdict.property == "C1 trip point"
    assert "the breaker did not open" in verdict.message
    assert "call 4 (add) attempt 1" in verdict.message


def test_c2_early_trip_and_success_resets_the_count() -> None:
    s = Script()
    trip(s, 2)
    s.simple("add")
    trip(s, 2)
    s.reject()
    verdict = check_breaker(s.journal, POLICY)
    assert verdict.property == "C2 no early trip"
    assert "only 2 consecutive failure(s)" in verdict.message


def test_excluded_errors_count_as_success() -> None:
    s = Script()
    trip(s, 2)
    s.simple("div", ["application_error"])
    trip(s, 2)
    s.simple("add")
    assert check_breaker(s.journal, POLICY).passed


def test_c4_traffic_while_open() -> None:
    s = Script()
    trip(s)
    s.reject()
    s.sleep(0.2)
    s.simple("add")  # leaks through
    verdict = check_breaker(s.journal, POLICY)
    assert verdict.property == "C4 open isolation"
    assert "reached the server" in verdict.message
    assert "already rejected 1 call" in verdict.message


def test_c5_probe_too_late_never_half_opens() -> None:
    s = Script()
    trip(s)
    s.reject()
    s.sleep(2.0)
    s.reject()
    verdict = check_breaker(s.journal, POLICY)
    assert verdict.property == "C5 open duration"
    assert "never half-opens" in verdict.message


def test_c6_half_open_flood() -> None:
    s = Script()
    trip(s)
    s.reject()
    s.sleep(1.1)
    # three concurrent calls in half-open: the probe and two more while it is in flight
    with s.call("add") as probe:
        probe.attempt(finish=False, took=0.0)
        with s.call("add") as second:
            second.attempt(took=0.01)
        with s.call("add") as third:
            third.attempt(took=0.01)
        probe.ended = True
    verdict = check_breaker(s.journal, POLICY)
    assert verdict.property == "C6 half-open admission"
    assert "1 probe(s) still in flight" in verdict.message


def test_c7_failed_probe_does_not_reopen() -> None:
    s = Script()
    trip(s)
    s.reject()
    s.sleep(1.1)
    s.simple("add", ["unavailable"])  # probe fails
    s.simple("add", ["unavailable"])  # but the next call goes through
    verdict = check_breaker(s.journal, POLICY)
    assert verdict.property == "C7 half-open exit"
    assert "failed half-open probe" in verdict.message


def test_c7_successful_probe_does_not_close() -> None:
    s = Script()
    trip(s)
    s.reject()
    s.sleep(1.1)
    s.simple("add")  # probe succeeds
    s.reject()
    verdict = check_breaker(s.journal, POLICY)
    assert verdict.property == "C7 half-open exit"
    assert "successful half-open probe" in verdict.message


def test_scope_call_counts_logical_calls() -> None:
    s = Script()
    for _ in range(3):
        s.simple("add", ["unavailable", "unavailable"], gap=0.01)  # retry inside the breaker
    s.reject()
    per_call = BreakerPolicy(fail_max=3, reset_timeout=1.0, scope="call")
    assert check_breaker(s.journal, per_call).passed
    per_attempt = BreakerPolicy(fail_max=3, reset_timeout=1.0)
    assert check_breaker(s.journal, per_attempt).property == "C1 trip point"


def test_where_selects_the_calls_behind_one_breaker() -> None:
    s = Script()
    trip(s)
    s.simple("echo")
    verdict = check_breaker(s.journal, POLICY, where=lambda c: c.method == "echo")
    assert verdict.passed
    assert verdict.vacuous


def test_primary_run_while_open_is_c4_when_answered_as_rejected() -> None:
    """fabfuel PR #13: the call reached the server, succeeded, and came back as the fallback."""
    s = Script()
    trip(s)
    with s.call("add") as c:
        c.attempt()  # the server answered...
        c.end("value", value="fallback")  # ...but the caller got the fallback
    fallback = FallbackPolicy(value="fallback")
    verdict = check_breaker(s.journal, POLICY, fallback=fallback)
    assert verdict.property == "C4 open isolation"
    assert "answered calls in this open period as rejected" in verdict.message
    assert check_breaker(s.journal, POLICY).property == "C1 trip point"  # without the hint


def test_earliest_violation_is_named_and_the_model_resynchronises() -> None:
    s = Script()
    trip(s)
    s.reject()
    s.sleep(1.5)
    s.reject()  # C5: should have probed; the model resyncs to "open from here"
    s.sleep(0.1)
    s.reject()  # fine after the resync: still within reset_timeout of it
    verdict = check_breaker(s.journal, POLICY)
    assert verdict.property == "C5 open duration"
    assert [v.property for v in verdict.failed_checks()] == ["C5 open duration"]


def test_calls_queued_behind_a_failing_call_are_judged_when_answered() -> None:
    """pybreaker holds a lock: a call that started before the trip is rejected after it."""
    s = Script()
    trip(s, 2)
    with s.call("add") as third:
        third.attempt(finish=False, took=0.0)
        queued = s.record("call_start", call=99, label="add", method="add", idempotent=True)
        assert queued
        s.sleep(0.01)
        s.record(
            "attempt_end",
            call=third.call,
            attempt=1,
            outcome="error",
            error="unavailable",
            error_kind="unavailable",
        )
        third.ended = True
        s.record("call_end", call=third.call, outcome="error", error_kind="CircuitBreakerError")
        s.record("call_end", call=99, outcome="error", error_kind="CircuitBreakerError")
    verdict = check_breaker(s.journal, POLICY)
    assert verdict.passed, verdict.report()
