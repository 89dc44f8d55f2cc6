"""The third-party corpus: wrong clients on requests/urllib3, httpx, stamina, tenacity, pybreaker
(and urllib, hand-rolled loops), each with the oracle and property that must catch it.

One entry is one :class:`Bug3p`: a factory building a fresh client (its library configured
one way, its declared policies another, as users ship them), the workload it runs, the oracle
and the property (or properties: the verdict's property must start with one) that must fail,
the fault shapes the search draws, and where the bug class comes from. Append an entry to
:data:`THIRD_PARTY` and tests/quality/test_thirdparty_corpus.py searches, shrinks and replays
it; ``slow=True`` keeps it out of the default run (``FAULTLAB_SLOW=1`` runs every entry).

The clients run against the FastAPI service of tests/blackbox/ behind a proxy with HTTP
framing; attempts are read from the wire (tests/blackbox/harness.py).
"""

from __future__ import annotations

import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pybreaker
import requests
import tenacity
from urllib3.util import Retry

from faultlab.strategies import Num
from tests.blackbox.clients import Client, _breaker, _httpx_transient
from tests.blackbox.harness import (
    BAD_REQUEST,
    BREAKER_WORKLOAD,
    RETRY_AFTER,
    UNAVAILABLE,
    WORKLOAD,
    Step,
)
from tests.quality import thirdparty_clients as tc

LATE_ANSWERS = {"latency": {"latency": Num(300, 400), "jitter": Num(0, 0)}}
"""Answers 300-400 ms late: slower than a client's "too slow" limit, within its timeout."""


def _get(n: int) -> Step:
    return Step(f"get {n}", "GET /items", lambda c, base: c.get_item(base, n))


LONG_BREAKER_WORKLOAD: tuple[Step, ...] = BREAKER_WORKLOAD + tuple(_get(n) for n in range(12, 24))
"""Calls for over a second after the breaker opens: long enough to see it never half-open."""
ORACLES = ("retry", "idempotency", "breaker", "fallback", "deadline")


@dataclass(frozen=True)
class Bug3p:
    """A wrong client on a third-party stack and what must catch it."""

    name: str
    stack: str
    factory: Callable[[], Client]
    oracle: str
    properties: tuple[str, ...]
    source: str
    allow: tuple[str, ...] = ("http_error",)
    shapes: dict[str, dict[str, Any]] = field(default_factory=lambda: UNAVAILABLE)
    workload: tuple[Step, ...] = WORKLOAD
    duration: float = 0.8
    min_duration: float = 0.3
    slow: bool = False
    """Run only with ``FAULTLAB_SLOW=1`` (the default run keeps one per oracle at least)."""
    fixed: Callable[[], Client] | None = None
    """The same client with the bug fixed (configured as declared): on the shrunk plan the
    intended property must hold for it, so the catch is the bug's and not the oracle's."""

    def __post_init__(self) -> None:
        if self.oracle not in ORACLES:
            raise ValueError(f"{self.name}: unknown oracle {self.oracle!r}")
        if not self.properties:
            raise ValueError(f"{self.name}: name the property that must catch it")


def _caller_error(exc: BaseException) -> bool:
    """A 4xx is the caller's fault: pybreaker must not count it."""
    return isinstance(exc, urllib.error.HTTPError) and exc.code < 500


