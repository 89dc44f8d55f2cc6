"""Wrong HTTP clients on third-party stacks, as users ship them, beyond tests/blackbox/clients.py.

Each builder returns a :class:`tests.blackbox.clients.Client` whose library is configured one
way (``actual``) while its declared policies, read with faultlab's importers from the objects
the user *believes* configure it (or written out for a hand-rolled loop), say another. Nothing
here journals an attempt: the oracles read them from the proxy's wire, as in tests/blackbox/.

Stacks: ``requests`` with urllib3's ``Retry`` (alone, inside tenacity, or a hand-rolled loop),
``httpx`` with stamina or tenacity (or a hand-rolled loop), tenacity with pybreaker around
``urllib``.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pybreaker
import requests
import stamina
import tenacity
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from faultlab.oracles import (
    NOT_SET,
    BreakerPolicy,
    DeadlinePolicy,
    Exponential,
    FallbackPolicy,
    RetryPolicy,
)
from tests.blackbox.clients import (
    ATTEMPT_TIMEOUT,
    CACHED,
    TOLERANCE,
    TRANSIENT_STATUSES,
    Client,
    _breaker,
    _httpx_transient,
    _retrying,
    _transient_kinds,
    _urllib_transient,
)

POSTS = frozenset({"POST /orders"})
"""Creating an order is not idempotent: retried only with an ``Idempotency-Key``."""
DEADLINE = 3 * ATTEMPT_TIMEOUT + 0.4 + 1.0
"""What the clients of tests/blackbox declare: three attempts, their backoff and slack."""
WAIT = {"wait_initial": 0.05, "wait_max": 0.2, "wait_jitter": 0.05}
"""The stamina backoff of tests/blackbox/clients.py."""


FAST_STAMINA: dict[str, Any] = {
    "attempts": 10,
    "timeout": 0.5,
    "wait_initial": 0.05,
    "wait_max": 0.1,
    "wait_jitter": 0.0,
}
"""Many quick retries within a 0.5 s budget."""


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def _fallback_policy() -> FallbackPolicy:
    """GETs fall back to :data:`CACHED` on a transient failure, and only then."""
    return FallbackPolicy(
        eligible=_transient_kinds(),
        value=CACHED,
        on_reject=False,
        tolerance=TOLERANCE,
        methods=frozenset({"GET /items"}),
    )


# ---- tenacity (and pybreaker) around urllib --------------------------------------------------
def _urllib_get(base: str, item_id: int) -> urllib.request.Request:
    return urllib.request.Request(f"{base}/items/{item_id}")


def _urllib_post(base: str, item_id: int, *, keyed: bool = True) -> urllib.request.Request:
    headers = {"Content-Type": "application/json", **(_key() if keyed else {})}
    return urllib.request.Request(
        f"{base}/orders",
        data=json.dumps({"item": item_id}).encode(),
        headers=headers,
        method="POST",
    )


def tenacity_urllib_client(
    name: str,
    actual: tenacity.Retrying,
    *,
    declared: tenacity.Retrying | None = None,
    timeout: float = ATTEMPT_TIMEOUT,
    deadline: float = DEADLINE,
    breaker: pybreaker.CircuitBreaker | None = None,
    declared_breaker: pybreaker.CircuitBreaker | None = None,
) -> Client:
    """``urllib.request.urlopen`` retried by ``actual`` (around ``breaker.call`` when given,
    the breaker guarding each attempt); declares ``declared`` (default: the blackbox client's
    three attempts on transient failures) and ``declared_breaker``."""

    def fetch(request: urllib.request.Request) -> Any:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")

    def guarded(request: urllib.request.Request) -> Any:
        if breaker is None:
            return actual(fetch, request)
        return actual(breaker.call, fetch, request)

    policies: dict[str, Any] = {
        "retry": RetryPolicy.from_tenacity(
            declared or _retrying(_urllib_transient),
            library="urllib",
            non_idempotent=POSTS,
            tolerance=TOLERANCE,
        ),
        "deadline": DeadlinePolicy(deadline, tolerance=TOLERANCE),
    }
    if breaker is not None:
        policies["breaker"] = BreakerPolicy.from_pybreaker(
            declared_breaker or _breaker(3, 0.6),
            library="urllib",
            scope="attempt",
            tolerance=TOLERANCE,
        )
    return Client(
        name,
        lambda base, item_id: guarded(_urllib_get(base, item_id)),
        lambda base, item_id: guarded(_urllib_post(base, item_id)),
        policies,
        uses_breaker=breaker is not None,
    )


def retrying(
    *,
    attempts: int = 3,
    wait: Any = None,
    retry: Any = None,
    stop: Any = None,
) -> tenacity.Retrying:
    """A ``Retrying`` like the blackbox client's, with one part changed."""
    return tenacity.Retrying(
        stop=stop if stop is not None else tenacity.stop_after_attempt(attempts),
        wait=wait if wait is not None else tenacity.wait_exponential(multiplier=0.05, max=0.2),
        retry=retry if retry is not None else tenacity.retry_if_exception(_urllib_transient),
        reraise=True,
    )


