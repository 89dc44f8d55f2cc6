"""Readiness, declared never slept: how a black-box service says it is ready to serve.

A check probes the service's address (``host:port``) once; :func:`wait_ready`
polls it with a short growing backoff (20 ms to 200 ms) until it passes, the
service dies, or the whole wait times out, which raises an error naming the
check and its last failure. Checks::

    faultlab.ready.tcp()                              # a TCP connect succeeds
    faultlab.ready.http(path="/health", status=200)   # GET answers that status (or any of a
                                                      # tuple / range of statuses)
    faultlab.ready.grpc_health(service="")            # grpc.health.v1 Check says SERVING
    lambda address: probe(address)                    # any callable: True passes; False or
                                                      # an exception fails

Each built-in check has a per-probe timeout (``timeout=``, clipped to what is left of
the whole wait); a callable is called as is and should bound its own I/O.
"""

from __future__ import annotations

import http.client as _httpclient
import importlib.util
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Container
from typing import Any

from faultlab.lab.backends.base import BackendError

__all__ = [
    "DEFAULT_TIMEOUT",
    "CallableCheck",
    "GrpcHealthCheck",
    "HttpCheck",
    "ReadinessTimeout",
    "ReadinessUnavailable",
    "ReadyCheck",
    "ServiceExited",
    "ServiceStartError",
    "TcpCheck",
    "as_check",
    "grpc_health",
    "http",
    "split_host_port",
    "tcp",
    "wait_ready",
]

DEFAULT_TIMEOUT = 15.0
"""The whole wait, in seconds, unless a service says otherwise (``ready_timeout``)."""
FIRST_DELAY = 0.02
MAX_DELAY = 0.2


class ServiceStartError(BackendError):
    """A service did not become ready: it exited, or its readiness check never passed."""


class ServiceExited(ServiceStartError):
    """The service's process exited before it was ready (the message has its exit code and
    the tail of its stderr)."""


class ReadinessTimeout(ServiceStartError):
    """The readiness check did not pass within the timeout (the message names the check and
    its last failure)."""


class ReadinessUnavailable(BackendError):
    """A readiness check cannot be declared here (e.g. ``grpc_health`` without grpcio)."""


class ProbeFailed(Exception):
    """One probe did not pass (internal: its message becomes the 'last failure')."""


def split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6, an optional ``tcp://``) as (host, port)."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected host:port, got {address!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class ReadyCheck(ABC):
    """One way to ask a service whether it serves; :meth:`probe` raises when it does not."""

    timeout: float = 2.0
    """Per-probe timeout in seconds."""

    @abstractmethod
    def probe(self, address: str, timeout: float) -> None:
        """Probe ``host:port`` once within ``timeout`` seconds; raise if not ready."""

    @abstractmethod
    def describe(self) -> str:
        """How the check reads in an error message (``ready.http(path='/health')``)."""

    def __repr__(self) -> str:
        return self.describe()


class TcpCheck(ReadyCheck):
    def __init__(self, timeout: float = 1.0) -> None:
        self.timeout = timeout

    def probe(self, address: str, timeout: float) -> None:
        host, port = split_host_port(address)
        with socket.create_connection((host, port), timeout=timeout):
            pass

    def describe(self) -> str:
        return "ready.tcp()"


class HttpCheck(ReadyCheck):
    def __init__(
        self,
        path: str = "/health",
        status: int | Container[int] = 200,
        *,
        timeout: float = 2.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"ready.http path must start with '/', got {path!r}")
        self.path = path
        self.status = status
        self.timeout = timeout
        self.headers = dict(headers or {})

    def accepts(self, status: int) -> bool:
        return status == self.status if isinstance(self.status, int) else status in self.status

    def probe(self, address: str, timeout: float) -> None:
        host, port = split_host_port(address)
        conn = _httpclient.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", self.path, headers=self.headers)
            response = conn.getresponse()
            response.read(65536)
        finally:
            conn.close()
        if not self.accepts(response.status):
            raise ProbeFailed(f"GET {self.path} answered {response.status} {response.reason}")

    def describe(self) -> str:
        return f"ready.http(path={self.path!r}, status={self.status!r})"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _health_status(data: bytes) -> int:
    """Field 1 (``status``, a varint) of a grpc.health.v1.HealthCheckResponse; 0 if absent."""
    i, status = 0, 0
    while i < len(data):
        tag = data[i]
        i += 1
        value = shift = 0
        if tag & 7 != 0:  # only varints are expected; anything else ends the scan
            break
        while i < len(data):
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if tag >> 3 == 1:
            status = value
    return status


