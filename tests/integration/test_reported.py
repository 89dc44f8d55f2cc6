"""Two-sided checks: the library's own books (tenacity, stamina, pybreaker hooks) against the
requests the proxy saw on the wire.

Unmodified libraries around ``requests`` calling a JSON-RPC service over HTTP through a real
proxy; the only faultlab line in each client is the hook that journals what the library
says. A correct client's books agree with the wire; a client with a hidden inner retry loop
(reports 3 attempts, sends 6), and one that calls the service anyway while its breaker
reports itself open, are caught with both views as evidence.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pybreaker
import pytest
import requests
import stamina
import tenacity

from faultlab.journal import Journal
from faultlab.journal import schema as ev
from faultlab.lab import Lab, Pair
from faultlab.oracles import (
    check_reported,
    pybreaker_listener,
    report_attempts,
    report_tenacity,
    stamina_hook,
    tenacity_before_sleep,
)

TIMEOUT = 2.0


class Unavailable(Exception):
    """The service answered 503."""


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with Lab(seed=13) as lab:
        yield lab.pair("faultlab.examples.calc:Calc", protocol="jsonrpc", transport="tcp")


def post(pair: Pair, n: int = 1) -> int:
    body = {"jsonrpc": "2.0", "method": "add", "params": [n, 1], "id": n}
    response = requests.post(pair.url, json=body, timeout=TIMEOUT)
    if response.status_code == 503:
        raise Unavailable(response.text)
    response.raise_for_status()
    result: int = response.json()["result"]
    return result


def excerpt(pair: Pair, since: int) -> list[dict[str, Any]]:
    return pair.events(since=since)


def mark(pair: Pair) -> int:
    seq: int = pair.journal.record("mark", proxy=pair.name)["seq"]
    return seq


def fail_first(pair: Pair, n: int) -> None:
    pair.clear_faults()
    pair.proxy.add_toxic("http_error", stream="upstream", status=503, times=n, scope="proxy")


def tenacity_client(pair: Pair, inner_tries: int = 1) -> Callable[[int], int]:
    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_fixed(0.05),
        retry=tenacity.retry_if_exception_type(Unavailable),
        before_sleep=tenacity_before_sleep(pair),
        reraise=True,
    )

    def once(n: int) -> int:
        for left in range(inner_tries, 0, -1):  # a hidden inner retry layer when > 1
            try:
                return post(pair, n)
            except Unavailable:
                if left == 1:
                    raise
        raise AssertionError("unreachable")

    def call(n: int) -> int:
        try:
            return retrying(once, n)
        finally:
            report_tenacity(pair, retrying)

    return call


def test_tenacity_books_agree_with_the_wire(pair: Pair) -> None:
    call = tenacity_client(pair)
    since = mark(pair)
    fail_first(pair, 2)
    with pair.logical_call("add", method="add"):
        assert call(1) == 2
    verdict = check_reported(excerpt(pair, since))
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous
    checks = {c.property.split()[0]: c for c in verdict.details["checks"]}
    assert not checks["V1"].vacuous
    assert not checks["V2"].vacuous


def test_a_hidden_inner_retry_is_caught_with_both_views(pair: Pair) -> None:
    call = tenacity_client(pair, inner_tries=2)
    since = mark(pair)
    fail_first(pair, 5)
    with pair.logical_call("add", method="add"):
        assert call(1) == 2
    verdict = check_reported(excerpt(pair, since))
    assert not verdict.passed
    assert verdict.property.startswith("V1")
    assert "tenacity reported 3 attempt(s), but 6 request(s) were observed" in verdict.message
    kinds = {e["kind"] for e in verdict.evidence}
    assert {ev.CLIENT_REPORT, ev.WIRE_REQUEST} <= kinds


def test_stamina_hooks_agree_with_the_wire(pair: Pair) -> None:
    stamina.instrumentation.set_on_retry_hooks([stamina_hook(pair)])
    try:

        @stamina.retry(on=Unavailable, attempts=3, wait_initial=0.02, wait_max=0.05, wait_jitter=0)
        def call(n: int) -> int:
            return post(pair, n)

        since = mark(pair)
        fail_first(pair, 2)
        with pair.logical_call("add", method="add"):
            assert call(1) == 2
    finally:
        stamina.instrumentation.set_on_retry_hooks(None)
    events = excerpt(pair, since)
    assert [e["retry"] for e in events if e["kind"] == ev.CLIENT_RETRY] == [1, 2]
    verdict = check_reported(events)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous


def breaker_client(pair: Pair, *, bypass: bool) -> Callable[[int], Any]:
    breaker = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=30, name="calc")
    breaker.add_listener(pybreaker_listener(pair))

    def call(n: int) -> Any:
        try:
            return breaker.call(post, pair, n)
        except pybreaker.CircuitBreakerError:
            if bypass:  # "fallback": ask the service anyway, the breaker's whole point lost
                return post(pair, n)
            return None

    return call


@pytest.mark.parametrize("bypass", [False, True], ids=["correct", "bypasses-open-breaker"])
def test_requests_while_the_breaker_reports_open(pair: Pair, bypass: bool) -> None:
    call = breaker_client(pair, bypass=bypass)
    since = mark(pair)
    fail_first(pair, 100)
    for n in range(5):
        with pair.logical_call("add", method="add"):
            try:
                call(n)
            except (Unavailable, pybreaker.CircuitBreakerError):
                pass
    pair.clear_faults()
    events = excerpt(pair, since)
    assert [e["state"] for e in events if e["kind"] == ev.BREAKER] == ["open"]
    verdict = check_reported(events)
    if not bypass:
        assert verdict.passed, verdict.report()
        return
    assert not verdict.passed
    assert verdict.property.startswith("V3")
    assert "reported itself open" in verdict.message
    assert "request(s) flowed meanwhile" in verdict.message


def test_nothing_reported_is_vacuous_and_says_how_to_report(pair: Pair) -> None:
    since = mark(pair)
    pair.clear_faults()
    with pair.logical_call("add", method="add"):
        post(pair)
    verdict = check_reported(excerpt(pair, since))
    assert verdict.passed
    assert verdict.vacuous
    assert "faultlab.oracles.reporters" in verdict.message


def test_reporters_refuse_what_they_cannot_use() -> None:
    with pytest.raises(TypeError, match="pass a Pair, a Lab or a Journal"):
        report_attempts(object(), 2)
    with pytest.raises(ValueError, match="must be a count"):
        report_attempts(Journal(), -1)
    with pytest.raises(TypeError, match="statistics"):
        report_tenacity(Journal(), object())
    lock = threading.Lock()  # any object without statistics
    with pytest.raises(TypeError):
        report_tenacity(Journal(), lock)


def test_a_wait_announced_but_not_slept_is_caught(pair: Pair) -> None:
    """tenacity computes 0.2 s and its hook says so, but the sleep was patched out (as a
    test double left in production code would): the wire shows the retries back to back."""
    session = requests.Session()
    body = {"jsonrpc": "2.0", "method": "add", "params": [1, 1], "id": 1}

    def once() -> int:
        response = session.post(pair.url, json=body, timeout=TIMEOUT)
        if response.status_code == 503:
            raise Unavailable(response.text)
        result: int = response.json()["result"]
        return result

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_fixed(0.2),
        retry=tenacity.retry_if_exception_type(Unavailable),
        before_sleep=tenacity_before_sleep(pair),
        sleep=lambda seconds: None,
        reraise=True,
    )
    since = mark(pair)
    fail_first(pair, 2)
    try:
        with pair.logical_call("add", method="add"):
            assert retrying(once) == 2
    finally:
        session.close()
    verdict = check_reported(excerpt(pair, since))
    assert not verdict.passed
    assert verdict.property.startswith("V2")
    assert "announced a wait of 200.0 ms before retry 1" in verdict.message
    assert "it does not sleep what it says" in verdict.message
