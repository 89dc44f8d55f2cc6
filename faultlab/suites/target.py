"""What a suite needs to know about the service under test."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faultlab.errors import FaultlabError

__all__ = ["Probe", "Target", "TargetError", "load_target"]


class TargetError(FaultlabError):
    """``--faultlab-target`` could not be loaded or is not a Target."""


@dataclass(frozen=True)
class Probe:
    """A call the suites make, with its expected result when it is deterministic."""

    method: str
    args: tuple[Any, ...] = ()
    expected: Any = None
    idempotent: bool = True
    check_result: bool = True


@dataclass(frozen=True)
class Target:
    """The service under test, as the suites see it.

    ``service`` is what :meth:`faultlab.Lab.pair` serves: a ``"module:factory"`` reference
    (importable in a subprocess or container), or a black box (``faultlab.Command``,
    ``faultlab.Address``, ``faultlab.Image``) with ``protocols=("http",)`` for a plain HTTP
    service. The user's resilient client comes from ``connect(url)`` (given the pair's
    ``url``: a black box's own client, e.g. ``requests`` with urllib3's ``Retry``) or from
    ``client(faultlab_client, journal)`` (wrapping faultlab's RPC client); ``call(resilient,
    probe)`` makes one logical call with it (default: ``resilient.call(method, *args)``);
    ``policies`` are the declared RetryPolicy/BreakerPolicy/FallbackPolicy/... the oracles
    check: a declared fallback's value is an accepted answer in the differential and
    stateful suites. ``transient(exc)`` says which of the client's errors a fault may cause
    (default: faultlab's transient RPC and transport errors); ``effects(server_url)`` lists
    the side effects the service applied (``[{"key": ...}]``) when ``effects_method`` (an
    RPC method) cannot.
    """

    name: str
    service: Any
    protocols: Sequence[str]
    transports: Sequence[str]
    probes: Sequence[Probe]
    client: Callable[[Any, Any], Any] | None = None
    call: Callable[[Any, Probe], Any] | None = None
    service_v2: str | None = None
    policies: dict[str, Any] = field(default_factory=dict)
    codecs: Sequence[str] = ("json", "msgpack", "xmlrpc")
    roundtrip_method: str | None = "echo"
    effects_method: str | None = "counter.effects"
    connect: Callable[[str], Any] | None = None
    transient: Callable[[BaseException], bool] | None = None
    effects: Callable[[str], list[dict[str, Any]]] | None = None

    def resilient(self, faultlab_client: Any, journal: Any) -> Any:
        return faultlab_client if self.client is None else self.client(faultlab_client, journal)

    def resilient_for(self, pair: Any) -> Any:
        """The user's resilient client through ``pair``'s proxy."""
        if self.connect is not None:
            return self.connect(pair.url)
        return self.resilient(pair.client, pair.journal)

    def direct_for(self, pair: Any) -> Any:
        """The same client straight to the service (``None``: use faultlab's direct client)."""
        return None if self.connect is None else self.connect(pair.server_url)

    def invoke(self, resilient: Any, probe: Probe) -> Any:
        if self.call is not None:
            return self.call(resilient, probe)
        return resilient.call(probe.method, *probe.args)

    def is_transient(self, exc: BaseException) -> bool:
        """An error a fault may legitimately cause through the user's client."""
        if self.transient is not None:
            return bool(self.transient(exc))
        from faultlab.suites._support import declared_transient

        return declared_transient(exc)

    def accepts(self, got: Any, expected: Any) -> bool:
        """The answer, or the declared fallback's value."""
        from faultlab.oracles.policies import NOT_SET
        from faultlab.suites._support import equivalent

        if equivalent(got, expected):
            return True
        fallback = self.policies.get("fallback")
        value = getattr(fallback, "value", NOT_SET)
        return value is not NOT_SET and equivalent(got, value)

    def read_effects(self, pair: Any) -> list[dict[str, Any]] | None:
        """The side effects the service applied, or ``None`` when the target exposes none."""
        if self.effects is not None:
            return self.effects(pair.server_url)
        if self.effects_method and self.connect is None:
            with pair.direct_client() as direct:
                found: list[dict[str, Any]] = direct.call(self.effects_method)
            return found
        return None


def load_target(ref: str) -> Target:
    """Import ``module:factory`` and call it (or take it as is if it is a Target)."""
    from faultlab.lab.backends.thread import load_factory

    try:
        obj = load_factory(ref)
    except (ImportError, AttributeError, ValueError) as exc:
        raise TargetError(f"cannot load --faultlab-target {ref!r}: {exc}") from exc
    target = obj() if callable(obj) and not isinstance(obj, Target) else obj
    if not isinstance(target, Target):
        raise TargetError(f"--faultlab-target {ref!r} gave {type(target).__name__}, not a Target")
    return target
