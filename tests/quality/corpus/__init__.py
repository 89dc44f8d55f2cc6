"""The corpus: deliberately wrong clients, each with the oracle and property that must catch it.

A bug entry says which workload exercises it, which oracle's verdict must
fail and with which property, and where the bug class comes from
(resilience.md section 10). tests/quality/test_corpus.py searches fault plans
with Hypothesis until the expected property fails, then asserts the shrunk
plan is small and the message readable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.quality.corpus import breaker_bugs, other_bugs, retry_bugs


@dataclass(frozen=True)
class Bug:
    name: str
    factory: Callable[..., Any]
    workload: str
    oracle: str
    property: str
    source: str


CORPUS: tuple[Bug, ...] = (
    Bug("no-backoff", retry_bugs.NoBackoff, "retry", "retry", "R4", "backoff #136, Polly #2163"),
    # "exhaust": R1 and R8 show only once a call's attempts all failed; shrunk to the edge
    # (0.63-0.83 s of reset_peer) they failed twice in the search, then passed four replays
    Bug("retry-forever", retry_bugs.RetryForever, "exhaust", "retry", "R1", "bare @retry"),
    Bug(
        "retries-business-errors",
        retry_bugs.RetriesBusinessErrors,
        "retry",
        "retry",
        "R3",
        "R3: non-retryable retried",
    ),
    Bug(
        "incr-without-key",
        retry_bugs.IncrWithoutKey,
        "retry",
        "idempotency",
        "I3",
        "R11/I3",
    ),
    Bug(
        "new-key-per-retry",
        retry_bugs.NewKeyPerRetry,
        "retry",
        "idempotency",
        "I2",
        "gocardless-pro-python #12",
    ),
    Bug("no-cap", retry_bugs.NoCap, "retry", "retry", "R5", "resilience4j #1044"),
    Bug(
        "jitter-below-min",
        retry_bugs.JitterBelowMin,
        "retry",
        "retry",
        "R4",
        "tenacity #162 / PR #425",
    ),
    Bug("trailing-sleep", retry_bugs.TrailingSleep, "exhaust", "retry", "R16", "R16"),
    Bug(
        "retry-on-falsy-result",
        retry_bugs.RetryOnFalsyResult,
        "retry",
        "retry",
        "R2",
        "stamina PR #54",
    ),
    Bug(
        "budget-from-last-attempt",
        retry_bugs.BudgetFromLastAttempt,
        "exhaust",
        "retry",
        "R8",
        "backoff #186, tenacity PR #423",
    ),
    Bug("breaker-never-opens", breaker_bugs.NeverOpens, "breaker", "breaker", "C1", "pybreaker #7"),
    Bug(
        "breaker-leaks-while-open",
        breaker_bugs.LeaksWhileOpen,
        "breaker",
        "breaker",
        "C4",
        "C4",
    ),
    Bug(
        "primary-runs-when-open",
        breaker_bugs.PrimaryWhenOpen,
        "breaker",
        "breaker",
        "C4",
        "fabfuel/circuitbreaker PR #13",
    ),
    Bug(
        "half-open-floods",
        breaker_bugs.HalfOpenFloods,
        "breaker",
        "breaker",
        "C6",
        "smallrye #319, opossum #119",
    ),
    Bug(
        "breaker-never-closes",
        breaker_bugs.NeverCloses,
        "breaker",
        "breaker",
        "C7",
        "opossum #276",
    ),
    Bug("breaker-stuck-open", breaker_bugs.StuckOpen, "breaker", "breaker", "C5", "C5/C11"),
    Bug(
        "fallback-hides-business-errors",
        breaker_bugs.FallbackHidesBusinessErrors,
        "breaker",
        "fallback",
        "F1",
        "opossum #540",
    ),
    Bug(
        "fallback-replaces-falsy-result",
        breaker_bugs.FallbackReplacesFalsy,
        "breaker",
        "fallback",
        "F1",
        "failsafe #75",
    ),
    Bug(
        "deadline-ignored",
        other_bugs.DeadlineIgnored,
        "deadline",
        "deadline",
        "T2",
        "java-bigtable-hbase #1858",
    ),
    Bug(
        "no-backoff-under-full-jitter",
        retry_bugs.NoBackoffUnderJitter,
        "jitter",
        "retry",
        "R6",
        "backoff #136, Polly #2163 (every wait 0, each within [0, cap])",
    ),
    Bug(
        "no-jitter-under-full-jitter",
        retry_bugs.NoJitter,
        "jitter",
        "retry",
        "R6",
        "grpc-go #7514 / grpc-java #11700 (the jitter the policy declares is missing)",
    ),
    Bug(
        "sleep-before-first-attempt",
        retry_bugs.SleepFirst,
        "jitter",
        "retry",
        "R0",
        "a jittered wait drawn before every attempt, the first included",
    ),
    Bug(
        "truncated-reply-as-value",
        other_bugs.TruncatedAsValue,
        "retry",
        "roundtrip",
        "RT2",
        "a cut reply read as a value",
    ),
)