def urlerror_retried(exc: BaseException) -> bool:
    """ "Retry network errors": but ``HTTPError`` is a ``URLError``, a 400 included."""
    return isinstance(exc, urllib.error.URLError | TimeoutError | ConnectionError)


def urlerror_but_not_4xx(exc: BaseException) -> bool:
    """ "Retry what urlopen raises for a network error, not a 4xx": but a read timeout or a
    reset while reading the response escapes urlopen unwrapped (``TimeoutError``,
    ``RemoteDisconnected``), not as a ``URLError``."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code >= 500
    return isinstance(exc, urllib.error.URLError)


def breaker_client(
    name: str, actual: pybreaker.CircuitBreaker, declared: pybreaker.CircuitBreaker | None = None
) -> Client:
    """The blackbox tenacity+pybreaker client with its breaker built by the user as ``actual``."""
    return tenacity_urllib_client(
        name, retrying(), breaker=actual, declared_breaker=declared or _breaker(3, 0.6)
    )


# ---- requests + urllib3.Retry ----------------------------------------------------------------
def default_retry(**changes: Any) -> Retry:
    """The ``Retry`` of the blackbox requests client (GETs and keyed POSTs retried)."""
    settings: dict[str, Any] = {
        "total": 2,
        "connect": 2,
        "read": 2,
        "status": 2,
        "backoff_factor": 0.05,
        "status_forcelist": TRANSIENT_STATUSES,
        "allowed_methods": frozenset({"GET", "POST"}),
        "respect_retry_after_header": True,
    }
    settings.update(changes)
    return Retry(**settings)


def requests_client(
    name: str,
    actual: Retry,
    *,
    declared: Retry | None = None,
    keyed_posts: bool = True,
    post_key: Callable[[], dict[str, str]] = _key,
    around: tenacity.Retrying | None = None,
) -> Client:
    """A ``requests.Session`` with ``actual`` mounted (each call retried again by ``around``
    when given); declares ``declared`` (default: ``actual``)."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=actual))

    def once(method: str, url: str, **kwargs: Any) -> Any:
        response = session.request(method, url, timeout=ATTEMPT_TIMEOUT, **kwargs)
        response.raise_for_status()
        return response.json()

    def send(method: str, url: str, **kwargs: Any) -> Any:
        if around is None:
            return once(method, url, **kwargs)
        return around(once, method, url, **kwargs)

    def get_item(base: str, item_id: int) -> Any:
        return send("GET", f"{base}/items/{item_id}")

    def create_order(base: str, item_id: int) -> Any:
        headers = post_key() if keyed_posts else {}
        return send("POST", f"{base}/orders", json={"item": item_id}, headers=headers)

    policies: dict[str, Any] = {
        "retry": RetryPolicy.from_urllib3(
            declared or actual, non_idempotent=POSTS, tolerance=TOLERANCE
        ),
        "deadline": DeadlinePolicy(DEADLINE, tolerance=TOLERANCE),
    }
    return Client(name, get_item, create_order, policies, close=session.close)


def key_per_client() -> Callable[[], dict[str, str]]:
    """One key made when the client is built, "so a retry reuses it": every order shares it."""
    headers = _key()
    return lambda: headers