THIRD_PARTY: list[Bug3p] = [
    # ---- retry: attempt bound (R1) ----------------------------------------------------------
    Bug3p(
        "tenacity_stop_after_attempt_off_by_one",
        "tenacity+urllib",
        lambda: tc.tenacity_urllib_client("tenacity stop 4", tc.retrying(attempts=4)),
        "retry",
        ("R1",),
        "stop_after_attempt(n) counts the first call: 3 retries written as 4 attempts",
        fixed=lambda: tc.tenacity_urllib_client("fixed", tc.retrying()),
    ),
    Bug3p(
        "requests_retry_inside_tenacity",
        "requests+urllib3+tenacity",
        lambda: tc.requests_client(
            "Retry inside tenacity",
            tc.default_retry(),
            around=tenacity.Retrying(
                stop=tenacity.stop_after_attempt(3),
                wait=tenacity.wait_fixed(0.05),
                retry=tenacity.retry_if_exception_type(requests.RequestException),
                reraise=True,
            ),
        ),
        "retry",
        ("R1",),
        "nested retries multiply attempts: tenacity #407, #252; NeMo-Agent-Toolkit PR #803",
        fixed=lambda: tc.requests_client("fixed", tc.default_retry()),
    ),
    Bug3p(
        "stamina_attempts_left_at_default",
        "httpx+stamina",
        lambda: tc.stamina_client("stamina default attempts", actual={"timeout": 5.0, **tc.WAIT}),
        "retry",
        ("R1",),
        "stamina.retry's attempts defaults to 10: the 3 the user meant was never passed",
        fixed=lambda: tc.stamina_client("fixed", actual={"attempts": 3, "timeout": 5.0, **tc.WAIT}),
    ),
    # ---- retry: classification (R3) ---------------------------------------------------------
    Bug3p(
        "urllib3_allowed_methods_none_retries_posts",
        "requests+urllib3",
        lambda: tc.requests_client(
            "allowed_methods=None",
            tc.default_retry(allowed_methods=None),
            declared=tc.default_retry(allowed_methods=Retry.DEFAULT_ALLOWED_METHODS),
            keyed_posts=False,
        ),
        "retry",
        ("R3",),
        "urllib3 Retry(allowed_methods=None) retries every verb, POST included (not the default)",
        fixed=lambda: tc.requests_client(
            "fixed",
            tc.default_retry(allowed_methods=Retry.DEFAULT_ALLOWED_METHODS),
            keyed_posts=False,
        ),
    ),
    Bug3p(
        "tenacity_urlerror_retries_4xx",
        "tenacity+urllib",
        lambda: tc.tenacity_urllib_client(
            "retry on URLError",
            tc.retrying(retry=tenacity.retry_if_exception(tc.urlerror_retried)),
        ),
        "retry",
        ("R3",),
        "urllib.error.HTTPError subclasses URLError: 'retry network errors' retries a 400",
        shapes=BAD_REQUEST,
        fixed=lambda: tc.tenacity_urllib_client("fixed", tc.retrying()),
    ),
    Bug3p(
        "tenacity_read_timeout_not_retried",
        "tenacity+urllib",
        lambda: tc.tenacity_urllib_client(
            "retry on URLError only",
            tc.retrying(retry=tenacity.retry_if_exception(tc.urlerror_but_not_4xx)),
        ),
        "retry",
        ("R3",),
        "urlopen wraps connect errors in URLError but not a read timeout or a reset while "
        "reading the response (TimeoutError, RemoteDisconnected escape unwrapped)",
        allow=("timeout", "reset_peer"),
        shapes={},
        fixed=lambda: tc.tenacity_urllib_client("fixed", tc.retrying()),
    ),
    # ---- retry: delays (R4, R5, R9, R16) ----------------------------------------------------
    Bug3p(
        "tenacity_wait_fixed_where_exponential_declared",
        "tenacity+urllib",
        lambda: tc.tenacity_urllib_client(
            "wait_fixed",
            tc.retrying(wait=tenacity.wait_fixed(0.1)),
            declared=tc.retrying(wait=tenacity.wait_exponential(multiplier=0.1, max=0.4)),
        ),
        "retry",
        ("R4",),
        "a copy-pasted wait_fixed where the design says exponential backoff",
        fixed=lambda: tc.tenacity_urllib_client(
            "fixed", tc.retrying(wait=tenacity.wait_exponential(multiplier=0.1, max=0.4))
        ),
    ),
    Bug3p(
        "urllib3_retry_after_honoured_by_default",
        "requests+urllib3",
        lambda: tc.requests_client(
            "Retry-After honoured",
            tc.default_retry(),
            declared=tc.default_retry(respect_retry_after_header=False),
        ),
        "retry",
        ("R5",),
        "urllib3's respect_retry_after_header defaults to True: the server's Retry-After, not "
        "the backoff, sets the wait (Polly #2160: stray delays from Retry-After)",
        shapes=RETRY_AFTER,
        fixed=lambda: tc.requests_client(
            "fixed", tc.default_retry(respect_retry_after_header=False)
        ),
    ),
    Bug3p(
        "retry_after_read_as_milliseconds",
        "httpx, hand-rolled loop",
        lambda: tc.hand_rolled_retry_after("Retry-After in ms"),
        "retry",
        ("R9",),
        "Retry-After is delay-seconds (RFC 9110 10.2.3), parsed as milliseconds",
        shapes=RETRY_AFTER,
        fixed=lambda: tc.hand_rolled_retry_after("fixed", unit=1.0),
    ),
    Bug3p(
        "hand_rolled_sleep_after_last_attempt",
        "requests, hand-rolled loop",
        lambda: tc.hand_rolled_requests("sleep after the last attempt"),
        "retry",
        ("R16",),
        "for/try/except/sleep: the backoff also runs after the final failure",
        min_duration=0.5,
        fixed=lambda: tc.hand_rolled_requests("fixed", trailing_sleep=False),
    ),
    # ---- retry: success and budget (R2, R8) -------------------------------------------------
    Bug3p(
        "httpx_tenacity_retries_a_slow_success",
        "httpx+tenacity",
        lambda: tc.httpx_tenacity_client(
            "retry if slow",
            retry=tenacity.retry_if_exception(tc.httpx_transient)
            | tenacity.retry_if_result(tc.slower_than(0.15)),
        ),
        "retry",
        ("R2",),
        "retry_if_result on response.elapsed: a slow 200 is sent again (stamina PR #54: "
        "successes retried)",
        allow=("latency",),
        shapes=LATE_ANSWERS,
        fixed=lambda: tc.httpx_tenacity_client("fixed"),
    ),
    Bug3p(
        "stamina_timeout_in_milliseconds",
        "httpx+stamina",
        lambda: tc.stamina_client(
            "stamina timeout=500",
            actual={**tc.FAST_STAMINA, "timeout": 500},
            declared=tc.FAST_STAMINA,
        ),
        "retry",
        ("R8",),
        "stamina's timeout is seconds (a float or timedelta): 500 meant 500 ms "
        "(backoff #186: retried past max_time)",
        min_duration=0.7,
        fixed=lambda: tc.stamina_client("fixed", actual=tc.FAST_STAMINA, declared=tc.FAST_STAMINA),
    ),
    # ---- idempotency ------------------------------------------------------------------------
    Bug3p(
        "httpx_tenacity_post_without_key",
        "httpx+tenacity",
        lambda: tc.httpx_tenacity_client("POST without key", keyed_posts=False),
        "idempotency",
        ("I3",),
        "a retried POST whose Idempotency-Key header was forgotten",
        fixed=lambda: tc.httpx_tenacity_client("fixed"),
    ),
    Bug3p(
        "idempotency_key_made_once_per_client",
        "requests+urllib3",
        lambda: tc.requests_client(
            "one key per client", tc.default_retry(), post_key=tc.key_per_client()
        ),
        "idempotency",
        ("I2",),
        "a key made once per client, not once per call (the mirror of gocardless-pro-python "
        "#12's key per attempt): every order after the first is dropped as a duplicate",
        fixed=lambda: tc.requests_client("fixed", tc.default_retry()),
    ),
    # ---- breaker ----------------------------------------------------------------------------
    Bug3p(
        "pybreaker_excludes_urlerror",
        "tenacity+pybreaker+urllib",
        lambda: tc.breaker_client(
            "exclude URLError",
            pybreaker.CircuitBreaker(
                fail_max=3, reset_timeout=0.6, exclude=[urllib.error.URLError]
            ),
        ),
        "breaker",
        ("C1",),
        "exclude=[URLError] meant 'not the caller's errors', but every HTTPError (5xx too) is a "
        "URLError: the breaker never opens on a failing service (the symptom of pybreaker #7)",
        workload=BREAKER_WORKLOAD,
        fixed=lambda: tc.breaker_client("fixed", _breaker(3, 0.6)),
    ),
    Bug3p(
        "pybreaker_counts_4xx",
        "tenacity+pybreaker+urllib",
        lambda: tc.breaker_client(
            "4xx counted", pybreaker.CircuitBreaker(fail_max=3, reset_timeout=0.6)
        ),
        "breaker",
        ("C2",),
        "no exclude: the caller's own 400s count as the service's failures and open the "
        "breaker (pybreaker's exclude= exists for them)",
        shapes=BAD_REQUEST,
        workload=BREAKER_WORKLOAD,
        fixed=lambda: tc.breaker_client("fixed", _breaker(3, 0.6)),
    ),
    Bug3p(
        "pybreaker_fail_max_off_by_one",
        "tenacity+pybreaker+urllib",
        lambda: tc.breaker_client("fail_max 2", _breaker(2, 0.6)),
        "breaker",
        ("C2",),
        "fail_max=2 for 'open on the third failure'",
        workload=BREAKER_WORKLOAD,
        fixed=lambda: tc.breaker_client("fixed", _breaker(3, 0.6)),
    ),
    Bug3p(
        "pybreaker_reset_timeout_left_at_default",
        "tenacity+pybreaker+urllib",
        lambda: tc.breaker_client(
            "reset_timeout 60 s",
            pybreaker.CircuitBreaker(fail_max=3, exclude=[_caller_error]),
            declared=_breaker(3, 0.5),
        ),
        "breaker",
        ("C5",),
        "pybreaker's reset_timeout defaults to 60 s: the breaker stays open long after the "
        "declared 0.5 s",
        workload=LONG_BREAKER_WORKLOAD,
        fixed=lambda: tc.breaker_client("fixed", _breaker(3, 0.5)),
    ),
    Bug3p(
        "pybreaker_reset_timeout_too_short",
        "tenacity+pybreaker+urllib",
        lambda: tc.breaker_client("reset_timeout 0.1 s", _breaker(3, 0.1)),
        "breaker",
        ("C4",),
        "reset_timeout in the wrong unit or scale: probes hammer an open service "
        "(cf. resilience4j #1432: more calls let through than the open state allows)",
        workload=BREAKER_WORKLOAD,
        fixed=lambda: tc.breaker_client("fixed", _breaker(3, 0.6)),
    ),
    # ---- fallback ---------------------------------------------------------------------------
    Bug3p(
        "fallback_replaces_a_slow_success",
        "requests+urllib3",
        lambda: tc.requests_slow_means_cached("cache when slow"),
        "fallback",
        ("F1",),
        "'serve the cache when slow' replaces successful answers (failsafe #75: a success "
        "replaced)",
        allow=("latency",),
        shapes=LATE_ANSWERS,
        fixed=lambda: tc.requests_slow_means_cached("fixed", slow=float("inf")),
    ),
    Bug3p(
        "httpx_fallback_misses_transport_errors",
        "httpx+stamina",
        lambda: tc.stamina_client(
            "fallback on HTTPStatusError",
            actual={"attempts": 3, "timeout": 5.0, **tc.WAIT},
            fallback_on=tc.status_error_only,
        ),
        "fallback",
        ("F1",),
        "except httpx.HTTPStatusError only: a reset (httpx.ReadError) reaches the caller though "
        "the fallback is declared for it",
        allow=("reset_peer",),
        shapes={},
        fixed=lambda: tc.stamina_client(
            "fixed", actual={"attempts": 3, "timeout": 5.0, **tc.WAIT}, fallback_on=_httpx_transient
        ),
    ),
    # ---- full jitter: the distribution (R6) and the first attempt (R0) ----------------------
    Bug3p(
        "full_jitter_loop_without_backoff",
        "httpx, hand-rolled loop",
        lambda: tc.jittered_loop("no backoff", mistake="no_backoff"),
        "retry",
        ("R6",),
        "every wait 0, each within full jitter's [0, cap]: no backoff at all (backoff #136, "
        "Polly #2163: instant retries)",
        fixed=lambda: tc.jittered_loop("fixed"),
    ),
    Bug3p(
        "full_jitter_drawn_before_the_first_attempt",
        "httpx, hand-rolled loop",
        lambda: tc.jittered_loop("sleep first", mistake="sleep_first", initial=0.5, cap=2.0),
        "retry",
        ("R0",),
        "for k in range(n): sleep(U(0, cap_k)); try: ... : the first call waits for nothing",
        fixed=lambda: tc.jittered_loop("fixed", initial=0.5, cap=2.0),
    ),
    # ---- a cache as the fallback ------------------------------------------------------------
    Bug3p(
        "stale_cache_masks_a_4xx",
        "requests+urllib3",
        lambda: tc.stale_cache_client("cache on any error", masks_errors=True),
        "fallback",
        ("F1",),
        "except RequestException: the caller's own 400 is answered from a stale cache "
        "(opossum #540: the fallback ran for errors the filter said were not failures)",
        shapes=BAD_REQUEST,
        fixed=lambda: tc.stale_cache_client("fixed"),
    ),
    # ---- deadline ---------------------------------------------------------------------------
    Bug3p(
        "tenacity_stop_after_delay_is_not_a_deadline",
        "tenacity+urllib",
        lambda: tc.tenacity_urllib_client(
            "stop_after_delay as a deadline",
            tc.retrying(stop=tenacity.stop_after_delay(1.0), wait=tenacity.wait_fixed(0.05)),
            timeout=0.9,
            deadline=1.0,
        ),
        "deadline",
        ("T2",),
        "stop_after_delay is checked between attempts, not during one: a 0.9 s attempt started "
        "at 0.95 s ends past the 1 s the caller was promised (tenacity PR #423; gax-java #561)",
        allow=("timeout",),
        shapes={},
        duration=2.5,
        min_duration=2.1,
        fixed=lambda: tc.tenacity_urllib_client(
            "fixed",
            tc.retrying(stop=tenacity.stop_after_delay(0.5), wait=tenacity.wait_fixed(0.05)),
            timeout=0.4,
            deadline=1.0,
        ),
    ),
]


