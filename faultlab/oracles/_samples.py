"""What each HTTP library raises (or returns) for each wire error kind: the probe table.

The importers (:meth:`~faultlab.oracles.policies.RetryPolicy.from_tenacity`, ``from_stamina``,
:meth:`~faultlab.oracles.policies.BreakerPolicy.from_pybreaker`) learn what a user's predicate
retries by asking it about samples. A kind is accepted when the predicate accepts its sample
from *some* library: a predicate over ``requests`` exceptions says nothing about httpx's.

Each sample is what that library really gives the caller when the proxy's wire shows the kind
(:mod:`faultlab.journal.wire`); faultlab's proxy always accepts the client's connection, so a
dead server looks like a connection closed before the response (``EndOfStream``):

- ``TransportTimeout`` (the client's read timeout fired): requests ``ReadTimeout``, httpx
  ``ReadTimeout``, urllib3 ``ReadTimeoutError``, urllib ``TimeoutError``;
- ``EndOfStream`` (closed before the response): requests ``ConnectionError`` of a urllib3
  ``ProtocolError``, httpx ``RemoteProtocolError``, urllib3 ``ProtocolError`` of
  ``RemoteDisconnected``, urllib ``http.client.RemoteDisconnected``;
- ``BrokenResourceError`` (reset): requests ``ConnectionError`` of a ``ProtocolError`` of
  ``ConnectionResetError``, httpx ``ReadError``, urllib3 ``ProtocolError`` of
  ``ConnectionResetError``, urllib ``ConnectionResetError``;
- ``http_<status>``: requests ``HTTPError`` (``raise_for_status``) and the ``Response`` as a
  result, httpx ``HTTPStatusError`` and the ``Response``, urllib3's ``HTTPResponse`` as a
  result (urllib3 never raises for a status), urllib ``urllib.error.HTTPError``.

A status is sampled both ways, because a client may raise on it or return it (tenacity's
``retry_if_result``). Libraries that are not installed are skipped.

Not sampled, on purpose:

- connection refused and connect timeouts (``requests.ConnectTimeout``, ``httpx.ConnectError``,
  urllib3's ``NewConnectionError``, ``ConnectionRefusedError``): through the proxy every
  connection is accepted, so no wire kind produces them;
- ``urllib3.exceptions.MaxRetryError`` and ``requests.exceptions.RetryError``: they wrap
  whatever a pool's own urllib3 ``Retry`` gave up on, so the kinds they stand for depend on that
  ``Retry`` (read it with ``RetryPolicy.from_urllib3``).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from faultlab.journal.wire import CLIENT_GAVE_UP, CLOSED_WITHOUT_RESPONSE, RESET, http_kind

__all__ = ["SAMPLED_STATUSES", "WIRE_TRANSPORT_KINDS", "Sample", "library_samples"]

SAMPLED_STATUSES = (400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 501, 502, 503, 504)
"""The statuses sampled as ``http_<status>`` kinds (the ones retry policies name)."""
WIRE_TRANSPORT_KINDS = frozenset({CLIENT_GAVE_UP, CLOSED_WITHOUT_RESPONSE, RESET})
"""The wire kinds of an exchange that got no response."""

_URL = "http://faultlab.invalid/probe"
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class Sample:
    """One probe: ``error`` raised by (or ``result`` returned to) a ``library`` caller."""

    kind: str
    library: str
    error: BaseException | None = None
    result: Any = None

    @property
    def is_error(self) -> bool:
        return self.error is not None

    def describe(self) -> str:
        what = repr(self.error) if self.error is not None else f"result {self.result!r}"
        return f"{self.library}: {what}"


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _read_timeout() -> BaseException:
    """urllib3's read timeout, as its connection pool raises it (the pool itself not needed)."""
    from urllib3.exceptions import ReadTimeoutError

    pool: Any = None
    return ReadTimeoutError(pool, _URL, "Read timed out.")


