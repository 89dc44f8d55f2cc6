"""Policies read from the libraries users configure (tenacity, stamina, pybreaker, urllib3)
over the exceptions of the HTTP libraries they call (requests, httpx, urllib3, urllib), and
the retry oracle judging black-box HTTP clients from their wire attempts."""

from __future__ import annotations

import datetime as dt
import http.client
import urllib.error
from typing import Any

import httpx
import pybreaker
import pytest
import requests
import stamina
import tenacity
from urllib3.exceptions import ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from faultlab.journal.timeline import Attempt
from faultlab.oracles import (
    BreakerPolicy,
    Exponential,
    PolicyImportError,
    RetryPolicy,
    Urllib3Backoff,
    check_retry,
    retry_checks,
)
from faultlab.oracles._samples import SAMPLED_STATUSES, WIRE_TRANSPORT_KINDS, library_samples
from faultlab.oracles.policies import kinds_of, library_of
from tests.unit.oracles.helpers import WireScript

WIRE = {"TransportTimeout", "EndOfStream", "BrokenResourceError"}
HTTP = {f"http_{s}" for s in SAMPLED_STATUSES}
HTTP_5XX = {"http_500", "http_501", "http_502", "http_503", "http_504"}
HTTP_4XX = HTTP - HTTP_5XX


class BusinessError(Exception):
    """A user's own exception: no HTTP library raises it."""


class InsufficientFunds(BusinessError):
    pass


def _status_of(error: BaseException) -> int:
    """The status of a requests ``HTTPError`` (an AttributeError for anything else)."""
    return int(error.response.status_code)  # type: ignore[attr-defined]


def _timeout() -> ReadTimeoutError:
    pool: Any = None
    return ReadTimeoutError(pool, "/items", "Read timed out.")


def _httpx_status(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://example.invalid/")
    return httpx.HTTPStatusError("x", request=request, response=httpx.Response(status))


# ---- the sample table ---------------------------------------------------------------------------
def test_samples_cover_every_wire_kind_in_every_installed_library() -> None:
    samples = library_samples()
    assert WIRE_TRANSPORT_KINDS == WIRE
    for library in ("requests", "httpx", "urllib3", "urllib"):
        errors = {s.kind for s in samples if s.library == library and s.is_error}
        assert errors >= WIRE, library
    for library in ("requests", "httpx", "urllib"):
        errors = {s.kind for s in samples if s.library == library and s.is_error}
        assert errors >= HTTP, library
    for library in ("requests", "httpx", "urllib3"):
        results = {s.kind for s in samples if s.library == library and not s.is_error}
        assert results == HTTP, library
    urllib3_errors = {s.kind for s in samples if s.library == "urllib3" and s.is_error}
    assert urllib3_errors == WIRE  # urllib3 never raises for a status


def test_samples_are_what_each_library_raises_for_the_kind() -> None:
    by = {(s.library, s.kind, s.is_error): s for s in library_samples()}

    def error(library: str, kind: str) -> BaseException:
        found = by[(library, kind, True)].error
        assert found is not None
        return found

    assert type(error("requests", "TransportTimeout")) is requests.ReadTimeout
    assert not isinstance(error("requests", "TransportTimeout"), requests.ConnectionError)
    closed = error("requests", "EndOfStream")
    assert type(closed) is requests.ConnectionError
    assert isinstance(closed.args[0], ProtocolError)
    assert isinstance(closed.args[0].args[1], http.client.RemoteDisconnected)
    reset = error("requests", "BrokenResourceError")
    assert type(reset.args[0].args[1]) is ConnectionResetError
    status = error("requests", "http_503")
    assert isinstance(status, requests.HTTPError)
    assert status.response is not None
    assert status.response.status_code == 503
    assert type(error("httpx", "TransportTimeout")) is httpx.ReadTimeout
    assert type(error("httpx", "EndOfStream")) is httpx.RemoteProtocolError
    assert type(error("httpx", "BrokenResourceError")) is httpx.ReadError
    httpx_status = error("httpx", "http_429")
    assert isinstance(httpx_status, httpx.HTTPStatusError)
    assert httpx_status.response.status_code == 429
    assert type(error("urllib3", "TransportTimeout")) is ReadTimeoutError
    assert type(error("urllib", "TransportTimeout")) is TimeoutError
    assert type(error("urllib", "EndOfStream")) is http.client.RemoteDisconnected
    urllib_status = error("urllib", "http_404")
    assert isinstance(urllib_status, urllib.error.HTTPError)
    assert urllib_status.code == 404
    assert by[("httpx", "http_502", False)].result.status_code == 502
    assert by[("urllib3", "http_502", False)].result.status == 502


def test_library_of_names_the_one_library_the_classes_come_from() -> None:
    assert library_of([requests.ConnectionError, requests.Timeout]) == "requests"
    assert library_of([httpx.HTTPError]) == "httpx"
    assert library_of([urllib.error.URLError, http.client.RemoteDisconnected]) == "urllib"
    assert library_of([requests.HTTPError, httpx.HTTPError]) is None
    assert library_of([BusinessError, OSError]) is None


def test_kinds_of_library_exceptions() -> None:
    assert kinds_of(requests.ConnectionError) == {"EndOfStream", "BrokenResourceError"}
    assert kinds_of(urllib.error.HTTPError) == HTTP
    assert kinds_of(httpx.ConnectError) == frozenset()  # a refused connection: never on the wire


# ---- tenacity ---------------------------------------------------------------------------------
def test_tenacity_retry_if_exception_type_with_requests_exceptions() -> None:
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(5),
        wait=tenacity.wait_fixed(0.2),
        retry=tenacity.retry_if_exception_type(requests.ConnectionError),
    )
    policy = RetryPolicy.from_tenacity(retrying)
    assert policy.retry_on == {"EndOfStream", "BrokenResourceError"}
    assert policy.max_attempts == 5
    assert policy.wait.bounds(3) == (0.2, 0.2)
    both = RetryPolicy.from_tenacity(
        tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((requests.ConnectionError, requests.Timeout))
        )
    )
    assert both.retry_on == WIRE


