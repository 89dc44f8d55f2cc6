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

    ``service``/``service_v2`` are ``"module:factory"`` references (importable
    in a subprocess or container); ``client(faultlab_client, journal)`` builds
    the user's resilient client; ``call(resilient, probe)`` makes one logical
    call with it (default: ``resilient.call(method, *args)``); ``policies``
    are the declared RetryPolicy/BreakerPolicy/... objects the oracles check.
    """

    name: str
    service: str
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

    def resilient(self, faultlab_client: Any, journal: Any) -> Any:
        return faultlab_client if self.client is None else self.client(faultlab_client, journal)

    def invoke(self, resilient: Any, probe: Probe) -> Any:
        if self.call is not None:
            return self.call(resilient, probe)
        return resilient.call(probe.method, *probe.args)


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
