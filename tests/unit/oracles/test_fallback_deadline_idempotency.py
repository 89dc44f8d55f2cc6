"""check_fallback, check_deadline and check_idempotency over scripted journals."""

from __future__ import annotations

from faultlab.journal import Journal
from faultlab.journal import schema as ev
from faultlab.oracles import (
    DeadlinePolicy,
    FallbackPolicy,
    RetryPolicy,
    check_deadline,
    check_fallback,
    check_idempotency,
)

from .helpers import Script

FALLBACK = FallbackPolicy(value=None, inner_attempts=None)


# ---- fallback ----------------------------------------------------------------------------------
def test_fallback_correct_use_passes() -> None:
    s = Script()
    s.simple("add")
    with s.call("add") as c:
        c.attempt("unavailable")
        c.end("value", value=None)
    s.reject(outcome="value", value=None)
    with s.call("div") as c:
        c.attempt("application_error")
        c.end("error")
    verdict = check_fallback(s.journal, FALLBACK)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous
    assert "2 fell back" in verdict.message


def test_fallback_vacuous_without_failures() -> None:
    s = Script()
    s.simple("add")
    verdict = check_fallback(s.journal, FALLBACK)
    assert verdict.passed
    assert verdict.vacuous


def test_f1_masks_a_non_transient_error() -> None:
    s = Script()
    with s.call("div") as c:
        c.attempt("application_error")
        c.end("value", value=None)
    verdict = check_fallback(s.journal, FALLBACK)
    assert verdict.property == "F1 fallback iff handled failure"
    assert "the error was masked" in verdict.message


def test_f1_replaces_a_success_and_misses_a_handled_error() -> None:
    s = Script()
    with s.call("add") as c:
        c.attempt()
        c.end("fallback", value=None)
    assert "must never be replaced" in check_fallback(s.journal, FALLBACK).message
    s2 = Script()
    s2.simple("add", ["unavailable"])
    assert "but the caller got the error" in check_fallback(s2.journal, FALLBACK).message
    s3 = Script()
    s3.reject()
    assert "instead of the fallback" in check_fallback(s3.journal, FALLBACK).message


def test_a_cache_fallback_has_nothing_to_give_before_the_first_success() -> None:
    """``needs_success``: an eligible failure before any call of that method succeeded may
    reach the caller; after one did, it must be answered from the cache."""
    cache = FallbackPolicy(value=None, needs_success=True)
    s = Script()
    s.simple("get", ["unavailable"])  # nothing cached yet: the error is all it has
    s.simple("get")
    verdict = check_fallback(s.journal, cache)
    assert verdict.passed, verdict.report()
    s.simple("get", ["unavailable"])  # now it has an answer and still gave the error
    verdict = check_fallback(s.journal, cache)
    assert "but the caller got the error" in verdict.message
    first = Script()
    first.simple("get", ["unavailable"])
    assert not check_fallback(first.journal, FALLBACK).passed  # without the flag: caught


def test_f2_fallback_event_before_the_last_attempt_and_premature() -> None:
    s = Script()
    with s.call("add") as c:
        c.attempt("unavailable")
        s.record(ev.FALLBACK, call=c.call, reason="x")
        c.sleep(0.01)
        c.attempt("unavailable")
        c.end("fallback")
    verdict = check_fallback(s.journal, FALLBACK)
    assert verdict.property == "F2 once and last"
    s2 = Script()
    with s2.call("add") as c:
        c.attempt("unavailable")
        c.end("value", value=None)
    early = check_fallback(s2.journal, FallbackPolicy(value=None, inner_attempts=3))
    assert early.property == "F2 once and last"
    assert "retry budget" in early.message


# ---- deadline ----------------------------------------------------------------------------------
DEADLINE = DeadlinePolicy(0.2)


def test_deadline_respected_under_black_hole() -> None:
    s = Script()
    with s.call("add") as c:
        c.attempt("TransportTimeout", took=0.1)
        c.sleep(0.01)
        c.attempt("TransportTimeout", took=0.085)
    verdict = check_deadline(s.journal, DEADLINE)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous


def test_deadline_ignored() -> None:
    s = Script()
    with s.call("add") as c:
        c.attempt("TransportTimeout", took=0.5)
    verdict = check_deadline(s.journal, DEADLINE)
    assert verdict.property == "T2 overall deadline"
    assert "returned (error) 500.0 ms after it started; the deadline is 200.0 ms" in verdict.message


