"""Policies the user declares, so oracles know what "correct" means (resilience.md §9).

faultlab does not infer a client's retry or breaker configuration from its
behaviour: the user states it (or hands over the tenacity / stamina / pybreaker
object that configures it, and the constructors here read it), and the oracles
compare the journal against that declaration. Waits are described by their
bounds per retry index, which is all a black-box check can use (§1.4 R4/R5).

Error *kinds* are the journal's ``error_kind`` strings: an RPC error's kind
(``unavailable``) or the class name of a transport or protocol error
(``TransportTimeout``, ``TruncatedFrame``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import faultlab.codecs.errors  # noqa: F401  (registers the protocol error subclasses)
from faultlab.errors import RemoteProtocolError, TransportError
from faultlab.rpc.errors import KINDS, error_for

__all__ = [
    "ALL_KINDS",
    "DEFAULT_RETRY_ON",
    "NOT_SET",
    "PROTOCOL_ERROR_KINDS",
    "REJECTION_KINDS",
    "TRANSIENT_RPC_KINDS",
    "TRANSPORT_ERROR_KINDS",
    "Bounds",
    "BreakerPolicy",
    "Chain",
    "Combined",
    "DeadlinePolicy",
    "Exponential",
    "FallbackPolicy",
    "Fixed",
    "Incrementing",
    "RandomWait",
    "RetryPolicy",
    "Tolerance",
    "Wait",
    "kinds_accepted_by",
    "kinds_of",
    "non_idempotent_methods",
    "sample_errors",
]


def _names_under(root: type[BaseException]) -> frozenset[str]:
    names: set[str] = set()
    stack: list[type[BaseException]] = [root]
    while stack:
        cls = stack.pop()
        if cls.__name__ not in names:
            names.add(cls.__name__)
            stack.extend(cls.__subclasses__())
    return frozenset(names)


TRANSIENT_RPC_KINDS = frozenset(k for k, cls in KINDS.items() if cls.transient)
"""RPC error kinds a retry may cure (``unavailable``, ``deadline_exceeded``)."""
TRANSPORT_ERROR_KINDS = _names_under(TransportError)
"""Class names of transport errors (timeouts, resets, EOF): the request may not have arrived."""
PROTOCOL_ERROR_KINDS = _names_under(RemoteProtocolError)
"""Class names of broken replies (truncated or malformed frames)."""
DEFAULT_RETRY_ON = TRANSIENT_RPC_KINDS | TRANSPORT_ERROR_KINDS | PROTOCOL_ERROR_KINDS
ALL_KINDS = DEFAULT_RETRY_ON | frozenset(KINDS)


class _NotSet:
    def __repr__(self) -> str:
        return "NOT_SET"


NOT_SET: Any = _NotSet()
"""Marks "no fallback value declared" (``None`` is a legitimate fallback value)."""


# ---- tolerances --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tolerance:
    """Timing slack (§0): lower bounds tight, upper bounds loose.

    ``eps_early`` is how early a timer may fire; ``eps_late`` plus
    ``late_ratio`` of the bound is scheduling and processing slack. Widen
    ``eps_late`` on a loaded CI machine; virtual-clock runs can narrow it.
    """

    eps_early: float = 0.001
    eps_late: float = 0.050
    late_ratio: float = 0.10

    def early(self, bound: float) -> float:
        """The least a measured time may be when ``bound`` is a lower bound."""
        return bound - self.eps_early

    def late(self, bound: float) -> float:
        """The most a measured time may be when ``bound`` is an upper bound."""
        return bound + abs(bound) * self.late_ratio + self.eps_late


DEFAULT_TOLERANCE = Tolerance()


# ---- waits -------------------------------------------------------------------------------------
class Wait(ABC):
    """A backoff schedule, seen as the bounds of the k-th wait (k = retry index, 1-based)."""

    @abstractmethod
    def bounds(self, k: int) -> tuple[float, float]:
        """(lowest, highest) wait the client may sleep after its k-th attempt failed."""

    def describe(self) -> str:
        return repr(self)


def _clamp(value: float, lo: float, hi: float) -> float:
    return max(lo, min(value, hi))


def _power(base: float, exponent: int) -> float:
    try:
        return float(base**exponent)
    except OverflowError:
        return math.inf


@dataclass(frozen=True)
class Fixed(Wait):
    """The same wait every time (tenacity ``wait_fixed``; ``Fixed(0)`` is no backoff)."""

    seconds: float

    def bounds(self, k: int) -> tuple[float, float]:
        return (self.seconds, self.seconds)

    def describe(self) -> str:
        return f"fixed {self.seconds:g} s"


@dataclass(frozen=True)
class Exponential(Wait):
    """``clamp(initial * multiplier**(k-1), min, max)``, optionally jittered.

    ``jitter`` adds ``U(0, jitter)`` before the cap (stamina, tenacity
    ``wait_exponential_jitter``); ``full_jitter`` draws ``U(min, value)``
    (tenacity ``wait_random_exponential``, AWS full jitter).
    """

    initial: float
    multiplier: float = 2.0
    max: float = math.inf
    min: float = 0.0
    jitter: float = 0.0
    full_jitter: bool = False

    def _raw(self, k: int) -> float:
        if self.initial == 0:
            return 0.0
        return self.initial * _power(self.multiplier, k - 1)

    def bounds(self, k: int) -> tuple[float, float]:
        lo_clamp = max(0.0, self.min)
        raw = self._raw(k)
        value = _clamp(raw, lo_clamp, self.max)
        if self.full_jitter:
            return (min(lo_clamp, value), value)
        return (value, _clamp(raw + self.jitter, lo_clamp, self.max))

    def describe(self) -> str:
        text = f"exponential {self.initial:g} s x{self.multiplier:g}"
        if math.isfinite(self.max):
            text += f" up to {self.max:g} s"
        if self.min:
            text += f", at least {self.min:g} s"
        if self.full_jitter:
            text += ", full jitter"
        elif self.jitter:
            text += f" + U(0, {self.jitter:g}) s jitter"
        return text


@dataclass(frozen=True)
class RandomWait(Wait):
    """``U(lower, upper)`` every time (tenacity ``wait_random``)."""

    lower: float
    upper: float

    def bounds(self, k: int) -> tuple[float, float]:
        return (self.lower, self.upper)

    def describe(self) -> str:
        return f"random {self.lower:g}..{self.upper:g} s"


@dataclass(frozen=True)
class Incrementing(Wait):
    """``start + increment*(k-1)``, capped (tenacity ``wait_incrementing``)."""

    start: float
    increment: float
    max: float = math.inf

    def bounds(self, k: int) -> tuple[float, float]:
        value = _clamp(self.start + self.increment * (k - 1), 0.0, self.max)
        return (value, value)


@dataclass(frozen=True)
class Combined(Wait):
    """The sum of several waits (tenacity ``wait_combine``, ``wait_fixed(a) + wait_random()``)."""

    parts: tuple[Wait, ...]

    def bounds(self, k: int) -> tuple[float, float]:
        lows, highs = zip(*(p.bounds(k) for p in self.parts), strict=True)
        return (sum(lows), sum(highs))

    def describe(self) -> str:
        return " + ".join(p.describe() for p in self.parts)


@dataclass(frozen=True)
class Chain(Wait):
    """Wait i for retry i, the last one repeating (tenacity ``wait_chain``)."""

    waits: tuple[Wait, ...]

    def bounds(self, k: int) -> tuple[float, float]:
        return self.waits[min(k, len(self.waits)) - 1].bounds(k)


@dataclass(frozen=True)
class Bounds(Wait):
    """Any schedule, given as lower and upper bound functions of the retry index."""

    lower: Callable[[int], float]
    upper: Callable[[int], float]
    text: str = "custom bounds"

    def bounds(self, k: int) -> tuple[float, float]:
        return (self.lower(k), self.upper(k))

    def describe(self) -> str:
        return self.text


UNKNOWN_WAIT = Bounds(lambda k: 0.0, lambda k: math.inf, "unknown wait (not checked)")


# ---- error samples: reading library predicates by asking them ---------------------------------
def _concrete(root: type[BaseException]) -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    stack: list[type[BaseException]] = [root]
    while stack:
        cls = stack.pop()
        if cls not in found:
            found.append(cls)
            stack.extend(cls.__subclasses__())
    return found


def sample_errors() -> dict[str, BaseException]:
    """One instance per known error kind, to probe a library's classification predicate."""
    samples: dict[str, BaseException] = {kind: error_for(kind=kind) for kind in KINDS}
    for root in (TransportError, RemoteProtocolError):
        for cls in _concrete(root):
            try:
                samples.setdefault(cls.__name__, cls(f"probe {cls.__name__}"))
            except TypeError:
                continue
    return samples


