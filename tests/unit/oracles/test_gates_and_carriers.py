"""False alarms the independent corpus found, each fixed at its root.

- R3 must honour the idempotency gate R11 enforces: a non-idempotent call without a key
  that is *not* retried is what the policy says, not a missed retry;
- I1 reads the key from whatever carried it (a server that journals no key);
- a call that returned a value although its last attempt failed (or made none) is a
  fallback, whatever the value (a cache), and messages say what the caller got.
"""

from __future__ import annotations

from faultlab.journal import schema as ev
from faultlab.oracles import FallbackPolicy, RetryPolicy, check_fallback, check_idempotency
from faultlab.oracles.retry import retry_checks

from .helpers import Script, WireScript

INCR = RetryPolicy(max_attempts=3, non_idempotent=frozenset({"counter.incr"}))


def r3(s: Script, policy: RetryPolicy = INCR):  # type: ignore[no-untyped-def]
    return next(v for v in retry_checks(s.journal, policy) if v.property.startswith("R3"))


def test_r3_accepts_a_non_idempotent_call_left_unretried_without_a_key() -> None:
    s = Script()
    with s.call("counter.incr", idempotent=False) as c:
        c.attempt("unavailable")
        c.end("error")
    verdict = r3(s)
    assert verdict.passed, verdict.report()


def test_r3_still_expects_a_keyed_non_idempotent_retry() -> None:
    s = Script()
    with s.call("counter.incr", idempotent=False) as c:
        c.attempt("unavailable", key="k1")
        c.end("error")
    verdict = r3(s)
    assert not verdict.passed
    assert "gave up after 1 attempt(s)" in verdict.message


def test_r3_a_policy_that_never_retries_non_idempotent_calls() -> None:
    no_key_retries = RetryPolicy(
        max_attempts=3, non_idempotent=frozenset({"counter.incr"}), require_key=False
    )
    s = Script()
    with s.call("counter.incr", idempotent=False) as c:
        c.attempt("unavailable", key="k1")
        c.end("error")
    assert r3(s, no_key_retries).passed


def test_r3_a_failure_proving_the_request_never_left_reopens_the_gate() -> None:
    policy = RetryPolicy(
        max_attempts=3,
        non_idempotent=frozenset({"counter.incr"}),
        not_sent_kinds=frozenset({"ConnectionRefusedError"}),
        retry_on=frozenset({"ConnectionRefusedError", "unavailable"}),
    )
    s = Script()
    with s.call("counter.incr", idempotent=False) as c:
        c.attempt("ConnectionRefusedError")
        c.end("error")
    assert not r3(s, policy).passed


def test_i1_takes_the_key_from_the_attempt_when_the_server_journals_none() -> None:
    """The client sent ``Idempotency-Key: k1`` on both attempts; the server journaled no key
    (it reads headers it does not record); one effect, then a replay, is not a duplicate."""
    s = Script()
    with s.call("counter.incr", idempotent=False) as c:
        for outcome in ("unavailable", None):
            c.attempt(outcome, key="k1")
            s.record(
                ev.SERVER_REQUEST,
                method="counter.incr",
                request_id=1,
                idempotency_key=None,
                outcome="ok",
                dt=-0.002,
            )
            c.sleep(0.01)
    verdict = check_idempotency(s.journal, INCR)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous


def test_i1_still_counts_two_effects_of_an_unkeyed_retry() -> None:
    s = Script()
    with s.call("counter.incr", idempotent=False) as c:
        for outcome in ("unavailable", None):
            c.attempt(outcome, server=True)
            c.sleep(0.01)
    i1 = next(
        v for v in check_idempotency(s.journal, INCR).details["checks"] if v.property[:2] == "I1"
    )
    assert not i1.passed
    assert "took effect 2 times" in i1.message


# ---- fallback read from what happened ----------------------------------------------------------
CACHE = FallbackPolicy(eligible=frozenset({"unavailable", "http_503"}))
"""No declared value: the client answers from a cache."""


def test_a_cached_value_after_a_failed_attempt_is_recognised_as_a_fallback() -> None:
    s = Script()
    with s.call("get") as c:
        c.attempt("unavailable")
        c.end("value", value={"name": "cached"})
    verdict = check_fallback(s.journal, CACHE)
    assert verdict.passed, verdict.report()
    assert "1 fell back" in verdict.message


def test_a_cached_value_masking_an_ineligible_error_says_what_the_caller_got() -> None:
    s = Script()
    with s.call("get") as c:
        c.attempt("invalid_params")
        c.end("value", value={"name": "stale"})
    verdict = check_fallback(s.journal, CACHE)
    assert not verdict.passed
    assert "the caller got the value {'name': 'stale'} as a fallback" in verdict.message
    assert "last attempt failed with 'invalid_params'" in verdict.message
    assert "which is not eligible (the fallback handles http_503, unavailable)" in verdict.message


def test_a_stale_cache_hit_without_a_request_is_not_called_a_rejection_error() -> None:
    s = Script()
    s.reject(outcome="value", value={"name": "stale"})
    no_reject = FallbackPolicy(eligible=frozenset({"unavailable"}), on_reject=False)
    verdict = check_fallback(s.journal, no_reject)
    assert not verdict.passed
    assert "got the value {'name': 'stale'} as a fallback" in verdict.message
    assert "None" not in verdict.message


def test_a_missed_fallback_names_the_error_the_caller_got() -> None:
    s = Script()
    s.simple("get", ["unavailable"])
    verdict = check_fallback(s.journal, CACHE)
    assert not verdict.passed
    assert "the caller got the error unavailable instead of the fallback" in verdict.message
    assert "got the error None" not in verdict.message


def test_fallback_from_the_wire() -> None:
    """A black-box client: 503 on the wire, yet the caller returned a value."""
    w = WireScript()
    with w.call("GET") as c:
        c.attempt(503)
        c.end("value")
    with w.call("GET") as c:
        c.attempt(200)
    verdict = check_fallback(w.timeline(), CACHE)
    assert verdict.passed, verdict.report()
    assert "1 fell back" in verdict.message
    w2 = WireScript()
    with w2.call("GET") as c:
        c.attempt(400)
        c.end("value")
    masked = check_fallback(w2.timeline(), CACHE)
    assert not masked.passed
    assert "'http_400', which is not eligible" in masked.message