def test_tenacity_predicates_over_httpx_status_errors() -> None:
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(
            lambda e: isinstance(e, httpx.HTTPStatusError) and e.response.status_code >= 500
        )
    )
    assert RetryPolicy.from_tenacity(retrying).retry_on == HTTP_5XX


def test_tenacity_retry_if_result_and_not_result_read_returned_responses() -> None:
    on_result = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda r: r.status_code in (429, 503))
    )
    assert RetryPolicy.from_tenacity(on_result).retry_on == {"http_429", "http_503"}
    not_result = tenacity.Retrying(
        retry=tenacity.retry_if_not_result(lambda r: r.status_code < 500)
    )
    assert RetryPolicy.from_tenacity(not_result).retry_on == HTTP_5XX


def test_tenacity_combinations() -> None:
    any_of = tenacity.Retrying(
        retry=tenacity.retry_any(
            tenacity.retry_if_exception_type(httpx.TransportError),
            tenacity.retry_if_result(lambda r: r.status_code == 503),
        )
    )
    assert RetryPolicy.from_tenacity(any_of).retry_on == WIRE | {"http_503"}
    all_of = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(requests.HTTPError)
        & tenacity.retry_if_exception(lambda e: _status_of(e) in (502, 503))
    )
    assert RetryPolicy.from_tenacity(all_of).retry_on == {"http_502", "http_503"}


def test_tenacity_negative_predicate_is_read_with_its_library_only() -> None:
    # "everything but requests' HTTPError": httpx's HTTPStatusError must not count
    retrying = tenacity.Retrying(retry=tenacity.retry_if_not_exception_type(requests.HTTPError))
    assert RetryPolicy.from_tenacity(retrying).retry_on == WIRE
    broad = tenacity.Retrying(retry=tenacity.retry_if_exception(lambda e: True))
    assert RetryPolicy.from_tenacity(broad, library="httpx").retry_on == WIRE | HTTP


