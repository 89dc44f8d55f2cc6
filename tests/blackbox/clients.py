"""Resilient HTTP clients as users write them, unmodified by faultlab, correct and wrong.

Three stacks: ``requests`` with urllib3's ``Retry`` (and a fallback to a cached value),
``httpx`` with stamina, and tenacity with pybreaker around ``urllib``. Each declares its
policies with faultlab's importers from the very objects that configure it (what a user
would write); nothing here journals an attempt: the oracles read them from the proxy's wire.
A *wrong* variant configures the library differently from what it declares, as the bugs
the issue lists do (``Retry(total)`` off by one, ``backoff_factor=0``, ...).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pybreaker
import requests
import stamina
import tenacity
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from faultlab.oracles import (
    BreakerPolicy,
    DeadlinePolicy,
    FallbackPolicy,
    RetryPolicy,
    Tolerance,
)

CACHED = {"id": 0, "name": "cached"}
"""What the fallback answers when the service cannot."""
TOLERANCE = Tolerance(eps_early=0.002, eps_late=0.25, late_ratio=0.25)
"""A loaded 2-core machine runs uvicorn, the proxy and the client at once: wide upper slack."""
ATTEMPT_TIMEOUT = 0.5
TRANSIENT_STATUSES = (500, 502, 503, 504)


def _transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUSES


@dataclass
class Client:
    """One user client: two operations and the policies it declares."""

    name: str
    get_item: Callable[[str, int], Any]
    create_order: Callable[[str, int], Any]
    policies: dict[str, Any]
    close: Callable[[], None] = lambda: None
    uses_breaker: bool = False
    idempotent_posts: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


# ---- requests + urllib3.Retry ----------------------------------------------------------------
def requests_client(
    *,
    total: int = 2,
    backoff_factor: float = 0.05,
    status_forcelist: tuple[int, ...] = TRANSIENT_STATUSES,
    respect_retry_after: bool = True,
    keyed_posts: bool = True,
    timeout: float | None = ATTEMPT_TIMEOUT,
    fallback_on: Callable[[BaseException], bool] | None = None,
    declare: dict[str, Any] | None = None,
    name: str = "requests+urllib3",
) -> Client:
    """A ``requests.Session`` with ``Retry`` mounted; GETs fall back to :data:`CACHED` on
    transient failures. ``declare`` overrides what the client *says* it does."""
    allowed = frozenset({"GET", "POST"})  # POSTs are retried: each carries its key
    retry = Retry(
        total=total,
        connect=total,
        read=total,
        status=total,
        backoff_factor=backoff_factor,
        status_forcelist=status_forcelist,
        allowed_methods=allowed,
        respect_retry_after_header=respect_retry_after,
        raise_on_status=True,
    )
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    is_fallback_error = fallback_on or _requests_transient

    def get_item(base: str, item_id: int) -> Any:
        try:
            response = session.get(f"{base}/items/{item_id}", timeout=timeout)
            response.raise_for_status()
            return response.json()
        except requests.RequestException as exc:
            if is_fallback_error(exc):
                return CACHED
            raise

    def create_order(base: str, item_id: int) -> Any:
        headers = {"Idempotency-Key": str(uuid.uuid4())} if keyed_posts else {}
        response = session.post(
            f"{base}/orders", json={"item": item_id}, headers=headers, timeout=timeout
        )
        response.raise_for_status()
        return response.json()

    declared = dict(declare or {})
    said = declared.pop("retry", None) or Retry(
        total=2,
        connect=2,
        read=2,
        status=2,
        backoff_factor=0.05,
        status_forcelist=TRANSIENT_STATUSES,
        allowed_methods=frozenset({"GET", "POST"}),
        respect_retry_after_header=True,
    )
    policies: dict[str, Any] = {
        "retry": RetryPolicy.from_urllib3(
            said, non_idempotent=frozenset({"POST /orders"}), tolerance=TOLERANCE
        ),
        "fallback": FallbackPolicy(
            eligible=_transient_kinds(),
            value=CACHED,
            on_reject=False,
            tolerance=TOLERANCE,
            methods=frozenset({"GET /items"}),
        ),
        "deadline": DeadlinePolicy(
            declared.pop("deadline", 3 * ATTEMPT_TIMEOUT + 0.4 + 2.0), tolerance=TOLERANCE
        ),
    }
    return Client(name, get_item, create_order, policies, close=session.close)


def _requests_transient(exc: BaseException) -> bool:
    """A fallback for failures a retry could not cure: connection errors, timeouts, 5xx."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return _transient_status(exc.response.status_code)
    return isinstance(
        exc, requests.ConnectionError | requests.Timeout | requests.exceptions.RetryError
    )


def _transient_kinds() -> frozenset[str]:
    from faultlab.journal.wire import WIRE_FAILURE_KINDS, http_kind

    return frozenset({http_kind(s) for s in TRANSIENT_STATUSES} | WIRE_FAILURE_KINDS)