def requests_slow_means_cached(name: str, *, slow: float = 0.2) -> Client:
    """GETs whose answer took longer than ``slow`` are replaced by :data:`CACHED` ("serve the
    cache when the service is slow"), though the fallback is declared for failures only."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=default_retry()))

    def get_item(base: str, item_id: int) -> Any:
        started = time.monotonic()
        try:
            response = session.get(f"{base}/items/{item_id}", timeout=ATTEMPT_TIMEOUT)
            response.raise_for_status()
        except requests.RequestException:
            return CACHED
        if time.monotonic() - started > slow:
            return CACHED
        return response.json()

    def create_order(base: str, item_id: int) -> Any:
        response = session.post(
            f"{base}/orders", json={"item": item_id}, headers=_key(), timeout=ATTEMPT_TIMEOUT
        )
        response.raise_for_status()
        return response.json()

    policies: dict[str, Any] = {
        "retry": RetryPolicy.from_urllib3(
            default_retry(), non_idempotent=POSTS, tolerance=TOLERANCE
        ),
        "fallback": _fallback_policy(),
    }
    return Client(name, get_item, create_order, policies, close=session.close)


# ---- hand-rolled loops -----------------------------------------------------------------------
def hand_rolled_requests(
    name: str, *, attempts: int = 3, base_wait: float = 0.1, trailing_sleep: bool = True
) -> Client:
    """``for attempt in range(attempts): try ... except: sleep(backoff)``: the sleep runs after
    the last failure too, so the caller waits for nothing (``trailing_sleep=False``: the
    correct twin, which raises at once after the last attempt)."""
    session = requests.Session()

    def send(method: str, url: str, **kwargs: Any) -> Any:
        error: BaseException | None = None
        for attempt in range(attempts):
            try:
                response = session.request(method, url, timeout=ATTEMPT_TIMEOUT, **kwargs)
                if response.status_code not in TRANSIENT_STATUSES:
                    response.raise_for_status()
                    return response.json()
                error = requests.HTTPError(response=response)
            except (requests.ConnectionError, requests.Timeout) as exc:
                error = exc
            if trailing_sleep or attempt < attempts - 1:
                time.sleep(base_wait * 2**attempt)
        assert error is not None
        raise error

    def get_item(base: str, item_id: int) -> Any:
        return send("GET", f"{base}/items/{item_id}")

    def create_order(base: str, item_id: int) -> Any:
        return send("POST", f"{base}/orders", json={"item": item_id}, headers=_key())

    policies: dict[str, Any] = {
        "retry": RetryPolicy(
            max_attempts=attempts,
            wait=Exponential(base_wait, 2.0),
            retry_on=_transient_kinds(),
            non_idempotent=POSTS,
            tolerance=TOLERANCE,
        )
    }
    return Client(name, get_item, create_order, policies, close=session.close)


def hand_rolled_retry_after(
    name: str, *, attempts: int = 3, base_wait: float = 0.05, unit: float = 0.001
) -> Client:
    """httpx in a loop that waits at least what a transient status's ``Retry-After`` asks,
    read in ``unit`` seconds: the bug reads it as milliseconds (it is seconds: ``unit=1``,
    the correct twin)."""
    client = httpx.Client(timeout=ATTEMPT_TIMEOUT)

    def send(method: str, url: str, **kwargs: Any) -> Any:
        for attempt in range(1, attempts + 1):
            try:
                response = client.request(method, url, **kwargs)
            except httpx.TransportError:
                if attempt == attempts:
                    raise
                time.sleep(base_wait * 2 ** (attempt - 1))
                continue
            if response.status_code not in TRANSIENT_STATUSES or attempt == attempts:
                response.raise_for_status()
                return response.json()
            asked = float(response.headers.get("Retry-After", 0)) * unit
            time.sleep(max(base_wait * 2 ** (attempt - 1), asked))
        raise AssertionError("unreachable")

    def get_item(base: str, item_id: int) -> Any:
        return send("GET", f"{base}/items/{item_id}")

    def create_order(base: str, item_id: int) -> Any:
        return send("POST", f"{base}/orders", json={"item": item_id}, headers=_key())

    policies: dict[str, Any] = {
        "retry": RetryPolicy(
            max_attempts=attempts,
            wait=Exponential(base_wait, 2.0),
            retry_on=_transient_kinds(),
            non_idempotent=POSTS,
            respect_retry_after=True,
            retry_after_statuses=frozenset(TRANSIENT_STATUSES),
            tolerance=TOLERANCE,
        )
    }
    return Client(name, get_item, create_order, policies, close=client.close)


# ---- httpx + stamina / tenacity --------------------------------------------------------------
def stamina_client(
    name: str,
    *,
    actual: dict[str, Any],
    declared: dict[str, Any] | None = None,
    timeout: float | None = ATTEMPT_TIMEOUT,
    fallback_on: Callable[[Exception], bool] | None = None,
) -> Client:
    """``httpx.Client`` calls in ``stamina.retry(on=_httpx_transient, **actual)``; declares
    ``declared`` (default: the blackbox client's three attempts, 5 s timeout). With
    ``fallback_on``, a GET whose error it accepts answers :data:`CACHED`."""
    client = httpx.Client(timeout=timeout)

    @stamina.retry(on=_httpx_transient, **actual)
    def get(url: str) -> Any:
        response = client.get(url)
        response.raise_for_status()
        return response.json()

    @stamina.retry(on=_httpx_transient, **actual)
    def post(url: str, body: dict[str, Any], key: str) -> Any:
        response = client.post(url, json=body, headers={"Idempotency-Key": key})
        response.raise_for_status()
        return response.json()

    def get_item(base: str, item_id: int) -> Any:
        if fallback_on is None:
            return get(f"{base}/items/{item_id}")
        try:
            return get(f"{base}/items/{item_id}")
        except Exception as exc:
            if fallback_on(exc):
                return CACHED
            raise

    def create_order(base: str, item_id: int) -> Any:
        return post(f"{base}/orders", {"item": item_id}, str(uuid.uuid4()))

    said = declared or {"attempts": 3, "timeout": 5.0, **WAIT}
    policies: dict[str, Any] = {
        "retry": RetryPolicy.from_stamina(
            _httpx_transient, **said, library="httpx", non_idempotent=POSTS, tolerance=TOLERANCE
        ),
        "deadline": DeadlinePolicy(5.0 + 0.5 + ATTEMPT_TIMEOUT, tolerance=TOLERANCE),
    }
    if fallback_on is not None:
        policies["fallback"] = _fallback_policy()
    return Client(name, get_item, create_order, policies, close=client.close)


def httpx_transient(exc: BaseException) -> bool:
    """The blackbox clients' transient test, for tenacity (which hands any BaseException)."""
    return isinstance(exc, Exception) and _httpx_transient(exc)


def status_error_only(exc: Exception) -> bool:
    """``except httpx.HTTPStatusError``: a 5xx is served from the cache, a reset is not."""
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500


def httpx_tenacity_client(
    name: str,
    *,
    retry: Any = None,
    keyed_posts: bool = True,
) -> Client:
    """``httpx.Client`` requests retried by tenacity on transient errors (``retry`` replaces
    the strategy); returns the response, parsed outside the retry."""
    client = httpx.Client(timeout=ATTEMPT_TIMEOUT)

    def declared_retrying() -> tenacity.Retrying:
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(3),
            wait=tenacity.wait_exponential(multiplier=0.05, max=0.2),
            retry=tenacity.retry_if_exception(httpx_transient),
            reraise=True,
        )

    strategy = declared_retrying()
    if retry is not None:
        strategy = strategy.copy(retry=retry)

    def once(method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = client.request(method, url, **kwargs)
        response.raise_for_status()
        return response

    def get_item(base: str, item_id: int) -> Any:
        return strategy(once, "GET", f"{base}/items/{item_id}").json()

    def create_order(base: str, item_id: int) -> Any:
        headers = _key() if keyed_posts else {}  # the bug, when False: the header was forgotten
        return strategy(
            once, "POST", f"{base}/orders", json={"item": item_id}, headers=headers
        ).json()

    policies: dict[str, Any] = {
        "retry": RetryPolicy.from_tenacity(
            declared_retrying(), library="httpx", non_idempotent=POSTS, tolerance=TOLERANCE
        ),
        "deadline": DeadlinePolicy(DEADLINE, tolerance=TOLERANCE),
    }
    return Client(name, get_item, create_order, policies, close=client.close)


def slower_than(seconds: float) -> Callable[[Any], bool]:
    """A result predicate: "retry if the answer was slow" (a hedge that resends successes)."""
    limit = dt.timedelta(seconds=seconds)

    def slow(response: Any) -> bool:
        return isinstance(response, httpx.Response) and response.elapsed > limit

    return slow


# ---- full jitter: no single wait can be wrong, only their distribution (R6) or placement (R0) --
JITTER_TOLERANCE = replace(TOLERANCE, typical_late=0.03)
"""A typical gap carries a few milliseconds of processing (R6 judges typical gaps; one late
outlier on a loaded machine moves its statistic by 1/n only)."""


def jittered_loop(
    name: str,
    *,
    mistake: str = "",
    attempts: int = 3,
    initial: float = 0.2,
    cap: float = 0.8,
    seed: int = 5,
) -> Client:
    """httpx in a hand-rolled loop declaring AWS full jitter, ``U(0, min(cap, initial *
    2**(k-1)))`` before retry k. ``mistake``: ``"no_backoff"`` retries at once (every wait 0
    lies in [0, cap]: only the distribution is wrong); ``"sleep_first"`` draws a wait before
    the first attempt too. Seeded, so a found plan replays the same."""
    client = httpx.Client(timeout=ATTEMPT_TIMEOUT)
    rng = random.Random(seed)

    def wait(k: int) -> float:
        return 0.0 if mistake == "no_backoff" else rng.uniform(0, min(cap, initial * 2 ** (k - 1)))

    def send(method: str, url: str, **kwargs: Any) -> Any:
        for attempt in range(1, attempts + 1):
            if attempt == 1 and mistake == "sleep_first":
                time.sleep(wait(1))
            try:
                response = client.request(method, url, **kwargs)
                if response.status_code not in TRANSIENT_STATUSES:
                    response.raise_for_status()
                    return response.json()
                if attempt == attempts:
                    response.raise_for_status()
            except httpx.TransportError:
                if attempt == attempts:
                    raise
            time.sleep(wait(attempt))
        raise AssertionError("unreachable")

    def get_item(base: str, item_id: int) -> Any:
        return send("GET", f"{base}/items/{item_id}")

    def create_order(base: str, item_id: int) -> Any:
        return send("POST", f"{base}/orders", json={"item": item_id}, headers=_key())

    policies: dict[str, Any] = {
        "retry": RetryPolicy(
            max_attempts=attempts,
            wait=Exponential(initial, 2.0, max=cap, full_jitter=True),
            retry_on=_transient_kinds(),
            non_idempotent=POSTS,
            tolerance=JITTER_TOLERANCE,
        )
    }
    return Client(name, get_item, create_order, policies, close=client.close)


# ---- a cache as the fallback: no declared value, recognised from what happened ---------------
def stale_cache_client(name: str, *, masks_errors: bool = False) -> Client:
    """GETs answered from the last good answer (a stale cache, not a constant) when the
    service fails transiently. The fallback declares no value: the oracle must see that a
    value returned after a failed last attempt came from it. Before the first success it has
    nothing to answer with (``needs_success``). ``masks_errors``: the cache
    also answers the caller's own 4xx (``except requests.RequestException``)."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=default_retry()))
    last: dict[str, Any] = {}

    def get_item(base: str, item_id: int) -> Any:
        try:
            response = session.get(f"{base}/items/{item_id}", timeout=ATTEMPT_TIMEOUT)
            response.raise_for_status()
        except requests.RequestException as exc:
            caller_error = (
                isinstance(exc, requests.HTTPError)
                and exc.response is not None
                and exc.response.status_code < 500
            )
            if "answer" not in last or (caller_error and not masks_errors):
                raise
            return last["answer"]
        last["answer"] = response.json()
        return last["answer"]

    def create_order(base: str, item_id: int) -> Any:
        response = session.post(
            f"{base}/orders", json={"item": item_id}, headers=_key(), timeout=ATTEMPT_TIMEOUT
        )
        response.raise_for_status()
        return response.json()

    fallback = replace(_fallback_policy(), value=NOT_SET, needs_success=True)
    policies: dict[str, Any] = {
        "retry": RetryPolicy.from_urllib3(
            default_retry(), non_idempotent=POSTS, tolerance=TOLERANCE
        ),
        "fallback": fallback,
    }
    return Client(name, get_item, create_order, policies, close=session.close)
