"""R6 (the waits follow the declared distribution) and R0 (no wait before the first attempt).

Per-gap bounds cannot fail a full-jitter client: any wait in [0, cap] is allowed. These
tests script many calls whose waits are drawn by a seeded RNG the way correct and wrong
clients draw them, and check the pooled Kolmogorov-Smirnov band test: quiet for correct
draws (also with processing slack added to every gap), loud for no backoff, no jitter, a
cap that never grows, and a sleep before the first attempt.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from faultlab.oracles import (
    Decorrelated,
    Exponential,
    Fixed,
    RetryPolicy,
    Tolerance,
    check_backoff_distribution,
    check_retry,
    retry_checks,
)
from faultlab.oracles.stats import BandSample, Uniform, band_ks, kolmogorov_sf, min_samples_for

from .helpers import Script, WireScript

FULL = Exponential(0.1, 2.0, max=0.8, full_jitter=True)
TOL = Tolerance(eps_early=0.001, eps_late=0.02, late_ratio=0.1)
POLICY = RetryPolicy(max_attempts=4, wait=FULL, tolerance=TOL)

Draw = Callable[[random.Random, int], float]


def full_jitter(rng: random.Random, k: int) -> float:
    return rng.uniform(0, min(0.1 * 2 ** (k - 1), 0.8))


def script(draw: Draw, *, calls: int = 12, seed: int = 1, slack: float = 0.0) -> Script:
    """``calls`` calls that fail three times then succeed, waiting ``draw(rng, k)`` (plus up to
    ``slack`` of processing) before retry k."""
    rng = random.Random(seed)
    s = Script()
    for _ in range(calls):
        with s.call("add") as c:
            for k in range(1, 4):
                c.attempt("unavailable")
                c.sleep(draw(rng, k) + rng.uniform(0, slack))
            c.attempt()
        s.sleep(0.05)
    return s


def r6(s: Script, policy: RetryPolicy = POLICY):  # type: ignore[no-untyped-def]
    return next(v for v in retry_checks(s.journal, policy) if v.property.startswith("R6"))


def test_correct_full_jitter_passes_over_many_seeds() -> None:
    """The false-alarm rate in practice: 300 runs of 36 waits each, none flagged."""
    alarms = [seed for seed in range(300) if not r6(script(full_jitter, seed=seed)).passed]
    assert alarms == []
    verdict = check_retry(script(full_jitter).journal, POLICY)
    assert verdict.passed, verdict.report()
    assert not r6(script(full_jitter)).vacuous


def test_processing_slack_within_eps_late_never_alarms() -> None:
    """The band makes the test sound: every gap is up to eps_late longer than the wait."""
    alarms = [
        seed
        for seed in range(200)
        if not r6(script(full_jitter, seed=seed, slack=TOL.eps_late)).passed
    ]
    assert alarms == []


def test_no_backoff_under_full_jitter_is_caught() -> None:
    verdict = r6(script(lambda rng, k: 0.0005))
    assert not verdict.passed
    assert "shorter than declared" in verdict.message
    assert "retry 1: median" in verdict.message
    assert verdict.details["p_value"] < POLICY.alpha
    assert verdict.evidence
    # every single gap is within R4/R5: only the distribution can fail
    checks = {
        v.property.split()[0]: v for v in retry_checks(script(lambda r, k: 0.0).journal, POLICY)
    }
    assert checks["R4"].passed
    assert checks["R5"].passed


def test_no_jitter_is_caught() -> None:
    verdict = r6(script(lambda rng, k: min(0.1 * 2 ** (k - 1), 0.8)))
    assert not verdict.passed
    assert "longer than declared" in verdict.message


def test_backoff_that_never_grows_is_caught() -> None:
    verdict = r6(script(lambda rng, k: rng.uniform(0, 0.1), calls=20))
    assert not verdict.passed
    assert "shorter than declared" in verdict.message


def test_too_few_waits_is_vacuous_and_says_how_many_are_needed() -> None:
    verdict = r6(script(lambda rng, k: 0.0, calls=1))
    assert verdict.passed
    assert verdict.vacuous
    assert f"needs at least {min_samples_for(POLICY.alpha)}" in verdict.message


def test_fixed_wait_leaves_r6_to_the_bounds() -> None:
    policy = RetryPolicy(max_attempts=4, wait=Fixed(0.05), tolerance=TOL)
    verdict = r6(script(lambda rng, k: 0.05), policy)
    assert verdict.passed
    assert verdict.vacuous
    assert "not random" in verdict.message


def test_equal_jitter() -> None:
    policy = RetryPolicy(
        max_attempts=4, wait=Exponential(0.1, 2.0, max=0.8, equal_jitter=True), tolerance=TOL
    )

    def equal(rng: random.Random, k: int) -> float:
        cap = min(0.1 * 2 ** (k - 1), 0.8)
        return cap / 2 + rng.uniform(0, cap / 2)

    assert all(r6(script(equal, seed=seed), policy).passed for seed in range(50))
    wrong = r6(script(full_jitter, calls=30), policy)  # full jitter dips below cap/2
    assert not wrong.passed


def test_decorrelated_jitter_is_judged_given_the_previous_wait() -> None:
    policy = RetryPolicy(max_attempts=4, wait=Decorrelated(0.05, cap=1.0), tolerance=TOL)

    def decorrelated(rng: random.Random, k: int, state: dict[str, float]) -> float:
        before = state.get("prev", 0.05) if k > 1 else 0.05
        state["prev"] = min(1.0, rng.uniform(0.05, 3 * before))
        return state["prev"]

    state: dict[str, float] = {}
    assert all(
        r6(script(lambda rng, k: decorrelated(rng, k, state), seed=seed), policy).passed
        for seed in range(50)
    )
    stuck = r6(script(lambda rng, k: 0.05, calls=20), policy)  # always the base
    assert not stuck.passed


def test_waits_pool_across_runs() -> None:
    """Two waits per run cannot say anything; twenty runs together can."""
    runs = [script(lambda rng, k: 0.0, calls=1, seed=seed).journal for seed in range(20)]
    assert r6(Script()).vacuous
    pooled = check_backoff_distribution(runs, POLICY)
    assert not pooled.passed
    assert pooled.property.startswith("R6")
    good = [script(full_jitter, calls=1, seed=seed).journal for seed in range(20)]
    assert check_backoff_distribution(good, POLICY).passed


def test_waits_the_server_chose_are_left_out() -> None:
    """After a ``Retry-After: 0`` the policy honours, retrying at once is right: those waits
    are the server's, not the client's distribution. Read as backoff, they are far too short."""
    w = WireScript()
    for _ in range(8):
        with w.call("GET") as c:
            for _k in range(3):
                c.attempt(503, retry_after=0.0)
                c.sleep(0.001)
            c.attempt(200)
        w.sleep(0.05)
    honours = RetryPolicy(
        max_attempts=4, wait=FULL, tolerance=TOL, retry_on={"http_503"}, respect_retry_after=True
    )
    ignores = RetryPolicy(max_attempts=4, wait=FULL, tolerance=TOL, retry_on={"http_503"})
    kept = next(v for v in retry_checks(w.timeline(), honours) if v.property.startswith("R6"))
    assert kept.passed
    assert kept.vacuous
    judged = next(v for v in retry_checks(w.timeline(), ignores) if v.property.startswith("R6"))
    assert not judged.passed


# ---- R0 -----------------------------------------------------------------------------------------
def r0(s: Script, policy: RetryPolicy = POLICY):  # type: ignore[no-untyped-def]
    return next(v for v in retry_checks(s.journal, policy) if v.property.startswith("R0"))


def test_sleep_before_the_first_attempt_is_caught() -> None:
    s = Script()
    with s.call("add") as c:
        c.sleep(0.08)
        c.attempt()
    verdict = r0(s)
    assert not verdict.passed
    assert "first attempt started 80.0 ms after the call" in verdict.message


def test_an_immediate_first_attempt_passes_and_a_fault_excuses_a_late_one() -> None:
    s = Script()
    with s.call("add") as c:
        c.sleep(0.001)
        c.attempt()
    assert r0(s).passed
    assert not r0(s).vacuous
    late = Script()
    with late.call("add") as c:
        late.sleep(0.01)
        late.fault("delay", delay_ms=70, type="latency")
        c.sleep(0.07)
        c.attempt()
    assert r0(late).passed
    assert r0(late).vacuous


# ---- the statistics themselves ------------------------------------------------------------------
def test_kolmogorov_tail_matches_the_textbook_critical_values() -> None:
    # D = 1.36 / sqrt(n) is the 5 % critical value, 1.63 / sqrt(n) the 1 % one (large n)
    assert kolmogorov_sf(1.36 / 100**0.5, 100) == pytest.approx(0.05, abs=0.006)
    assert kolmogorov_sf(1.63 / 100**0.5, 100) == pytest.approx(0.01, abs=0.002)
    assert kolmogorov_sf(0.0, 10) == 1.0
    assert min_samples_for(1e-5) == 6


def test_exact_uniform_samples_alarm_at_most_at_alpha() -> None:
    """The p-value is calibrated: at alpha 1 %, exact U(0,1) samples alarm about 1 % of
    the time (the band test with zero slack is the plain KS test)."""
    rng = random.Random(7)
    trials, alarms = 4000, 0
    for _ in range(trials):
        us = [rng.random() for _ in range(20)]
        result = band_ks([BandSample(1, u, u, u, Uniform(0, 1)) for u in us])
        alarms += result.p_value < 0.01
    assert alarms / trials <= 0.015


def test_uniform_with_a_cap_has_an_atom() -> None:
    capped = Uniform(0.1, 0.5, floor=0.1, ceil=0.3)
    assert capped.cdf(0.2) == pytest.approx(0.25)
    assert capped.cdf(0.3) == 1.0
    assert capped.cdf(0.3, left=True) == pytest.approx(0.5)
    assert Uniform(0.2, 0.2).degenerate
    assert not capped.degenerate