def kinds_accepted_by(predicate: Callable[[BaseException], Any]) -> frozenset[str]:
    """The kinds whose sample error makes ``predicate`` truthy (a predicate that raises: no)."""
    accepted: set[str] = set()
    for kind, exc in sample_errors().items():
        try:
            if predicate(exc):
                accepted.add(kind)
        except Exception:
            continue
    return frozenset(accepted)


def kinds_of(types: type[BaseException] | Iterable[type[BaseException]]) -> frozenset[str]:
    """The error kinds an ``except types`` clause would catch."""
    wanted = (types,) if isinstance(types, type) else tuple(types)
    return kinds_accepted_by(lambda exc: isinstance(exc, wanted))


def non_idempotent_methods(service: object) -> frozenset[str]:
    """Methods a service marks ``@non_idempotent`` (retrying them needs an idempotency key)."""
    from faultlab.rpc.service import Service

    svc = service if isinstance(service, Service) else Service(service)
    return frozenset(name for name, m in svc.methods.items() if not m.idempotent)


# ---- retry -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """A declared retry policy (normalised to total attempts, §0).

    ``deadline`` is the overall retry budget in seconds measured from the
    first attempt: with ``deadline_mode="after"`` (tenacity
    ``stop_after_delay``, stamina ``timeout``) no attempt may *start* once an
    earlier one ended past it; with ``"before"`` (``stop_before_delay``) every
    attempt starts before it. ``non_idempotent`` methods may be retried only
    with an idempotency key on every attempt (R11), unless the failure was of
    a kind in ``not_sent_kinds`` (proof the request never left).
    """

    max_attempts: int | None = 3
    wait: Wait = field(default_factory=lambda: Fixed(0.0))
    retry_on: frozenset[str] = DEFAULT_RETRY_ON
    deadline: float | None = None
    deadline_mode: Literal["after", "before"] = "after"
    non_idempotent: frozenset[str] = frozenset()
    idempotent_methods: frozenset[str] | None = None
    require_key: bool = True
    not_sent_kinds: frozenset[str] = frozenset()
    tolerance: Tolerance = DEFAULT_TOLERANCE
    name: str = ""

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts counts total attempts and must be >= 1 (or None)")
        for attr in ("retry_on", "non_idempotent", "not_sent_kinds"):
            object.__setattr__(self, attr, frozenset(getattr(self, attr)))
        if self.idempotent_methods is not None:
            object.__setattr__(self, "idempotent_methods", frozenset(self.idempotent_methods))

    def retryable(self, kind: str | None) -> bool:
        return kind is not None and kind in self.retry_on

    def is_idempotent(self, method: str | None, declared: bool | None = None) -> bool:
        """Idempotent unless listed in ``non_idempotent``, outside ``idempotent_methods``,
        or declared not idempotent on the logical call."""
        if method is not None and method in self.non_idempotent:
            return False
        if self.idempotent_methods is not None and method is not None:
            return method in self.idempotent_methods
        return declared is not False

    def describe(self) -> str:
        attempts = "unbounded" if self.max_attempts is None else f"{self.max_attempts}"
        text = f"at most {attempts} attempts, {self.wait.describe()} backoff"
        if self.deadline is not None:
            text += f", {self.deadline:g} s budget"
        return text

    # constructors from the libraries' own objects
    @classmethod
    def from_tenacity(cls, retrying: Any, **overrides: Any) -> RetryPolicy:
        """Read ``Retrying``'s stop, wait and retry strategies (anything else: ``overrides``)."""
        max_attempts, deadline, mode = _tenacity_stop(retrying.stop)
        fields: dict[str, Any] = {
            "max_attempts": max_attempts,
            "deadline": deadline,
            "deadline_mode": mode,
            "wait": _tenacity_wait(retrying.wait),
            "retry_on": _tenacity_retry_kinds(retrying),
        }
        fields.update(overrides)
        return cls(**fields)

    @classmethod
    def from_stamina(
        cls,
        on: Any,
        *,
        attempts: int | None = 10,
        timeout: float | None = 45.0,
        wait_initial: float = 0.1,
        wait_max: float = 5.0,
        wait_jitter: float = 1.0,
        wait_exp_base: float = 2.0,
        **overrides: Any,
    ) -> RetryPolicy:
        """The policy of ``stamina.retry(on=..., ...)`` / ``retry_context`` with these arguments.

        stamina keeps its configuration inside the decorated function, so pass
        the same keyword arguments here (defaults are stamina's own).
        ``d_k = min(wait_max, wait_initial*base**(k-1) + U(0, wait_jitter))``.
        """
        retry_on = kinds_of(on) if isinstance(on, type | tuple) else kinds_accepted_by(on)
        fields: dict[str, Any] = {
            "max_attempts": attempts or None,
            "deadline": timeout or None,
            "deadline_mode": "after",
            "wait": Exponential(wait_initial, wait_exp_base, max=wait_max, jitter=wait_jitter),
            "retry_on": retry_on,
        }
        fields.update(overrides)
        return cls(**fields)