def test_deadline_attempt_after_it_and_never_returned() -> None:
    s = Script()
    with s.call("add") as c:
        c.attempt("TransportTimeout", took=0.19)
        c.sleep(0.1)
        c.attempt("TransportTimeout", took=0.0)
        c.end("error")
    verdict = check_deadline(s.journal, DeadlinePolicy(0.2, methods=frozenset({"add"})))
    assert verdict.property == "T2 overall deadline"  # also took too long
    assert "also failed: T2 no attempt after the deadline" in verdict.message
    s2 = Script()
    with s2.call("add") as c:
        c.attempt(finish=False, took=1.0)
        c.ended = True
    s2.record("fault", decision="blackhole", type="timeout")
    assert "had not returned" in check_deadline(s2.journal, DEADLINE).message


def test_deadline_vacuous_when_nothing_pressed() -> None:
    s = Script()
    s.simple("add")
    assert check_deadline(s.journal, DEADLINE).vacuous


# ---- idempotency -------------------------------------------------------------------------------
INCR = RetryPolicy(non_idempotent=frozenset({"counter.incr"}))


def incr(
    s: Script, outcomes: list[str | None], keys: list[str | None], *, executed: list[bool]
) -> None:
    with s.call("counter.incr", idempotent=False) as c:
        for outcome, key, ran in zip(outcomes, keys, executed, strict=True):
            c.attempt(outcome, key=key, server=ran)
            c.sleep(0.01)


def test_idempotency_keyed_retries_pass() -> None:
    s = Script()
    incr(s, ["unavailable", None], ["k1", "k1"], executed=[True, True])  # server dedups k1
    incr(s, [None], ["k2"], executed=[True])
    verdict = check_idempotency(s.journal, INCR)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous


def test_i3_retry_without_key() -> None:
    s = Script()
    incr(s, ["unavailable", None], [None, None], executed=[True, True])
    verdict = check_idempotency(s.journal, INCR)
    assert verdict.property == "I3 key required for retry"
    assert "also failed: I1 at most one side effect" in verdict.message


def test_i2_new_key_per_retry() -> None:
    s = Script()
    incr(s, ["unavailable", None], ["a", "b"], executed=[True, True])
    verdict = check_idempotency(s.journal, INCR)
    assert verdict.property == "I2 stable key, unique per call"
    assert "changed its idempotency key" in verdict.message
    i1 = next(c for c in verdict.checks if c.property.startswith("I1"))
    assert not i1.passed
    assert "took effect 2 times" in i1.message


def test_i2_key_reused_across_calls() -> None:
    s = Script()
    incr(s, [None], ["same"], executed=[True])
    incr(s, [None], ["same"], executed=[True])
    verdict = check_idempotency(s.journal, INCR)
    assert verdict.property == "I2 stable key, unique per call"
    assert "reused" in verdict.message


def test_i1_from_side_effect_events_and_reported_effects() -> None:
    j = Journal()
    j.record(ev.CALL_START, call=1, method="counter.incr", idempotent=False, t=0.0)
    for n in (1, 2):
        j.record(
            ev.ATTEMPT_START, call=1, attempt=n, method="counter.incr", idempotency_key="k", t=n
        )
        j.record(ev.SIDE_EFFECT, key="k", method="counter.incr", t=n + 0.1)
        j.record(
            ev.ATTEMPT_END,
            call=1,
            attempt=n,
            outcome="error" if n == 1 else "ok",
            error_kind="unavailable",
            t=n + 0.2,
        )
    j.record(ev.CALL_END, call=1, outcome="value", t=3.0)
    verdict = check_idempotency(j, INCR)
    assert verdict.property == "I1 at most one side effect"
    assert "'k'" in verdict.message
    effects = [{"key": "k", "amount": 1}, {"key": "k", "amount": 1}]
    events = [e for e in j.events() if e["kind"] != ev.SIDE_EFFECT]
    assert not check_idempotency(events, INCR, effects=effects).passed
    assert check_idempotency(events, INCR, effects=effects[:1]).passed


def test_idempotency_vacuous_and_flag_from_call() -> None:
    s = Script()
    incr(s, [None], [None], executed=[True])
    assert check_idempotency(s.journal).vacuous  # judged from the call's own flag
    assert check_idempotency(s.journal, non_idempotent=["counter.incr"]).vacuous
