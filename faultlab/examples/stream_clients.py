"""Resumable clients of the calc service's ``Count`` stream: one correct, one off by one.

Demos for tests (``check_stream_resume``), not the product. Both use a plain
grpcio stub from the generated ``calc_v*_pb2_grpc`` (what users have) and
resume a broken stream by calling ``Count`` again from where they got to:
``resume_count`` from the last index seen + 1, ``resume_count_buggy`` from
the last index seen, so it delivers that item twice (S2), a bug no "did the
call succeed" check can see.

One deadline covers the whole logical stream: each attempt gets the time left
as its ``timeout``, so resuming can never stretch the caller's wait past it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc  # type: ignore[import-untyped]

from faultlab.examples.protos import calc_v1_pb2

__all__ = ["RESUMABLE", "resume_count", "resume_count_buggy"]

_COUNT_REQUEST: Any = calc_v1_pb2.CountRequest  # type: ignore[attr-defined]  # generated
_SC = grpc.StatusCode
RESUMABLE = frozenset({_SC.UNAVAILABLE, _SC.INTERNAL, _SC.CANCELLED, _SC.ABORTED, _SC.UNKNOWN})
"""What a stream broken under the client gives (a closed or reset connection reads as
UNAVAILABLE, an RST_STREAM as INTERNAL or CANCELLED, depending on when it hits);
DEADLINE_EXCEEDED and the server's own refusals are final."""


def resume_count(
    stub: Any,
    n: int,
    *,
    deadline: float,
    max_resumes: int,
    start: int = 0,
    delay_ms: int = 0,
    attempts: list[int] | None = None,
    request: Callable[..., Any] = _COUNT_REQUEST,
) -> list[tuple[int, int]]:
    """``Count(start, n)`` to the end as ``(index, value)`` pairs, resuming each break
    at the last index seen + 1 (at most ``max_resumes`` times) within ``deadline``
    seconds overall. ``attempts``, if given, gets the items each attempt delivered."""
    return _resume(stub, n, deadline, max_resumes, start, delay_ms, attempts, request, step=1)


def resume_count_buggy(
    stub: Any,
    n: int,
    *,
    deadline: float,
    max_resumes: int,
    start: int = 0,
    delay_ms: int = 0,
    attempts: list[int] | None = None,
    request: Callable[..., Any] = _COUNT_REQUEST,
) -> list[tuple[int, int]]:
    """As :func:`resume_count`, but resumes at the last index seen (not + 1): the
    item before each break is delivered twice."""
    return _resume(stub, n, deadline, max_resumes, start, delay_ms, attempts, request, step=0)


def _resume(
    stub: Any,
    n: int,
    deadline: float,
    max_resumes: int,
    start: int,
    delay_ms: int,
    attempts: list[int] | None,
    request: Callable[..., Any],
    *,
    step: int,
) -> list[tuple[int, int]]:
    received: list[tuple[int, int]] = []
    ends = time.monotonic() + deadline
    resumes = 0
    while True:
        remaining = ends - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"Count: the stream's {deadline} s deadline passed")
        got = 0
        try:
            # wait_for_ready: a resume right after a break finds the channel reconnecting;
            # it should wait for it (within the deadline), not fail fast.
            call = stub.Count(
                request(start=start, n=n, delay_ms=delay_ms),
                timeout=remaining,
                wait_for_ready=True,
            )
            for item in call:
                received.append((item.index, item.value))
                got += 1
            return received
        except grpc.RpcError as exc:
            if exc.code() not in RESUMABLE or resumes >= max_resumes:
                raise
            resumes += 1
            if received:
                start = received[-1][0] + step
        finally:
            if attempts is not None:
                attempts.append(got)