def _tenacity_stop(stop: Any) -> tuple[int | None, float | None, Literal["after", "before"]]:
    from tenacity import stop as ts

    if isinstance(stop, ts.stop_after_attempt):
        return stop.max_attempt_number, None, "after"
    if isinstance(stop, ts.stop_after_delay):
        return None, stop.max_delay, "after"
    before = getattr(ts, "stop_before_delay", None)  # tenacity >= 8.3
    if before is not None and isinstance(stop, before):
        return None, stop.max_delay, "before"
    if isinstance(stop, ts.stop_any):
        attempts: int | None = None
        deadline: float | None = None
        mode: Literal["after", "before"] = "after"
        for part in stop.stops:
            a, d, m = _tenacity_stop(part)
            if a is not None:
                attempts = a if attempts is None else min(attempts, a)
            if d is not None and (deadline is None or d < deadline):
                deadline, mode = d, m
        return attempts, deadline, mode
    return None, None, "after"  # stop_never, stop_all, custom: nothing we can bound


def _tenacity_wait(wait: Any) -> Wait:
    from tenacity import wait as tw

    if isinstance(wait, tw.wait_fixed):  # includes wait_none
        return Fixed(float(wait.wait_fixed))
    if isinstance(wait, tw.wait_random_exponential):
        return Exponential(
            float(wait.multiplier),
            float(wait.exp_base),
            max=float(wait.max),
            min=float(wait.min),
            full_jitter=True,
        )
    if isinstance(wait, tw.wait_exponential):
        return Exponential(
            float(wait.multiplier), float(wait.exp_base), max=float(wait.max), min=float(wait.min)
        )
    if isinstance(wait, tw.wait_exponential_jitter):
        return Exponential(
            float(wait.multiplier),
            float(wait.exp_base),
            max=float(wait.max),
            min=float(wait.min),
            jitter=float(wait.jitter),
        )
    if isinstance(wait, tw.wait_random):
        return RandomWait(float(wait.wait_random_min), float(wait.wait_random_max))
    if isinstance(wait, tw.wait_incrementing):
        return Incrementing(float(wait.start), float(wait.increment), float(wait.max))
    if isinstance(wait, tw.wait_combine):
        return Combined(tuple(_tenacity_wait(w) for w in wait.wait_funcs))
    if isinstance(wait, tw.wait_chain):
        return Chain(tuple(_tenacity_wait(w) for w in wait.strategies))
    return UNKNOWN_WAIT