def _builtin_samples() -> list[Sample]:
    import email.message
    import urllib.error
    from http.client import RemoteDisconnected

    found = [
        Sample(CLIENT_GAVE_UP, "urllib", error=TimeoutError("timed out")),
        Sample(
            CLOSED_WITHOUT_RESPONSE,
            "urllib",
            error=RemoteDisconnected("Remote end closed connection without response"),
        ),
        Sample(RESET, "urllib", error=ConnectionResetError(104, "Connection reset by peer")),
    ]
    for status in SAMPLED_STATUSES:
        error = urllib.error.HTTPError(
            _URL, status, _REASONS[status], email.message.Message(), None
        )
        found.append(Sample(http_kind(status), "urllib", error=error))
    return found


def _urllib3_samples() -> list[Sample]:
    from http.client import RemoteDisconnected

    from urllib3.exceptions import ProtocolError
    from urllib3.response import HTTPResponse

    found = [
        Sample(CLIENT_GAVE_UP, "urllib3", error=_read_timeout()),
        Sample(
            CLOSED_WITHOUT_RESPONSE,
            "urllib3",
            error=ProtocolError(
                "Connection aborted.",
                RemoteDisconnected("Remote end closed connection without response"),
            ),
        ),
        Sample(
            RESET,
            "urllib3",
            error=ProtocolError(
                "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")
            ),
        ),
    ]
    for status in SAMPLED_STATUSES:
        response = HTTPResponse(
            body=b"", status=status, reason=_REASONS[status], preload_content=False
        )
        found.append(Sample(http_kind(status), "urllib3", result=response))
    return found


def _requests_samples() -> list[Sample]:
    from http.client import RemoteDisconnected

    import requests
    from urllib3.exceptions import ProtocolError

    request = requests.Request("GET", _URL).prepare()
    found = [
        Sample(
            CLIENT_GAVE_UP,
            "requests",
            error=requests.ReadTimeout(_read_timeout(), request=request),
        ),
        Sample(
            CLOSED_WITHOUT_RESPONSE,
            "requests",
            error=requests.ConnectionError(
                ProtocolError(
                    "Connection aborted.",
                    RemoteDisconnected("Remote end closed connection without response"),
                ),
                request=request,
            ),
        ),
        Sample(
            RESET,
            "requests",
            error=requests.ConnectionError(
                ProtocolError(
                    "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")
                ),
                request=request,
            ),
        ),
    ]
    for status in SAMPLED_STATUSES:
        response = requests.Response()
        response.status_code = status
        response.reason = _REASONS[status]
        response.url = _URL
        response.request = request
        response._content = b""
        error: BaseException | None = None
        try:
            response.raise_for_status()
        except requests.HTTPError as exc:
            error = exc
        if error is not None:
            found.append(Sample(http_kind(status), "requests", error=error))
        found.append(Sample(http_kind(status), "requests", result=response))
    return found


def _httpx_samples() -> list[Sample]:
    import httpx

    request = httpx.Request("GET", _URL)
    found = [
        Sample(CLIENT_GAVE_UP, "httpx", error=httpx.ReadTimeout("timed out", request=request)),
        Sample(
            CLOSED_WITHOUT_RESPONSE,
            "httpx",
            error=httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ),
        ),
        Sample(
            RESET, "httpx", error=httpx.ReadError("[Errno 104] Connection reset", request=request)
        ),
    ]
    for status in SAMPLED_STATUSES:
        response = httpx.Response(status, request=request)
        error: BaseException | None = None
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            error = exc
        if error is not None:
            found.append(Sample(http_kind(status), "httpx", error=error))
        found.append(Sample(http_kind(status), "httpx", result=response))
    return found


_LIBRARIES: tuple[tuple[str, Callable[[], list[Sample]]], ...] = (
    ("urllib3", _urllib3_samples),
    ("requests", _requests_samples),
    ("httpx", _httpx_samples),
)


@functools.cache
def library_samples() -> tuple[Sample, ...]:
    """Every sample of the installed libraries (built once; the standard library always)."""
    found = _builtin_samples()
    for module, build in _LIBRARIES:
        if not _installed(module):
            continue
        try:
            found.extend(build())
        except ImportError:  # installed but broken (or requests without urllib3): skip it
            continue
    return tuple(found)