def test_tenacity_unmappable_strategies_raise_instead_of_retrying_nothing() -> None:
    own = tenacity.Retrying(retry=tenacity.retry_if_exception_type(BusinessError))
    with pytest.raises(PolicyImportError, match="BusinessError") as info:
        RetryPolicy.from_tenacity(own)
    assert "retry_on=" in str(info.value)
    assert isinstance(info.value, ValueError)
    partial = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((requests.ConnectionError, BusinessError))
    )
    with pytest.raises(PolicyImportError, match="BusinessError"):
        RetryPolicy.from_tenacity(partial)
    nothing = tenacity.Retrying(retry=tenacity.retry_if_exception(lambda e: False))
    with pytest.raises(PolicyImportError, match="accepts none"):
        RetryPolicy.from_tenacity(nothing)
    refused = tenacity.Retrying(retry=tenacity.retry_if_exception_type(httpx.ConnectError))
    with pytest.raises(PolicyImportError, match=r"httpx\.ConnectError"):
        RetryPolicy.from_tenacity(refused)
    declared = RetryPolicy.from_tenacity(own, retry_on={"http_503"})
    assert declared.retry_on == {"http_503"}
    never = RetryPolicy.from_tenacity(tenacity.Retrying(retry=tenacity.retry_never))
    assert never.retry_on == frozenset()


# ---- stamina ----------------------------------------------------------------------------------
def test_stamina_on_exception_classes() -> None:
    policy = RetryPolicy.from_stamina(httpx.HTTPError, attempts=4, timeout=dt.timedelta(seconds=3))
    assert policy.retry_on == WIRE | HTTP
    assert (policy.max_attempts, policy.deadline) == (4, 3.0)
    assert policy.wait == Exponential(0.1, 2.0, max=5.0, jitter=1.0)
    pair = RetryPolicy.from_stamina((requests.ConnectionError, requests.Timeout))
    assert pair.retry_on == WIRE


def test_stamina_hooks_returning_bools_or_backoffs() -> None:
    def only_503(exc: Exception) -> bool:
        return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 503

    policy = RetryPolicy.from_stamina(only_503, wait_max=dt.timedelta(seconds=2))
    assert policy.retry_on == {"http_503"}
    assert policy.wait == Exponential(0.1, 2.0, max=2.0, jitter=1.0)

    def backoff_hint(exc: Exception) -> bool | float | dt.timedelta:
        if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 429:
            return 2.5  # retry after 2.5 s
        if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 503:
            return dt.timedelta(seconds=1)
        return isinstance(exc, httpx.ReadTimeout)

    hinted = RetryPolicy.from_stamina(backoff_hint)
    assert hinted.retry_on == {"http_429", "http_503", "TransportTimeout"}
    assert hinted.wait.bounds(1) == (0.0, float("inf"))  # the hook's backoff replaces stamina's
    declared = RetryPolicy.from_stamina(backoff_hint, wait=Exponential(1.0))
    assert declared.wait == Exponential(1.0)


def test_stamina_really_retries_what_the_hook_returns_a_backoff_for() -> None:
    calls: list[int] = []

    def hook(exc: Exception) -> bool | float:
        return 0.0 if isinstance(exc, httpx.HTTPStatusError) else False

    def call() -> None:
        for attempt in stamina.retry_context(on=hook):
            with attempt:
                calls.append(1)
                raise _httpx_status(503)

    with stamina.set_testing(True, attempts=3), pytest.raises(httpx.HTTPStatusError):
        call()
    assert len(calls) == 3  # a float means "retry", even 0.0
    assert "http_503" in RetryPolicy.from_stamina(hook).retry_on


def test_stamina_unmappable_on_raises() -> None:
    with pytest.raises(PolicyImportError, match="BusinessError"):
        RetryPolicy.from_stamina(BusinessError)
    with pytest.raises(PolicyImportError, match="retries none"):
        RetryPolicy.from_stamina(lambda e: isinstance(e, BusinessError))
    declared = RetryPolicy.from_stamina(BusinessError, retry_on={"http_503", "EndOfStream"})
    assert declared.retry_on == {"http_503", "EndOfStream"}