def _tenacity_retry_kinds(retrying: Any) -> frozenset[str]:
    """Ask the retry strategy itself about one sample error of every kind."""
    from tenacity import RetryCallState

    def predicate(exc: BaseException) -> bool:
        state = RetryCallState(retrying, None, (), {})
        state.set_exception((type(exc), exc, None))
        return bool(retrying.retry(state))

    return kinds_accepted_by(predicate)


# ---- breaker -----------------------------------------------------------------------------------
REJECTION_KINDS = frozenset(
    {"CircuitBreakerError", "CircuitBreakerOpen", "CircuitOpenError", "BrokenCircuitError"}
)
"""Error names breaker libraries raise for a rejected call (pybreaker, aiobreaker, ...)."""


@dataclass(frozen=True)
class BreakerPolicy:
    """A consecutive-failure breaker (pybreaker semantics, §3.1).

    Opens after ``fail_max`` consecutive counted failures; an ``excluded``
    error counts as a success. After ``reset_timeout`` the next call is
    admitted as a probe (lazy); at most ``half_open_max`` requests may be in
    flight while half-open, ``success_threshold`` successes close it and any
    failure re-opens it. ``scope="attempt"`` means the breaker guards each
    attempt (breaker inside retry); ``"call"`` means it guards whole logical
    calls (breaker outside retry).
    """

    fail_max: int = 5
    reset_timeout: float = 60.0
    half_open_max: int = 1
    success_threshold: int = 1
    excluded: frozenset[str] = frozenset()
    scope: Literal["attempt", "call"] = "attempt"
    rejection_kinds: frozenset[str] = REJECTION_KINDS
    tolerance: Tolerance = DEFAULT_TOLERANCE
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "rejection_kinds", frozenset(self.rejection_kinds))
        if self.fail_max < 1 or self.half_open_max < 1 or self.success_threshold < 1:
            raise ValueError("fail_max, half_open_max and success_threshold must be >= 1")
        object.__setattr__(self, "excluded", frozenset(self.excluded))

    def counts(self, kind: str | None) -> bool:
        """Does an error of this kind count as a failure?"""
        return kind not in self.excluded

    def describe(self) -> str:
        return (
            f"opens after {self.fail_max} consecutive failures, probes after "
            f"{self.reset_timeout:g} s"
        )

    @classmethod
    def from_pybreaker(cls, breaker: Any, **overrides: Any) -> BreakerPolicy:
        """Read ``fail_max``, ``reset_timeout``, ``success_threshold`` and the exclusions."""
        excluded = frozenset(
            kind
            for kind, exc in sample_errors().items()
            if not breaker.is_system_error(exc)  # excluded: not a system error
        )
        fields: dict[str, Any] = {
            "fail_max": int(breaker.fail_max),
            "reset_timeout": float(breaker.reset_timeout),
            "success_threshold": int(getattr(breaker, "success_threshold", 1)),
            "excluded": excluded,
            "name": str(getattr(breaker, "name", None) or ""),
        }
        fields.update(overrides)
        return cls(**fields)


