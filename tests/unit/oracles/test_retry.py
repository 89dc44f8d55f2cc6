"""check_retry over scripted journals: each R# property caught, and quiet when it holds."""

from __future__ import annotations

import pytest

from faultlab.oracles import (
    Exponential,
    Fixed,
    OracleFailure,
    RetryPolicy,
    Tolerance,
    check_retry,
    retry_checks,
)

from .helpers import Script

POLICY = RetryPolicy(
    max_attempts=4,
    wait=Exponential(0.01, 2.0, max=0.04),
    non_idempotent=frozenset({"counter.incr"}),
)


def good_call(s: Script, failures: int = 2, *, method: str = "add", key: str | None = None) -> None:
    with s.call(method, idempotent=method != "counter.incr") as c:
        for k in range(1, failures + 1):
            c.attempt("unavailable", key=key)
            c.sleep(POLICY.wait.bounds(k)[0] + 0.002)
        c.attempt(key=key)


def test_correct_retries_pass_and_are_not_vacuous() -> None:
    s = Script()
    good_call(s, 2)
    good_call(s, 3, method="counter.incr", key="k1")
    s.simple("add")
    verdict = check_retry(s.journal, POLICY)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous
    assert "held over 3 call(s)" in verdict.message
    assert {c.property.split()[0] for c in verdict.checks} == {
        "R0",
        "R1",
        "R2",
        "R3",
        "R4",
        "R5",
        "R6",
        "R8",
        "R11",
        "R16",
    }


def test_no_failure_is_vacuous() -> None:
    s = Script()
    s.simple("add")
    s.simple("add")
    verdict = check_retry(s.journal, POLICY)
    assert verdict.passed
    assert verdict.vacuous
    assert "vacuously" in verdict.message
    assert "no fault touched traffic" in verdict.message


def test_r1_too_many_attempts() -> None:
    s = Script()
    s.simple("add", ["unavailable"] * 6, gap=0.05)
    verdict = check_retry(s.journal, RetryPolicy(max_attempts=4, wait=Fixed(0.05)))
    assert not verdict.passed
    assert verdict.property == "R1 attempt bound"
    assert "made 6 attempts" in verdict.message
    assert "at most 4" in verdict.message
    with pytest.raises(OracleFailure, match="R1 attempt bound") as info:
        verdict.raise_if_failed()
    assert "attempt_start" in str(info.value)  # the evidence excerpt is printed


def test_r2_retry_after_success() -> None:
    s = Script()
    s.simple("add", [None, None], gap=0.02)
    verdict = check_retry(s.journal, RetryPolicy(wait=Fixed(0.02)))
    assert verdict.property == "R2 no retry after success"
    assert "attempt 1 succeeded" in verdict.message


def test_r3_non_retryable_error_retried() -> None:
    s = Script()
    s.simple("div", ["application_error", "application_error"], gap=0.02)
    verdict = check_retry(s.journal, RetryPolicy(wait=Fixed(0.02)))
    assert verdict.property == "R3 classification"
    assert "'application_error', which the policy does not retry" in verdict.message


def test_r3_gave_up_early() -> None:
    s = Script()
    s.simple("add", ["unavailable"])
    verdict = check_retry(s.journal, RetryPolicy(max_attempts=3))
    assert verdict.property == "R3 classification"
    assert "gave up after 1 attempt" in verdict.message


def test_r3_gave_up_because_budget_ran_out_is_fine() -> None:
    s = Script()
    s.simple("add", ["TransportTimeout"], took=0.3)
    verdict = check_retry(s.journal, RetryPolicy(max_attempts=3, deadline=0.2))
    assert verdict.passed, verdict.report()


def test_r4_no_backoff() -> None:
    s = Script()
    s.simple("add", ["unavailable", "unavailable", None], gap=0.0)
    verdict = check_retry(s.journal, POLICY)
    assert verdict.property == "R4 delay lower bound"
    assert "attempt 2 started 0.0 ms after attempt 1 failed" in verdict.message
    assert "at least 10.0 ms" in verdict.message