# ---- pybreaker --------------------------------------------------------------------------------
def test_pybreaker_defaults_exclude_nothing() -> None:
    policy = BreakerPolicy.from_pybreaker(pybreaker.CircuitBreaker())
    assert policy.excluded == frozenset()
    assert (policy.fail_max, policy.reset_timeout) == (5, 60.0)


def test_pybreaker_excluding_a_user_class_records_its_name() -> None:
    cb = pybreaker.CircuitBreaker(fail_max=3, reset_timeout=10, exclude=[BusinessError])
    policy = BreakerPolicy.from_pybreaker(cb)
    assert policy.excluded == {"BusinessError", "InsufficientFunds"}
    assert not policy.counts("BusinessError")
    assert policy.counts("http_503")
    assert policy.counts("EndOfStream")


def test_pybreaker_excluding_library_classes_and_predicates() -> None:
    by_class = pybreaker.CircuitBreaker(exclude=[requests.HTTPError, BusinessError])
    assert BreakerPolicy.from_pybreaker(by_class).excluded == HTTP | {
        "BusinessError",
        "InsufficientFunds",
    }
    client_errors = pybreaker.CircuitBreaker(
        exclude=[lambda e: isinstance(e, httpx.HTTPStatusError) and e.response.status_code < 500]
    )
    assert BreakerPolicy.from_pybreaker(client_errors).excluded == HTTP_4XX


def test_pybreaker_unmappable_predicate_raises() -> None:
    cb = pybreaker.CircuitBreaker(exclude=[lambda e: isinstance(e, BusinessError)])
    with pytest.raises(PolicyImportError, match="excluded="):
        BreakerPolicy.from_pybreaker(cb)
    declared = BreakerPolicy.from_pybreaker(cb, excluded={"BusinessError"})
    assert declared.excluded == {"BusinessError"}


# ---- urllib3 Retry ----------------------------------------------------------------------------
def test_from_urllib3_reads_a_typical_retry() -> None:
    retry = Retry(total=3, backoff_factor=0.5, status_forcelist=[502, 503, 504])
    policy = RetryPolicy.from_urllib3(retry)
    assert policy.max_attempts == 4
    assert policy.retry_on == WIRE | {"http_502", "http_503", "http_504"}
    assert policy.retry_methods == frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
    assert policy.not_sent_kinds == frozenset()
    assert policy.respect_retry_after
    assert policy.retry_after_statuses == {413, 429, 502, 503, 504}
    assert policy.retry_after_max == 21600.0
    assert policy.retry_budgets == ()
    assert policy.wait == Urllib3Backoff(0.5, 0.0, 120.0)
    assert policy.deadline is None
    # requests' adapter holds the same object
    adapter = requests.adapters.HTTPAdapter(max_retries=retry)
    assert RetryPolicy.from_urllib3(adapter.max_retries) == policy


def test_from_urllib3_counters_and_switches() -> None:
    counters = RetryPolicy.from_urllib3(Retry(total=None, read=2, status=1, status_forcelist=[503]))
    assert counters.max_attempts == 4  # 1 + read + status
    assert counters.retry_budgets == ((frozenset(WIRE), 2), (frozenset({"http_503"}), 1))
    assert counters.retry_after_statuses == {503}  # total=None: no Retry-After retries of 413/429
    requests_default = RetryPolicy.from_urllib3(requests.adapters.HTTPAdapter().max_retries)
    assert requests_default.max_attempts == 1
    assert requests_default.retry_on == frozenset()  # read=False, no forcelist
    assert RetryPolicy.from_urllib3(Retry(total=False)).max_attempts == 1
    assert RetryPolicy.from_urllib3(3).max_attempts == 4
    anything = RetryPolicy.from_urllib3(
        Retry(5, allowed_methods=None, respect_retry_after_header=False, status=0)
    )
    assert anything.retry_methods is None
    assert not anything.respect_retry_after
    assert anything.retry_on == WIRE  # status=0: no status is retried
    no_read = RetryPolicy.from_urllib3(Retry(5, read=0, status_forcelist=[500]))
    assert no_read.retry_on == {"http_500"}
    unbounded = RetryPolicy.from_urllib3(Retry(total=None, status_forcelist=[503]))
    assert unbounded.max_attempts is None