# ---- fallback ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FallbackPolicy:
    """When the caller may get a fallback instead of the primary outcome (§4).

    ``eligible`` kinds of final primary error are replaced by the fallback;
    ``on_reject`` says the fallback also covers calls the breaker rejected
    (fallback outside the breaker). ``value`` is the fallback's value when
    the client does not journal a ``fallback`` event itself: a call whose
    returned value has the same ``repr`` is taken as a fallback.
    ``inner_attempts`` is the retry budget inside the fallback, if any (F2).
    """

    eligible: frozenset[str] = DEFAULT_RETRY_ON
    value: Any = NOT_SET
    on_reject: bool = True
    inner_attempts: int | None = None
    tolerance: Tolerance = DEFAULT_TOLERANCE
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "eligible", frozenset(self.eligible))

    def handles(self, kind: str | None) -> bool:
        return kind is not None and kind in self.eligible


# ---- deadline ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeadlinePolicy:
    """An overall deadline per logical call: control back by then, no attempt after it (T2)."""

    deadline: float
    tolerance: Tolerance = DEFAULT_TOLERANCE
    methods: frozenset[str] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.deadline <= 0:
            raise ValueError("deadline must be > 0 seconds")
        if self.methods is not None:
            object.__setattr__(self, "methods", frozenset(self.methods))


def policy_summary(policies: Mapping[str, Any]) -> dict[str, str]:
    """A readable line per declared policy (for reports)."""
    return {
        name: p.describe() if hasattr(p, "describe") else repr(p) for name, p in policies.items()
    }