@dataclass(frozen=True)
class Twin:
    """A correct client built with the same builder as some wrong entries: every oracle its
    policies call for must pass over every plan (no false alarm)."""

    name: str
    stack: str
    factory: Callable[[], Client]
    workload: tuple[Step, ...] = WORKLOAD


CORRECT: list[Twin] = [
    Twin(
        "hand_rolled_requests_loop",
        "requests, hand-rolled loop",
        lambda: tc.hand_rolled_requests("no trailing sleep", trailing_sleep=False),
    ),
    Twin(
        "hand_rolled_retry_after_in_seconds",
        "httpx, hand-rolled loop",
        lambda: tc.hand_rolled_retry_after("Retry-After in seconds", unit=1.0),
    ),
    Twin(
        "httpx_tenacity",
        "httpx+tenacity",
        lambda: tc.httpx_tenacity_client("httpx+tenacity"),
    ),
    Twin(
        "tenacity_urllib_without_breaker",
        "tenacity+urllib",
        lambda: tc.tenacity_urllib_client("tenacity+urllib", tc.retrying()),
    ),
    Twin(
        "full_jitter_loop",
        "httpx, hand-rolled loop",
        lambda: tc.jittered_loop("full jitter"),
    ),
    Twin(
        "stale_cache_fallback",
        "requests+urllib3",
        lambda: tc.stale_cache_client("stale cache on transient failures"),
    ),
]
"""New correct variants (the others' correct twins are tests/blackbox's correct clients)."""


def by_name(name: str) -> Bug3p:
    for bug in THIRD_PARTY:
        if bug.name == name:
            return bug
    raise KeyError(name)


__all__ = ["CORRECT", "THIRD_PARTY", "Bug3p", "Twin", "by_name"]