# ---- httpx + stamina -------------------------------------------------------------------------
def _httpx_transient(exc: Exception) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return _transient_status(exc.response.status_code)
    return isinstance(exc, httpx.TransportError)


def httpx_stamina_client(
    *,
    retry_on: Callable[[Exception], bool] = _httpx_transient,
    new_key_per_attempt: bool = False,
    name: str = "httpx+stamina",
) -> Client:
    """``httpx.Client`` calls wrapped in ``stamina.retry``; POSTs carry one key per call."""
    client = httpx.Client(timeout=ATTEMPT_TIMEOUT)
    settings: dict[str, Any] = {
        "attempts": 3,
        "timeout": 5.0,
        "wait_initial": 0.05,
        "wait_max": 0.2,
        "wait_jitter": 0.05,
    }

    @stamina.retry(on=retry_on, **settings)
    def get(url: str) -> Any:
        response = client.get(url)
        response.raise_for_status()
        return response.json()

    @stamina.retry(on=retry_on, **settings)
    def post(url: str, body: dict[str, Any], key: str | None) -> Any:
        headers = {"Idempotency-Key": key or str(uuid.uuid4())}
        response = client.post(url, json=body, headers=headers)
        response.raise_for_status()
        return response.json()

    def get_item(base: str, item_id: int) -> Any:
        return get(f"{base}/items/{item_id}")

    def create_order(base: str, item_id: int) -> Any:
        key = None if new_key_per_attempt else str(uuid.uuid4())
        return post(f"{base}/orders", {"item": item_id}, key)

    policies: dict[str, Any] = {
        "retry": RetryPolicy.from_stamina(
            _httpx_transient,
            **settings,
            library="httpx",
            non_idempotent=frozenset({"POST /orders"}),
            tolerance=TOLERANCE,
        ),
        "deadline": DeadlinePolicy(5.0 + 0.5 + ATTEMPT_TIMEOUT, tolerance=TOLERANCE),
    }
    return Client(name, get_item, create_order, policies, close=client.close)


# ---- tenacity + pybreaker around urllib ------------------------------------------------------
class _Transient(Exception):
    """What the urllib wrapper raises for a failure a retry may cure."""


def _urllib_transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return _transient_status(exc.code)
    return isinstance(exc, urllib.error.URLError | ConnectionError | TimeoutError | OSError)


def _breaker(fail_max: int, reset_timeout: float) -> pybreaker.CircuitBreaker:
    """4xx is the caller's fault: it does not count against the service."""
    return pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout,
        exclude=[lambda e: isinstance(e, urllib.error.HTTPError) and e.code < 500],
    )


def _retrying(retry_if: Callable[[BaseException], bool]) -> tenacity.Retrying:
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(3),
        wait=tenacity.wait_exponential(multiplier=0.05, max=0.2),
        retry=tenacity.retry_if_exception(retry_if),
        reraise=True,
    )


def tenacity_breaker_client(
    *,
    fail_max: int = 3,
    declared_fail_max: int = 3,
    retry_if: Callable[[BaseException], bool] = _urllib_transient,
    reset_timeout: float = 0.6,
    name: str = "tenacity+pybreaker+urllib",
) -> Client:
    """``urllib.request`` behind a pybreaker breaker (4xx excluded: the caller's fault),
    retried by tenacity; a rejected call is not retried."""
    breaker = _breaker(fail_max, reset_timeout)
    retrying = _retrying(retry_if)

    def fetch(request: urllib.request.Request) -> Any:
        with urllib.request.urlopen(request, timeout=ATTEMPT_TIMEOUT) as response:
            return json.loads(response.read() or b"null")

    def guarded(request: urllib.request.Request) -> Any:
        return retrying(breaker.call, fetch, request)

    def get_item(base: str, item_id: int) -> Any:
        return guarded(urllib.request.Request(f"{base}/items/{item_id}"))

    def create_order(base: str, item_id: int) -> Any:
        request = urllib.request.Request(
            f"{base}/orders",
            data=json.dumps({"item": item_id}).encode(),
            headers={"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"},
            method="POST",
        )
        return guarded(request)

    said, said_retrying = _breaker(declared_fail_max, reset_timeout), _retrying(_urllib_transient)
    policies: dict[str, Any] = {
        "retry": RetryPolicy.from_tenacity(
            said_retrying,
            library="urllib",
            non_idempotent=frozenset({"POST /orders"}),
            tolerance=TOLERANCE,
        ),
        "breaker": BreakerPolicy.from_pybreaker(
            said, library="urllib", scope="attempt", tolerance=TOLERANCE
        ),
        "deadline": DeadlinePolicy(3 * ATTEMPT_TIMEOUT + 0.4 + 1.0, tolerance=TOLERANCE),
    }
    return Client(name, get_item, create_order, policies, uses_breaker=True)