def test_r4_tolerates_timer_precision_but_not_more() -> None:
    s = Script()
    s.simple("add", ["unavailable", None], gap=0.0095)
    tight = RetryPolicy(wait=Fixed(0.01), tolerance=Tolerance(eps_early=0.001))
    assert check_retry(s.journal, tight).passed
    s2 = Script()
    s2.simple("add", ["unavailable", None], gap=0.0085)
    assert check_retry(s2.journal, tight).property == "R4 delay lower bound"


def test_r5_no_cap() -> None:
    s = Script()
    with s.call("add") as c:
        for k in range(1, 4):
            c.attempt("unavailable")
            c.sleep(0.01 * 2 ** (k - 1) * (10 if k == 3 else 1))
        c.attempt()
    verdict = check_retry(s.journal, POLICY)
    assert verdict.property == "R5 delay upper bound"
    assert "waits at most 40.0 ms before retry 3" in verdict.message


def test_r8_budget_spent() -> None:
    s = Script()
    s.simple("add", ["TransportTimeout"] * 3, took=0.15, gap=0.01)
    policy = RetryPolicy(max_attempts=10, wait=Fixed(0.01), deadline=0.2)
    verdict = check_retry(s.journal, policy)
    assert verdict.property == "R8 time budget"
    assert "past the 200.0 ms budget" in verdict.message


def test_r8_stop_before_delay() -> None:
    s = Script()
    s.simple("add", ["unavailable"] * 4, took=0.01, gap=0.1)
    policy = RetryPolicy(max_attempts=10, wait=Fixed(0.1), deadline=0.2, deadline_mode="before")
    verdict = check_retry(s.journal, policy)
    assert verdict.property == "R8 time budget"


def test_r11_non_idempotent_without_key() -> None:
    s = Script()
    s.simple("counter.incr", ["unavailable", None], gap=0.02, idempotent=False)
    verdict = check_retry(s.journal, RetryPolicy(wait=Fixed(0.02)))
    assert verdict.property == "R11 idempotency gate"
    assert "carried no idempotency key" in verdict.message


def test_r11_declared_by_policy_and_not_sent_kinds() -> None:
    s = Script()
    s.simple("counter.incr", ["BrokenResourceError", None], gap=0.02)
    policy = RetryPolicy(wait=Fixed(0.02), non_idempotent=frozenset({"counter.incr"}))
    assert check_retry(s.journal, policy).property == "R11 idempotency gate"
    proven = RetryPolicy(
        wait=Fixed(0.02),
        non_idempotent=frozenset({"counter.incr"}),
        not_sent_kinds=frozenset({"BrokenResourceError"}),
    )
    assert check_retry(s.journal, proven).passed


def test_r16_trailing_sleep() -> None:
    s = Script()
    with s.call("add") as c:
        c.attempt("unavailable")
        c.sleep(0.01)
        c.attempt("unavailable")
        c.sleep(0.5)
        c.end("error")
    verdict = check_retry(s.journal, RetryPolicy(max_attempts=2, wait=Fixed(0.01)))
    assert verdict.property == "R16 no trailing sleep"
    assert "returned 500.0 ms after its last attempt" in verdict.message


def test_first_failing_property_is_named_and_others_listed() -> None:
    s = Script()
    s.simple("add", ["unavailable"] * 6, gap=0.0)
    verdict = check_retry(s.journal, POLICY)
    assert verdict.property == "R1 attempt bound"
    assert "also failed: R4 delay lower bound" in verdict.message
    assert [v.property for v in verdict.failed_checks()] == [
        "R1 attempt bound",
        "R4 delay lower bound",
    ]


def test_retry_checks_lists_every_property() -> None:
    s = Script()
    good_call(s)
    assert len(retry_checks(s.journal, POLICY)) == 10


def test_accepts_event_lists_and_unfinished_attempts() -> None:
    s = Script()
    with s.call("add") as c:
        c.attempt("unavailable")
        c.sleep(0.02)
        c.attempt(finish=False)
        c.ended = True
    verdict = check_retry(s.journal.events(), POLICY)
    assert verdict.passed, verdict.report()
