"""The well-behaved client that keeps calling while the server is attacked.

A canary is any callable that makes one call and raises on failure (it must carry its own
timeout). :func:`http_canary` and :func:`rpc_canary` make the usual ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Canary", "CanaryCall", "http_canary", "rpc_canary"]


@dataclass(frozen=True)
class CanaryCall:
    start: float
    """``time.monotonic()`` when the call began."""
    latency: float
    ok: bool
    error: str = ""


def http_canary(url: str, *, timeout: float = 2.0, expect: int = 200) -> Callable[[], None]:
    """GET ``url`` on a fresh connection; anything but status ``expect`` is a failure."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def call() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", target)
            response = conn.getresponse()
            response.read()
            if response.status != expect:
                raise RuntimeError(f"GET {target} answered {response.status}, not {expect}")
        finally:
            conn.close()

    return call


def rpc_canary(
    address: str,
    protocol: str,
    method: str,
    *args: Any,
    expected: Any = None,
    timeout: float = 2.0,
    framing: str | None = None,
) -> Callable[[], None]:
    """One call of ``method`` with faultlab's own client on a fresh connection; a result other
    than ``expected`` (when given) is a failure."""
    from faultlab.rpc.base import get_protocol

    wire = get_protocol(protocol)

    def call() -> None:
        client = wire.connect(address, framing=framing, timeout=timeout)
        try:
            got = client.call(method, *args)
        finally:
            client.close()
        if expected is not None and got != expected:
            raise RuntimeError(f"{method}{args} returned {got!r}, expected {expected!r}")

    return call


class Canary:
    """Calls ``call`` every ``interval`` seconds in one thread until :meth:`stop`."""

    def __init__(
        self,
        call: Callable[[], object],
        *,
        interval: float = 0.02,
        on_call: Callable[[CanaryCall], None] | None = None,
    ) -> None:
        self.call = call
        self.interval = interval
        self.on_call = on_call
        self.calls: list[CanaryCall] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="faultlab-canary", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.call()
            except Exception as exc:  # every failure of the canary is data
                done = CanaryCall(t0, time.monotonic() - t0, False, f"{type(exc).__name__}: {exc}")
            else:
                done = CanaryCall(t0, time.monotonic() - t0, True)
            self.calls.append(done)
            if self.on_call is not None:
                self.on_call(done)
            self._stop.wait(self.interval)

    def start(self) -> Canary:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the call in flight (which has its own timeout) and join the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def once(self) -> CanaryCall:
        """One call now, on the calling thread (the final liveness probe)."""
        t0 = time.monotonic()
        try:
            self.call()
        except Exception as exc:
            return CanaryCall(t0, time.monotonic() - t0, False, f"{type(exc).__name__}: {exc}")
        return CanaryCall(t0, time.monotonic() - t0, True)