@pytest.mark.parametrize(("factor", "cap"), [(0.1, 120.0), (0.5, 3.0), (0.0, 120.0), (2.0, 10.0)])
def test_urllib3_backoff_is_exactly_urllib3s(factor: float, cap: float) -> None:
    wait = RetryPolicy.from_urllib3(Retry(total=8, backoff_factor=factor, backoff_max=cap)).wait
    retry = Retry(total=8, backoff_factor=factor, backoff_max=cap)
    for k in range(1, 8):  # retry k follows the k-th failure
        retry = retry.increment("GET", "/items", error=_timeout())
        assert wait.bounds(k) == (retry.get_backoff_time(), retry.get_backoff_time()), k
    assert wait.bounds(1) == (0.0, 0.0)  # never a sleep before the first retry


def test_urllib3_backoff_with_jitter_bounds_every_sample() -> None:
    wait = Urllib3Backoff(0.25, jitter=0.5, max=1.2)
    assert wait.bounds(1) == (0.0, 0.0)
    assert wait.bounds(2) == (0.5, 1.0)
    assert wait.bounds(3) == (1.0, 1.2)
    assert wait.bounds(6) == (1.2, 1.2)
    assert "from retry 2" in wait.describe()
    retry = Retry(total=10, backoff_factor=0.25, backoff_jitter=0.5, backoff_max=1.2)
    retry = retry.increment("GET", "/", error=_timeout())
    for k in range(2, 5):
        retry = retry.increment("GET", "/", error=_timeout())
        lo, hi = wait.bounds(k)
        for _ in range(50):
            assert lo <= retry.get_backoff_time() <= hi


def _wire_attempt(
    method: str, status: int | None, kind: str | None = None, retry_after: float | None = None
) -> Attempt:
    error_kind = kind or (f"http_{status}" if status is not None else None)
    return Attempt(
        call=1,
        number=1,
        method=None,
        key=None,
        t_start=0.0,
        t_end=0.01,
        outcome="error",
        error=error_kind,
        error_kind=error_kind,
        transient=None,
        events=({"t": 0.0, "seq": 1},),
        source="wire",
        http_method=method,
        status=status,
        retry_after=retry_after,
    )


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH"])
@pytest.mark.parametrize("forcelist", [(), (500, 502, 503), (429,)])
@pytest.mark.parametrize("total", [3, None])
def test_urllib3_policy_retries_exactly_what_urllib3_retries(
    method: str, forcelist: tuple[int, ...], total: int | None
) -> None:
    retry = Retry(total=total, status_forcelist=forcelist)
    policy = RetryPolicy.from_urllib3(retry)
    for status in SAMPLED_STATUSES:
        for retry_after in (None, 2.0):
            attempt = _wire_attempt(method, status, retry_after=retry_after)
            expected = retry.is_retry(method, status, has_retry_after=retry_after is not None)
            assert policy.may_retry(attempt) == expected, (status, retry_after)
    errors = {
        "TransportTimeout": _timeout(),
        "EndOfStream": ProtocolError(
            "Connection aborted.", http.client.RemoteDisconnected("closed")
        ),
        "BrokenResourceError": ProtocolError("Connection aborted.", ConnectionResetError()),
    }
    for kind, error in errors.items():
        try:
            retry.increment(method, "/", error=error)
            retried = True
        except (ReadTimeoutError, ProtocolError):
            retried = False
        assert policy.may_retry(_wire_attempt(method, None, kind)) == retried, kind


# ---- the retry oracle on black-box HTTP clients ----------------------------------------------
URLLIB3 = RetryPolicy.from_urllib3(Retry(total=3, backoff_factor=0.1, status_forcelist=[502, 503]))