_HEALTH_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


class GrpcHealthCheck(ReadyCheck):
    """``grpc.health.v1.Health/Check`` answers SERVING (the two messages are encoded by hand,
    so only grpcio is needed, not grpcio-health-checking)."""

    def __init__(self, service: str = "", *, timeout: float = 2.0) -> None:
        if importlib.util.find_spec("grpc") is None:
            raise ReadinessUnavailable(
                "ready.grpc_health() needs grpcio: pip install grpcio (or use ready.tcp())"
            )
        self.service = service
        self.timeout = timeout

    def probe(self, address: str, timeout: float) -> None:
        import grpc  # type: ignore[import-untyped]

        host, port = split_host_port(address)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        name = self.service.encode()
        request = b"\x0a" + _varint(len(name)) + name if name else b""
        with grpc.insecure_channel(target) as channel:
            check = channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=lambda data: data,
                response_deserializer=lambda data: data,
            )
            try:
                reply: bytes = check(request, timeout=timeout)
            except grpc.RpcError as exc:
                code = exc.code() if callable(getattr(exc, "code", None)) else exc
                raise ProbeFailed(f"Health/Check failed: {code}") from None
        status = _health_status(reply)
        if status != 1:
            raise ProbeFailed(f"Health/Check says {_HEALTH_NAMES.get(status, status)}")

    def describe(self) -> str:
        return f"ready.grpc_health(service={self.service!r})"


class CallableCheck(ReadyCheck):
    """Any ``(address) -> bool`` callable: True passes; False or an exception fails."""

    def __init__(self, fn: Callable[[str], Any]) -> None:
        self.fn = fn

    def probe(self, address: str, timeout: float) -> None:
        if not self.fn(address):
            raise ProbeFailed("returned False")

    def describe(self) -> str:
        return getattr(self.fn, "__qualname__", None) or repr(self.fn)


def tcp(*, timeout: float = 1.0) -> TcpCheck:
    """Ready once a TCP connect to the service's address succeeds."""
    return TcpCheck(timeout=timeout)


def http(
    path: str = "/health",
    status: int | Container[int] = 200,
    *,
    timeout: float = 2.0,
    headers: dict[str, str] | None = None,
) -> HttpCheck:
    """Ready once ``GET path`` answers ``status`` (an int, or a tuple/range of them)."""
    return HttpCheck(path, status, timeout=timeout, headers=headers)


def grpc_health(service: str = "", *, timeout: float = 2.0) -> GrpcHealthCheck:
    """Ready once ``grpc.health.v1.Health/Check`` answers SERVING for ``service``."""
    return GrpcHealthCheck(service, timeout=timeout)


def as_check(ready: ReadyCheck | Callable[[str], Any]) -> ReadyCheck:
    """A :class:`ReadyCheck` as is; any other callable wrapped in a :class:`CallableCheck`."""
    if isinstance(ready, ReadyCheck):
        return ready
    if callable(ready):
        return CallableCheck(ready)
    raise TypeError(
        f"ready must be a faultlab.ready check or a callable (address) -> bool, got {ready!r}"
    )


def _failure(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def wait_ready(
    check: ReadyCheck,
    address: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    what: str = "service",
    exited: Callable[[], ServiceStartError | None] | None = None,
) -> None:
    """Probe ``address`` until ``check`` passes; never sleeps longer than the backoff.

    ``exited`` (for a process we own) returns an error once the process is gone, which is
    raised at once instead of waiting out the timeout. On timeout a
    :class:`ReadinessTimeout` names ``what``, the check and its last failure; it is never
    raised before ``timeout`` seconds have passed.
    """
    started = time.monotonic()
    deadline = started + timeout
    delay = FIRST_DELAY
    last = "no probe finished"
    while True:
        if exited is not None and (error := exited()) is not None:
            raise error
        remaining = deadline - time.monotonic()
        try:
            check.probe(address, max(0.05, min(check.timeout, remaining)))
        except Exception as exc:  # any failure of one probe: try again until the deadline
            last = _failure(exc)
        else:
            return
        now = time.monotonic()
        if now >= deadline:
            if exited is not None and (error := exited()) is not None:
                raise error
            raise ReadinessTimeout(
                f"{what} at {address} was not ready within {timeout:g} s "
                f"({now - started:.1f} s waited): {check.describe()} last failed with {last}"
            )
        time.sleep(min(delay, deadline - now))
        delay = min(delay * 1.5, MAX_DELAY)