def test_a_correct_urllib3_client_passes() -> None:
    s = WireScript()
    with s.call("GET") as c:  # urllib3: no sleep before retry 1, then 0.2 s, 0.4 s
        c.attempt(503)
        c.attempt(kind="EndOfStream")
        c.sleep(0.2)
        c.attempt(502)
        c.sleep(0.4)
        c.attempt(200)
    with s.call("GET") as c:  # exhausted: requests raises RetryError, not a wire kind
        c.attempt(503)
        c.attempt(503)
        c.sleep(0.2)
        c.attempt(503)
        c.sleep(0.4)
        c.attempt(503)
        c.end("error", error_kind="RetryError")
    with s.call("POST") as c:  # POST is not retried on a status
        c.attempt(503)
        c.end("error", error_kind="RetryError")
    with s.call("GET") as c:  # 404 is not in the forcelist
        c.attempt(404)
    verdict = check_retry(s.timeline(), URLLIB3)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous
    assert "R9" in verdict.property  # Retry-After is honoured, so R9 is among the checks


def test_sleeping_before_retry_2_is_required() -> None:
    s = WireScript()
    with s.call("GET") as c:
        c.attempt(503)
        c.attempt(503)
        c.attempt(200)  # no 0.2 s wait before retry 2
    verdict = check_retry(s.timeline(), URLLIB3)
    assert verdict.property == "R4 delay lower bound", verdict.report()


def test_a_post_retried_on_503_under_default_allowed_methods_fails_r3() -> None:
    s = WireScript()
    with s.call("POST") as c:
        c.attempt(503)
        c.attempt(200)
    verdict = check_retry(s.timeline(), URLLIB3)
    assert verdict.property == "R3 classification", verdict.report()
    assert "POST request, a method the policy does not retry" in verdict.message
    anything = RetryPolicy.from_urllib3(
        Retry(total=3, backoff_factor=0.1, status_forcelist=[503], allowed_methods=None)
    )
    assert check_retry(s.timeline(), anything).passed


def test_giving_up_early_on_the_wire_is_caught_even_behind_the_callers_exception() -> None:
    s = WireScript()
    with s.call("GET") as c:
        c.attempt(503)
        c.end("error", error_kind="RetryError")  # requests' exception, never a wire kind
    verdict = check_retry(s.timeline(), URLLIB3)
    assert verdict.property == "R3 classification", verdict.report()
    assert "gave up after 1 attempt(s)" in verdict.message


def test_503_missing_from_the_forcelist() -> None:
    s = WireScript()
    with s.call("GET") as c:
        c.attempt(503)  # the client never retries 503: its forcelist lacks it
        c.end("error", error_kind="HTTPError")
    declared = RetryPolicy.from_urllib3(Retry(total=3, status_forcelist=[502]))
    assert check_retry(s.timeline(), declared).passed
    verdict = check_retry(s.timeline(), URLLIB3)
    assert not verdict.passed
    assert verdict.property == "R3 classification"
    assert "'http_503'" in verdict.message


def test_retry_after_ignored_fails_r9_and_honoured_passes() -> None:
    ignored = WireScript()
    with ignored.call("GET") as c:
        c.attempt(503, retry_after=1.0)
        c.sleep(0.01)
        c.attempt(200)
    verdict = check_retry(ignored.timeline(), URLLIB3)
    assert not verdict.passed
    assert "R9 Retry-After honoured" in verdict.details["failed"]
    assert (
        "Retry-After: 1 s" in next(v for v in verdict.failed_checks() if "R9" in v.property).message
    )
    honoured = WireScript()
    with honoured.call("GET") as c:
        c.attempt(503, retry_after=1.0)
        c.sleep(1.0)  # far above the 0 s backoff of retry 1: R5 allows the header's wait
        c.attempt(200)
    assert check_retry(honoured.timeline(), URLLIB3).passed


def test_retry_after_makes_429_retryable_like_urllib3() -> None:
    with_header = WireScript()
    with with_header.call("GET") as c:
        c.attempt(429, retry_after=0.5)
        c.sleep(0.5)
        c.attempt(200)
    assert check_retry(with_header.timeline(), URLLIB3).passed
    without = WireScript()
    with without.call("GET") as c:
        c.attempt(429)
        c.attempt(200)
    assert check_retry(without.timeline(), URLLIB3).property == "R3 classification"


def test_r9_is_vacuous_without_retry_after_and_absent_when_not_honoured() -> None:
    s = WireScript()
    with s.call("GET") as c:
        c.attempt(503)
        c.attempt(200)
    checks = {v.property: v for v in retry_checks(s.timeline(), URLLIB3)}
    assert checks["R9 Retry-After honoured"].vacuous
    assert checks["R9 Retry-After honoured"].passed
    ignoring = RetryPolicy.from_urllib3(
        Retry(total=3, status_forcelist=[503], respect_retry_after_header=False)
    )
    assert len(retry_checks(s.timeline(), ignoring)) == 10
    assert not any("R9" in v.property for v in retry_checks(s.timeline(), ignoring))


def test_read_counter_is_a_retry_budget() -> None:
    policy = RetryPolicy.from_urllib3(Retry(total=10, read=1))
    spent = WireScript()
    with spent.call("GET") as c:
        c.attempt(kind="TransportTimeout")
        c.attempt(kind="EndOfStream")
        c.end("error", error_kind="ConnectionError")
    assert check_retry(spent.timeline(), policy).passed  # read=1 spent: giving up is right
    overrun = WireScript()
    with overrun.call("GET") as c:
        c.attempt(kind="TransportTimeout")
        c.attempt(kind="EndOfStream")
        c.attempt(200)
    verdict = check_retry(overrun.timeline(), policy)
    assert verdict.property == "R1 attempt bound", verdict.report()
    assert "at most 1 such retries" in verdict.message


def test_an_unreachable_attempt_takes_the_calls_method() -> None:
    alone = WireScript()
    with alone.call("POST") as c:  # no request read, no other attempt: method unknown
        c.attempt(kind="EndOfStream", unread=True)
        c.end("error", error_kind="ConnectionError")
    assert check_retry(alone.timeline(), URLLIB3).passed
    retried_post = WireScript()
    with retried_post.call("POST") as c:
        c.attempt(kind="EndOfStream", unread=True)
        c.attempt(200, method="POST")
    verdict = check_retry(retried_post.timeline(), URLLIB3)
    assert verdict.property == "R3 classification", verdict.report()
    assert "POST request" in verdict.message
    gave_up = WireScript()
    with gave_up.call("GET") as c:
        c.attempt(503)
        c.attempt(kind="EndOfStream", unread=True)
        c.end("error", error_kind="ConnectionError")
    verdict = check_retry(gave_up.timeline(), URLLIB3)
    assert verdict.property == "R3 classification", verdict.report()
    assert "gave up after 2 attempt(s)" in verdict.message


def test_retry_after_replaces_a_longer_backoff_and_is_capped() -> None:
    policy = RetryPolicy.from_urllib3(
        Retry(total=5, backoff_factor=1.0, status_forcelist=[503], retry_after_max=3)
    )
    assert policy.retry_after_max == 3.0
    s = WireScript()
    with s.call("GET") as c:
        c.attempt(503)
        c.attempt(503, retry_after=0.5)  # retry 2: backoff 2 s, but urllib3 sleeps 0.5 s
        c.sleep(0.5)
        c.attempt(503, retry_after=100.0)  # capped at retry_after_max
        c.sleep(3.0)
        c.attempt(200)
    verdict = check_retry(s.timeline(), policy)
    assert verdict.passed, verdict.report()
    early = WireScript()
    with early.call("GET") as c:
        c.attempt(503)
        c.attempt(503, retry_after=100.0)
        c.sleep(2.5)  # the backoff, but the header asked for (at most) 3 s
        c.attempt(200)
    verdict = check_retry(early.timeline(), policy)
    assert verdict.details["failed"] == ["R9 Retry-After honoured"], verdict.report()
