"""Policies the user declares, so oracles know what "correct" means (resilience.md §9).

faultlab does not infer a client's retry or breaker configuration from its
behaviour: the user states it (or hands over the tenacity / stamina / pybreaker /
urllib3 object that configures it, and the constructors here read it), and the
oracles compare the journal against that declaration. Waits are described by
their bounds per retry index, which is all a black-box check can use (§1.4 R4/R5).

Error *kinds* are the journal's ``error_kind`` strings: an RPC error's kind
(``unavailable``), the class name of a transport or protocol error
(``TransportTimeout``, ``TruncatedFrame``), or, for an exchange read from the
proxy's wire, ``http_<status>`` (:mod:`faultlab.journal.wire`).

The importers read a library predicate by asking it about sample errors (and
responses) per kind: faultlab's own and those of the HTTP libraries installed
(:mod:`faultlab.oracles._samples`). What they cannot map raises
:class:`PolicyImportError` rather than giving an empty, silently wrong policy.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import faultlab.codecs.errors  # noqa: F401  (registers the protocol error subclasses)
from faultlab.errors import RemoteProtocolError, TransportError
from faultlab.journal.wire import GRPC_CODES, grpc_code, grpc_kind, http_kind
from faultlab.oracles._samples import WIRE_TRANSPORT_KINDS, Sample, library_samples
from faultlab.oracles.stats import ALPHA, MIN_SAMPLES, Uniform
from faultlab.rpc.errors import KINDS, error_for

if TYPE_CHECKING:
    from faultlab.journal.timeline import Attempt

__all__ = [
    "ALL_KINDS",
    "DEFAULT_RETRY_ON",
    "NOT_SET",
    "PROTOCOL_ERROR_KINDS",
    "REJECTION_KINDS",
    "RETRY_AFTER_STATUSES",
    "TRANSIENT_RPC_KINDS",
    "TRANSPORT_ERROR_KINDS",
    "WIRE_TRANSPORT_KINDS",
    "Bounds",
    "BreakerPolicy",
    "Chain",
    "Combined",
    "DeadlinePolicy",
    "Decorrelated",
    "Exponential",
    "FallbackPolicy",
    "Fixed",
    "GrpcBackoff",
    "Incrementing",
    "PolicyImportError",
    "RandomWait",
    "RetryPolicy",
    "ServiceConfigError",
    "Tolerance",
    "Urllib3Backoff",
    "Wait",
    "kinds_accepted_by",
    "kinds_of",
    "library_of",
    "non_idempotent_methods",
    "probe_samples",
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
RETRY_AFTER_STATUSES = frozenset({413, 429, 503})
"""Statuses whose ``Retry-After`` urllib3 honours (``Retry.RETRY_AFTER_STATUS_CODES``)."""


class PolicyImportError(ValueError):
    """An importer could not map (part of) a library's configuration to error kinds.

    Raised instead of returning a policy that silently retries (or excludes)
    nothing: the message names what was not understood and the override to
    pass instead (``retry_on=...`` / ``excluded=...``), which skips the probe.
    """


class ServiceConfigError(PolicyImportError):
    """A gRPC service config that grpcio would refuse (or faultlab cannot read): the message
    names the field (``methodConfig[0].retryPolicy.maxAttempts``) and what it must be."""


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
    ``typical_late`` is the slack of a *typical* wait, for the distribution
    test (R6): a Kolmogorov-Smirnov test shrugs off a few outliers (each moves
    its statistic by 1/n), so it need not assume the worst case, and a wide
    slack blinds it to waits stuck at their cap. ``None``: ``eps_late``.
    """

    eps_early: float = 0.001
    eps_late: float = 0.050
    late_ratio: float = 0.10
    typical_late: float | None = None

    @property
    def typical(self) -> float:
        """The processing slack a typical measured wait carries (R6)."""
        return self.eps_late if self.typical_late is None else self.typical_late

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

    def distribution(self, k: int, previous: float | None = None) -> Uniform | None:
        """How the k-th wait is drawn, given the previous wait (decorrelated jitter needs
        it); ``None`` when not declared (then only the bounds are checked)."""
        return None


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

    def distribution(self, k: int, previous: float | None = None) -> Uniform | None:
        return Uniform(self.seconds, self.seconds)

    def describe(self) -> str:
        return f"fixed {self.seconds:g} s"


@dataclass(frozen=True)
class Exponential(Wait):
    """``clamp(initial * multiplier**(k-1), min, max)``, optionally jittered.

    ``jitter`` adds ``U(0, jitter)`` before the cap (stamina, tenacity
    ``wait_exponential_jitter``); ``full_jitter`` draws ``U(min, value)``
    (tenacity ``wait_random_exponential``, AWS full jitter); ``equal_jitter``
    draws ``value/2 + U(0, value/2)`` (AWS equal jitter).
    """

    initial: float
    multiplier: float = 2.0
    max: float = math.inf
    min: float = 0.0
    jitter: float = 0.0
    full_jitter: bool = False
    equal_jitter: bool = False

    def __post_init__(self) -> None:
        if self.full_jitter and self.equal_jitter:
            raise ValueError("Exponential: full_jitter and equal_jitter exclude each other")

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
        if self.equal_jitter:
            return (value / 2, value)
        return (value, _clamp(raw + self.jitter, lo_clamp, self.max))

    def distribution(self, k: int, previous: float | None = None) -> Uniform | None:
        lo, hi = self.bounds(k)
        if self.full_jitter or self.equal_jitter or not math.isfinite(hi):
            return Uniform(lo, hi)
        floor = max(0.0, self.min)
        raw = self._raw(k)
        return Uniform(raw, raw + self.jitter, floor=floor, ceil=max(floor, self.max))

    def describe(self) -> str:
        text = f"exponential {self.initial:g} s x{self.multiplier:g}"
        if math.isfinite(self.max):
            text += f" up to {self.max:g} s"
        if self.min:
            text += f", at least {self.min:g} s"
        if self.full_jitter:
            text += ", full jitter"
        elif self.equal_jitter:
            text += ", equal jitter"
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

    def distribution(self, k: int, previous: float | None = None) -> Uniform | None:
        return Uniform(self.lower, self.upper)

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

    def distribution(self, k: int, previous: float | None = None) -> Uniform | None:
        value = self.bounds(k)[0]
        return Uniform(value, value)


@dataclass(frozen=True)
class Combined(Wait):
    """The sum of several waits (tenacity ``wait_combine``, ``wait_fixed(a) + wait_random()``)."""

    parts: tuple[Wait, ...]

    def bounds(self, k: int) -> tuple[float, float]:
        lows, highs = zip(*(p.bounds(k) for p in self.parts), strict=True)
        return (sum(lows), sum(highs))

    def distribution(self, k: int, previous: float | None = None) -> Uniform | None:
        """A fixed part shifts a random one; a sum of two random parts is not uniform (None)."""
        parts = [p.distribution(k) for p in self.parts]
        if any(d is None for d in parts):
            return None
        known = [d for d in parts if d is not None]
        random = [d for d in known if not d.degenerate]
        if len(random) > 1 or any(math.isfinite(d.floor) or math.isfinite(d.ceil) for d in random):
            return None
        shift = sum(d.low for d in known if d.degenerate)
        if not random:
            return Uniform(shift, shift)
        return Uniform(random[0].low + shift, random[0].high + shift)

    def describe(self) -> str:
        return " + ".join(p.describe() for p in self.parts)


@dataclass(frozen=True)
class Chain(Wait):
    """Wait i for retry i, the last one repeating (tenacity ``wait_chain``)."""

    waits: tuple[Wait, ...]

    def bounds(self, k: int) -> tuple[float, float]:
        return self.waits[min(k, len(self.waits)) - 1].bounds(k)

    def distribution(self, k: int, previous: float | None = None) -> Uniform | None:
        return self.waits[min(k, len(self.waits)) - 1].distribution(k, previous)


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


@dataclass(frozen=True)
class Urllib3Backoff(Wait):
    """urllib3 ``Retry``'s backoff, exact per retry index.

    urllib3 sleeps ``backoff_factor * 2**(n-1)`` where n counts the failures
    so far, but nothing while ``n <= 1``: so retry 1 waits 0 and retry k >= 2
    waits ``min(max, factor * 2**(k-1) + U(0, jitter))`` (``backoff_max``
    caps the jittered value).
    """

    factor: float
    jitter: float = 0.0
    max: float = 120.0

    def bounds(self, k: int) -> tuple[float, float]:
        if k <= 1:
            return (0.0, 0.0)
        value = self.factor * _power(2.0, k - 1) if self.factor else 0.0
        lo = max(0.0, min(self.max, value))
        hi = max(0.0, min(self.max, value + self.jitter))
        return (lo, hi)

    def distribution(self, k: int, previous: float | None = None) -> Uniform | None:
        lo, _ = self.bounds(k)
        if k <= 1 or not self.jitter:
            return Uniform(lo, lo)
        value = self.factor * _power(2.0, k - 1) if self.factor else 0.0
        return Uniform(value, value + self.jitter, floor=0.0, ceil=max(0.0, self.max))

    def describe(self) -> str:
        if not self.factor and not self.jitter:
            return "urllib3 backoff of 0 s"
        text = f"urllib3 backoff {self.factor:g} s x 2^(k-1) from retry 2 (none before retry 1)"
        if self.jitter:
            text += f" + U(0, {self.jitter:g}) s jitter"
        if math.isfinite(self.max):
            text += f", up to {self.max:g} s"
        return text


@dataclass(frozen=True)
class Decorrelated(Wait):
    """Decorrelated jitter (AWS): ``min(cap, U(base, multiplier * previous))``, the first
    previous wait being ``base``. Each wait depends on the one before, so its distribution
    is known only given it; the bounds are ``[base, cap]``.
    """

    base: float
    cap: float = math.inf
    multiplier: float = 3.0

    def __post_init__(self) -> None:
        if self.base < 0 or self.multiplier < 1 or self.cap < self.base:
            raise ValueError("Decorrelated: need 0 <= base <= cap and multiplier >= 1")

    def bounds(self, k: int) -> tuple[float, float]:
        return (self.base, self.cap)

    def distribution(self, k: int, previous: float | None = None) -> Uniform | None:
        if k > 1 and previous is None:
            return None
        before = self.base if k <= 1 or previous is None else max(self.base, previous)
        return Uniform(self.base, self.multiplier * before, ceil=self.cap)

    def describe(self) -> str:
        text = f"decorrelated jitter from {self.base:g} s x{self.multiplier:g}"
        return text + (f" up to {self.cap:g} s" if math.isfinite(self.cap) else "")


@dataclass(frozen=True)
class GrpcBackoff(Wait):
    """gRPC's retry backoff (A6 as revised in 2024, and grpc-core's ``BackOff``):
    ``min(initial * multiplier**(k-1), max) * U(1 - jitter, 1 + jitter)``.

    The jitter multiplies the capped value, so a wait may sit up to 20 % above
    ``maxBackoff``. Measured on grpcio 1.85 through the proxy (docs/grpc.md): the
    ratio of wait to nominal stayed within [0.81, 1.2] plus a few ms of latency, never
    near 0, so grpcio does not use the older full jitter ``U(0, cur)``. After a server
    pushback the index restarts at 1 (:meth:`RetryPolicy.backoff_index`).
    """

    initial: float
    multiplier: float = 2.0
    max: float = math.inf
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.multiplier <= 0 or self.max <= 0 or not 0 <= self.jitter < 1:
            raise ValueError("GrpcBackoff: need initial, multiplier, max > 0 and 0 <= jitter < 1")

    def _nominal(self, k: int) -> float:
        return min(self.initial * _power(self.multiplier, max(k, 1) - 1), self.max)

    def bounds(self, k: int) -> tuple[float, float]:
        value = self._nominal(k)
        return (value * (1 - self.jitter), value * (1 + self.jitter))

    def distribution(self, k: int, previous: float | None = None) -> Uniform | None:
        return Uniform(*self.bounds(k))

    def describe(self) -> str:
        text = f"gRPC {self.initial:g} s x{self.multiplier:g}"
        if math.isfinite(self.max):
            text += f" up to {self.max:g} s"
        return text + f", x U({1 - self.jitter:g}, {1 + self.jitter:g})"


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
    """One instance of faultlab's own errors per kind (the HTTP libraries' samples per wire
    kind are added by :func:`probe_samples`)."""
    samples: dict[str, BaseException] = {kind: error_for(kind=kind) for kind in KINDS}
    for root in (TransportError, RemoteProtocolError):
        for cls in _concrete(root):
            try:
                samples.setdefault(cls.__name__, cls(f"probe {cls.__name__}"))
            except TypeError:
                continue
    return samples


def probe_samples(libraries: Iterable[str] | None = None) -> list[Sample]:
    """Every probe: faultlab's own errors, then the installed HTTP libraries' errors and
    responses per wire kind (:mod:`faultlab.oracles._samples`); only those of
    ``libraries`` (``"faultlab"``, ``"requests"``, ``"httpx"``, ``"urllib3"``,
    ``"urllib"``) when given."""
    own = [Sample(kind, "faultlab", error=exc) for kind, exc in sample_errors().items()]
    found = own + list(library_samples())
    if libraries is None:
        return found
    wanted = {_LIBRARY_ALIASES.get(name, name) for name in libraries}
    unknown = wanted - _LIBRARIES
    if unknown:
        raise ValueError(
            f"unknown library {sorted(unknown)}: choose from {', '.join(sorted(_LIBRARIES))}"
        )
    return [s for s in found if s.library in wanted]


_LIBRARIES = frozenset({"faultlab", "requests", "httpx", "urllib3", "urllib"})
_LIBRARY_ALIASES = {"httpcore": "httpx", "http": "urllib", "http.client": "urllib"}


def library_of(types: Iterable[type[BaseException]]) -> str | None:
    """The one library these classes come from (``None``: builtins, your own, or several).

    A requests user only ever sees requests' exceptions: probing with that
    library's samples alone keeps a negative predicate ("everything but
    ``requests.HTTPError``") from accepting httpx's ``HTTPStatusError``."""
    found = set()
    for t in types:
        root = t.__module__.split(".")[0]
        family = _LIBRARY_ALIASES.get(root, root)
        if family in _LIBRARIES:
            found.add(family)
    return found.pop() if len(found) == 1 else None


def _probe(
    accepts: Callable[[Sample], Any], libraries: Iterable[str] | None = None
) -> frozenset[str]:
    """The kinds with at least one sample ``accepts`` is truthy for (raising counts as no)."""
    accepted: set[str] = set()
    for sample in probe_samples(libraries):
        if sample.kind in accepted:
            continue
        try:
            if accepts(sample):
                accepted.add(sample.kind)
        except Exception:
            continue
    return frozenset(accepted)


def kinds_accepted_by(
    predicate: Callable[[BaseException], Any], *, library: str | None = None
) -> frozenset[str]:
    """The kinds whose sample error makes ``predicate`` truthy (a predicate that raises: no).

    Samples come from faultlab and from every installed HTTP library (only
    ``library``'s when given), so a predicate over ``requests`` or ``httpx``
    exceptions maps to the wire kinds (``EndOfStream``, ``http_503``) those
    libraries raise them for.
    """
    libraries = None if library is None else (library,)
    return _probe(lambda s: s.error is not None and predicate(s.error), libraries)


def kinds_of(types: type[BaseException] | Iterable[type[BaseException]]) -> frozenset[str]:
    """The error kinds an ``except types`` clause would catch."""
    wanted = (types,) if isinstance(types, type) else tuple(types)
    return kinds_accepted_by(lambda exc: isinstance(exc, wanted))


def _unmapped(types: Iterable[type[BaseException]]) -> list[type[BaseException]]:
    """The classes no sample is an instance of (a user's own exception, a connect error)."""
    errors = [s.error for s in probe_samples() if s.error is not None]
    return [t for t in types if not any(isinstance(e, t) for e in errors)]


def _type_names(types: Iterable[type[BaseException]]) -> str:
    return ", ".join(f"{t.__module__}.{t.__qualname__}" for t in types)


def _callable_name(obj: Any) -> str:
    name = getattr(obj, "__qualname__", None) or type(obj).__name__
    return str(name)


_KINDS_HINT = (
    "kinds are the wire's TransportTimeout, EndOfStream, BrokenResourceError and "
    "http_<status> (http_503), an RPC kind (unavailable), or an exception class name"
)


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

    For HTTP clients: ``retry_methods`` are the HTTP methods whose failures may
    be retried at all (``None``: any; a failure of a kind in ``not_sent_kinds``
    may always be retried); ``respect_retry_after`` says a response carrying
    ``Retry-After`` with a status in ``retry_after_statuses`` may be retried
    (even if its kind is not in ``retry_on``) and the next attempt waits at
    least that long, capped at ``retry_after_max`` (R9). ``retry_budgets`` are
    per-kind retry counters: ``((kinds, n), ...)`` allows at most n retries
    after failures of those kinds (urllib3's ``read`` and ``status``).

    A random wait is also checked as a distribution (R6): once at least
    ``min_samples`` randomised waits were measured, a Kolmogorov-Smirnov band
    test at significance ``alpha`` says whether they follow the declared
    jitter and growth (see :mod:`faultlab.oracles.stats`).
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
    retry_methods: frozenset[str] | None = None
    respect_retry_after: bool = False
    retry_after_statuses: frozenset[int] = RETRY_AFTER_STATUSES
    retry_after_max: float = math.inf
    retry_budgets: tuple[tuple[frozenset[str], int], ...] = ()
    alpha: float = ALPHA
    min_samples: int = MIN_SAMPLES
    respect_pushback: bool = False
    hedging: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError("alpha is a significance level and must be in (0, 1)")
        if self.min_samples < 1:
            raise ValueError("min_samples must be >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts counts total attempts and must be >= 1 (or None)")
        for attr in ("retry_on", "non_idempotent", "not_sent_kinds", "retry_after_statuses"):
            object.__setattr__(self, attr, frozenset(getattr(self, attr)))
        if self.idempotent_methods is not None:
            object.__setattr__(self, "idempotent_methods", frozenset(self.idempotent_methods))
        if self.retry_methods is not None:
            methods = frozenset(m.upper() for m in self.retry_methods)
            object.__setattr__(self, "retry_methods", methods)
        budgets = tuple((frozenset(kinds), int(n)) for kinds, n in self.retry_budgets)
        if any(n < 0 for _, n in budgets):
            raise ValueError("retry_budgets count retries and must be >= 0")
        object.__setattr__(self, "retry_budgets", budgets)

    def retryable(self, kind: str | None) -> bool:
        return kind is not None and kind in self.retry_on

    def method_retryable(self, attempt: Attempt) -> bool:
        """May a failure of this attempt's HTTP method be retried (``retry_methods``)?

        Always, for an attempt not made over HTTP or failed with a kind in
        ``not_sent_kinds`` (the request never left)."""
        if self.retry_methods is None or attempt.http_method is None:
            return True
        if attempt.error_kind in self.not_sent_kinds:
            return True
        return attempt.http_method.upper() in self.retry_methods

    def retry_after_wait(self, attempt: Attempt) -> float | None:
        """The wait this attempt's ``Retry-After`` (or gRPC pushback) asks for, if the policy
        honours it."""
        pushback = self.pushback_wait(attempt)
        if pushback is not None:
            return pushback
        return self._header_wait(attempt)

    def _header_wait(self, attempt: Attempt) -> float | None:
        if not self.respect_retry_after or attempt.retry_after is None:
            return None
        if attempt.status not in self.retry_after_statuses:
            return None
        return min(max(0.0, float(attempt.retry_after)), self.retry_after_max)

    def pushback_wait(self, attempt: Attempt) -> float | None:
        """Seconds a ``grpc-retry-pushback-ms: n >= 0`` asks for (A6: retry after exactly n
        ms), if the policy honours pushback."""
        if not self.respect_pushback or attempt.pushback_ms is None or attempt.pushback_ms < 0:
            return None
        return attempt.pushback_ms / 1000.0

    def pushback_forbids(self, attempt: Attempt) -> bool:
        """Did the server's pushback say "do not retry" (a negative value, A6)?"""
        return self.respect_pushback and attempt.pushback_ms is not None and attempt.pushback_ms < 0

    def backoff_index(self, attempts: Sequence[Attempt], attempt: Attempt) -> int:
        """The retry index the backoff after ``attempt`` is drawn for: its number, or, when
        an earlier attempt of the call was pushed back (A6 resets the backoff to
        ``initialBackoff``), the count since that one."""
        k = attempt.number
        if not self.respect_pushback:
            return k
        for before in reversed(attempts):
            if before.number < k and self.pushback_wait(before) is not None:
                return k - before.number
        return k

    def may_retry(self, attempt: Attempt) -> bool:
        """May the client retry after this attempt (failed, retryable kind or a Retry-After
        it honours, and a method it retries)? A gRPC pushback never makes a status
        retryable: it only sets the wait (or forbids the retry, :meth:`pushback_forbids`)."""
        if not attempt.failed or not self.method_retryable(attempt):
            return False
        return self.retryable(attempt.error_kind) or self._header_wait(attempt) is not None

    def budget_for(self, kind: str | None) -> tuple[frozenset[str], int] | None:
        """The per-kind retry counter a failure of this kind spends, if any."""
        for kinds, n in self.retry_budgets:
            if kind in kinds:
                return kinds, n
        return None

    def is_idempotent(self, method: str | None, declared: bool | None = None) -> bool:
        """Idempotent unless listed in ``non_idempotent``, outside ``idempotent_methods``,
        or declared not idempotent on the logical call."""
        if method is not None and method in self.non_idempotent:
            return False
        if self.idempotent_methods is not None and method is not None:
            return method in self.idempotent_methods
        return declared is not False

    def gate_allows(
        self, method: str | None, declared: bool | None, attempts: Sequence[Attempt]
    ) -> bool:
        """R11: may a call that made ``attempts`` be sent once more?

        Always for an idempotent call, or after a failure proving the request
        never left (``not_sent_kinds``); a non-idempotent one only with
        ``require_key`` and a key on every attempt so far."""
        if self.is_idempotent(method, declared) or not attempts:
            return True
        if attempts[-1].error_kind in self.not_sent_kinds:
            return True
        return self.require_key and all(a.key for a in attempts)

    def describe(self) -> str:
        attempts = "unbounded" if self.max_attempts is None else f"{self.max_attempts}"
        text = f"at most {attempts} attempts, {self.wait.describe()} backoff"
        if self.deadline is not None:
            text += f", {self.deadline:g} s budget"
        if self.retry_methods is not None:
            text += f", retrying {'/'.join(sorted(self.retry_methods))} only"
        if self.respect_retry_after:
            statuses = ", ".join(str(s) for s in sorted(self.retry_after_statuses))
            text += f", honouring Retry-After on {statuses}"
        if self.respect_pushback:
            text += ", honouring grpc-retry-pushback-ms"
        return text

    @classmethod
    def from_grpc_service_config(
        cls,
        config: Mapping[str, Any] | str,
        *,
        method: str | None = None,
        deadline: float | None = None,
        non_idempotent: Iterable[str] = (),
        **overrides: Any,
    ) -> RetryPolicy:
        """The retry policy grpcio applies to ``method`` under this service config (the dict,
        or JSON text, passed as the ``grpc.service_config`` channel option).

        ``method`` is the full method name (``/pkg.Service/Method`` or
        ``pkg.Service/Method``); the ``methodConfig`` entry is chosen as gRPC does:
        the exact service and method, else the service's, else the default (empty
        name). It may be omitted when the config has a single entry. What is read:

        - ``retryPolicy``: ``maxAttempts`` (clamped to 5, as A6 says),
          ``initialBackoff``/``maxBackoff``/``backoffMultiplier`` (:class:`GrpcBackoff`,
          measured on grpcio 1.85), ``retryableStatusCodes`` (names or numbers; kinds
          ``grpc_unavailable``, and ``EndOfStream`` with UNAVAILABLE: a lost connection is
          UNAVAILABLE to grpc-core). Pushback is honoured (R9): a retry waits exactly the
          ``grpc-retry-pushback-ms`` asked, a negative one forbids it, and the backoff
          restarts at ``initialBackoff`` afterwards.
        - ``hedgingPolicy``: ``maxAttempts`` (clamped to 5) bounds the attempts (R1),
          ``nonFatalStatusCodes`` are the kinds after which a further hedge may go
          (R3). Not judged: the hedge schedule (``hedgingDelay``: attempts overlap, so
          R4-R6 have no gaps to read) and the cancelling of the losers (H3).
        - ``timeout``: the overall deadline of the call, covering every attempt (R8, mode
          ``"before"``: every attempt starts before it). ``deadline`` is the timeout the
          caller passes per call; the smaller one counts.
        - ``retryThrottling`` is not judged (it spans calls: B1).

        ``non_idempotent`` lists methods that must not be re-sent without an
        ``idempotency-key`` on every attempt (R11; A6 has no such marker). An invalid
        config raises :class:`ServiceConfigError` naming the field; a method no entry
        matches gets one attempt and no retry (grpcio's behaviour).
        """
        service, name = _split_method(method) if method is not None else (None, None)
        entry, where = _method_config(_config_dict(config), service, name, method)
        fields: dict[str, Any] = {
            "max_attempts": 1,
            "retry_on": frozenset(),
            "deadline_mode": "before",
            "respect_pushback": True,
            "name": f"grpc {method or 'service config'}",
            "non_idempotent": frozenset(_full_method(m) for m in non_idempotent),
        }
        if entry is not None:
            fields.update(_grpc_retry_fields(entry, where))
            timeout = entry.get("timeout")
            if timeout is not None:
                fields["deadline"] = _duration(timeout, f"{where}.timeout")
        if deadline is not None:
            if deadline <= 0:
                raise ServiceConfigError(f"deadline must be > 0 seconds, got {deadline!r}")
            fields["deadline"] = min(deadline, fields.get("deadline", math.inf))
        fields.update(overrides)
        return cls(**fields)

    # constructors from the libraries' own objects
    @classmethod
    def from_tenacity(
        cls, retrying: Any, *, library: str | None = None, **overrides: Any
    ) -> RetryPolicy:
        """Read ``Retrying``'s stop, wait and retry strategies (anything else: ``overrides``).

        The retry strategy is probed with sample errors and responses of every
        kind (``retry_if_exception_type``, ``retry_if_exception``,
        ``retry_if_result``, ``retry_any`` ... all work); an explicit
        ``retry_on=`` skips the probe. Only ``library``'s samples are used
        (``"requests"``, ``"httpx"``, ``"urllib3"``, ``"urllib"``,
        ``"faultlab"``): by default the one library the strategy's exception
        classes come from, if they all come from one; say it for a negative
        predicate ("retry anything but ...") over one library's exceptions.
        Raises :class:`PolicyImportError` when the strategy retries no kind
        faultlab can sample, or names an exception class no sample is an
        instance of.
        """
        max_attempts, deadline, mode = _tenacity_stop(retrying.stop)
        fields: dict[str, Any] = {
            "max_attempts": max_attempts,
            "deadline": deadline,
            "deadline_mode": mode,
            "wait": _tenacity_wait(retrying.wait),
        }
        if "retry_on" not in overrides:
            fields["retry_on"] = _tenacity_retry_kinds(retrying, library)
        fields.update(overrides)
        return cls(**fields)

    @classmethod
    def from_stamina(
        cls,
        on: Any,
        *,
        attempts: int | None = 10,
        timeout: float | dt.timedelta | None = 45.0,
        wait_initial: float | dt.timedelta = 0.1,
        wait_max: float | dt.timedelta = 5.0,
        wait_jitter: float | dt.timedelta = 1.0,
        wait_exp_base: float = 2.0,
        library: str | None = None,
        **overrides: Any,
    ) -> RetryPolicy:
        """The policy of ``stamina.retry(on=..., ...)`` / ``retry_context`` with these arguments.

        stamina keeps its configuration inside the decorated function, so pass
        the same keyword arguments here (defaults are stamina's own).
        ``d_k = min(wait_max, wait_initial*base**(k-1) + U(0, wait_jitter))``.
        ``on`` is an exception class, a tuple of them, or a hook returning a
        bool or a backoff (a float or timedelta that *replaces* stamina's wait:
        then the wait is not checked unless you pass ``wait=``). ``library``
        restricts the probe as for :meth:`from_tenacity`. An explicit
        ``retry_on=`` skips the probe; what cannot be mapped raises
        :class:`PolicyImportError`.
        """
        custom_backoff = False
        if "retry_on" in overrides:
            retry_on: frozenset[str] = frozenset()
        elif isinstance(on, tuple) or (isinstance(on, type) and issubclass(on, BaseException)):
            types = on if isinstance(on, tuple) else (on,)
            retry_on = kinds_accepted_by(
                lambda exc: isinstance(exc, types), library=library or library_of(types)
            )
            _refuse_unmapped("from_stamina", f"on={_type_names(types)}", types, retry_on)
        else:
            hints: list[bool] = []

            def hook(exc: BaseException) -> bool:
                result = on(exc)
                if result is None or isinstance(result, bool):
                    return bool(result)
                hints.append(True)  # a float / timedelta: retry after that long
                return True

            retry_on = kinds_accepted_by(hook, library=library)
            custom_backoff = bool(hints)
            if not retry_on:
                raise PolicyImportError(
                    f"RetryPolicy.from_stamina: the hook on={_callable_name(on)} retries none "
                    f"of the errors faultlab can sample (faultlab's own, and requests, httpx, "
                    f"urllib3 and urllib errors per wire kind), so the policy would retry "
                    f"nothing. Declare what it retries: pass retry_on={{...}} ({_KINDS_HINT})"
                )
        wait: Wait = Exponential(
            _seconds(wait_initial),
            wait_exp_base,
            max=_seconds(wait_max),
            jitter=_seconds(wait_jitter),
        )
        if custom_backoff:
            wait = Bounds(
                lambda k: 0.0,
                lambda k: math.inf,
                "set by the on= hook's backoff (not checked; pass wait= to check it)",
            )
        fields: dict[str, Any] = {
            "max_attempts": attempts or None,
            "deadline": _seconds(timeout) if timeout else None,
            "deadline_mode": "after",
            "wait": wait,
            "retry_on": retry_on,
        }
        fields.update(overrides)
        return cls(**fields)

    @classmethod
    def from_urllib3(cls, retry: Any, **overrides: Any) -> RetryPolicy:
        """The policy of a urllib3 2.x ``Retry`` (``requests``' ``HTTPAdapter(max_retries=...)``).

        What is read, for attempts seen on the proxy's wire:

        - ``total``: at most ``total + 1`` attempts (``False``: 1). With
          ``total=None`` the bound is ``1 + read + status`` when both are set,
          else none.
        - ``read`` and ``status`` become ``retry_budgets``: every wire failure
          without a response (``TransportTimeout``, ``EndOfStream``,
          ``BrokenResourceError``) is a *read* error to urllib3, since its TCP
          connection to the proxy succeeded, and spends ``read``; a retried
          status spends ``status``. ``read=False`` or ``0``: those kinds are not
          retried. ``connect`` and ``other`` count failures the wire never shows
          (refused connections), so they bound nothing here.
        - ``status_forcelist`` -> ``http_<code>`` kinds in ``retry_on``.
        - ``allowed_methods`` -> ``retry_methods`` (urllib3 retries read errors
          and statuses only for these; default: not POST or PATCH).
        - ``respect_retry_after_header``: a response with ``Retry-After`` and a
          status in ``RETRY_AFTER_STATUS_CODES`` (413, 429, 503; only while
          ``total`` is a positive count) is retried, and the header's wait (capped
          at ``retry_after_max``) replaces the backoff for any retried status.
        - ``backoff_factor``, ``backoff_jitter``, ``backoff_max`` ->
          :class:`Urllib3Backoff`.

        ``raise_on_status`` only changes what the caller gets once retries are
        exhausted (an exception or the last response), not the attempts.
        An int (or ``None``) is read as ``Retry.from_int`` would.
        """
        from urllib3.util.retry import Retry

        if not isinstance(retry, Retry):
            retry = Retry.from_int(retry)
        total = retry.total
        read_kinds = WIRE_TRANSPORT_KINDS
        forcelist = frozenset(int(code) for code in (retry.status_forcelist or ()))
        ra_codes = frozenset(int(c) for c in getattr(type(retry), "RETRY_AFTER_STATUS_CODES", ()))
        respect = bool(retry.respect_retry_after_header)
        # urllib3 retries a Retry-After status outside the forcelist only while total is truthy
        ra_retried = ra_codes if respect and isinstance(total, int) and total > 0 else frozenset()
        retry_on: set[str] = set()
        budgets: list[tuple[frozenset[str], int]] = []
        bounded: list[int | None] = []
        read = retry.read
        if read is not False and read != 0:
            retry_on |= read_kinds
            if isinstance(read, int):
                budgets.append((read_kinds, read))
            bounded.append(read if isinstance(read, int) else None)
        status = retry.status
        status_kinds = frozenset(http_kind(c) for c in forcelist | ra_retried)
        if status == 0:
            forcelist, ra_retried = frozenset(), frozenset()
        elif status_kinds:
            retry_on |= {http_kind(c) for c in forcelist}
            if isinstance(status, int):
                budgets.append((status_kinds, status))
            bounded.append(status if isinstance(status, int) else None)
        if total is False:
            max_attempts: int | None = 1
        elif isinstance(total, int):
            max_attempts = max(total, 0) + 1
        elif all(n is not None for n in bounded):
            max_attempts = 1 + sum(n for n in bounded if n is not None)
        else:
            max_attempts = None
        allowed = retry.allowed_methods
        fields: dict[str, Any] = {
            "max_attempts": max_attempts,
            "wait": Urllib3Backoff(
                float(retry.backoff_factor),
                float(getattr(retry, "backoff_jitter", 0.0) or 0.0),
                float(retry.backoff_max),
            ),
            "retry_on": frozenset(retry_on),
            "retry_methods": frozenset(m.upper() for m in allowed) if allowed else None,
            "respect_retry_after": respect and bool(forcelist | ra_retried),
            "retry_after_statuses": forcelist | ra_retried,
            "retry_after_max": float(getattr(retry, "retry_after_max", math.inf)),
            "retry_budgets": tuple(budgets),
            "name": "urllib3",
        }
        fields.update(overrides)
        return cls(**fields)


def _seconds(value: float | dt.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def _refuse_unmapped(
    importer: str, what: str, types: Iterable[type[BaseException]], kinds: frozenset[str]
) -> None:
    """Raise :class:`PolicyImportError` if some class maps to no kind (or nothing does)."""
    missing = _unmapped(types)
    if not missing and kinds:
        return
    if missing:
        cause = (
            f"no error faultlab can sample is an instance of {_type_names(missing)} (it samples "
            f"its own errors, and what requests, httpx, urllib3 and urllib raise per wire "
            f"kind; a refused connection or a class of your own never shows on the wire)"
        )
    else:
        cause = "it accepts none of the errors faultlab can sample"
    raise PolicyImportError(
        f"RetryPolicy.{importer}: cannot map {what} to error kinds: {cause}. Declare what "
        f"the client retries instead: pass retry_on={{...}} ({_KINDS_HINT})"
    )


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


def _tenacity_retry_kinds(retrying: Any, library: str | None = None) -> frozenset[str]:
    """Ask the retry strategy itself about every sample: errors raised and responses returned."""
    import tenacity
    from tenacity import RetryCallState

    strategy = retrying.retry
    if strategy is tenacity.retry_never:
        return frozenset()  # declared: never retry

    def accepts(sample: Sample) -> bool:
        state = RetryCallState(retrying, None, (), {})
        if sample.error is not None:
            state.set_exception((type(sample.error), sample.error, None))
        else:
            state.set_result(sample.result)
        return bool(strategy(state))

    types = _tenacity_types(strategy)
    library = library or library_of(_tenacity_types(strategy, negative=True))
    kinds = _probe(accepts, None if library is None else (library,))
    _refuse_unmapped(
        "from_tenacity", f"the retry strategy {_tenacity_name(strategy)}", types, kinds
    )
    return kinds


def _tenacity_types(strategy: Any, *, negative: bool = False) -> list[type[BaseException]]:
    """The classes ``retry_if_exception_type`` strategies (inside any combination) retry on;
    with ``negative``, also those ``retry_if_not_exception_type`` and
    ``retry_unless_exception_type`` name (they tell which library, not what is retried)."""
    from tenacity import (
        retry_all,
        retry_any,
        retry_if_exception_type,
        retry_if_not_exception_type,
        retry_unless_exception_type,
    )

    if isinstance(strategy, retry_any | retry_all):
        return [t for part in strategy.retries for t in _tenacity_types(part, negative=negative)]
    kinds: tuple[type, ...] = (retry_if_exception_type,)
    if negative:
        kinds += (retry_if_not_exception_type, retry_unless_exception_type)
    if type(strategy) in kinds:
        wanted = strategy.exception_types
        return list(wanted) if isinstance(wanted, tuple) else [wanted]
    return []


def _tenacity_name(strategy: Any) -> str:
    """``retry_if_exception_type(requests.exceptions.ConnectionError)``: a strategy in words."""
    from tenacity import retry_all, retry_any, retry_base

    name = type(strategy).__name__.lstrip("_")
    if isinstance(strategy, retry_any | retry_all):
        return f"{name}({', '.join(_tenacity_name(p) for p in strategy.retries)})"
    types = getattr(strategy, "exception_types", None)
    if types is not None:
        return f"{name}({_type_names(types if isinstance(types, tuple) else (types,))})"
    predicate = getattr(strategy, "predicate", None)
    if predicate is not None:
        return f"{name}({_callable_name(predicate)})"
    return name if isinstance(strategy, retry_base) else _callable_name(strategy)


# ---- gRPC service config ----------------------------------------------------------------------
GRPC_MAX_ATTEMPTS = 5
"""A6: ``maxAttempts`` above 5 are treated as 5 (the clamp grpc-core applies by default)."""
_DURATION = re.compile(r"^(\d+)(\.\d{1,9})?s$")


def _config_dict(config: Mapping[str, Any] | str) -> Mapping[str, Any]:
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except json.JSONDecodeError as exc:
            raise ServiceConfigError(f"the service config is not valid JSON: {exc}") from None
    if not isinstance(config, Mapping):
        raise ServiceConfigError("the service config must be a JSON object")
    return config


def _full_method(method: str) -> str:
    """``pkg.Service/Method`` -> ``/pkg.Service/Method`` (the name the wire journals)."""
    service, name = _split_method(method)
    return f"/{service}/{name}"


def _split_method(method: str) -> tuple[str, str]:
    parts = method.strip().lstrip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise ServiceConfigError(
            f"method {method!r}: give the full gRPC method name, /package.Service/Method"
        )
    return parts[0], parts[1]


def _method_config(
    config: Mapping[str, Any], service: str | None, name: str | None, method: str | None
) -> tuple[Mapping[str, Any] | None, str]:
    """The ``methodConfig`` entry gRPC applies to ``service/name`` (exact, service, default),
    and where it is (for messages); names repeated across entries are refused, as gRPC does."""
    entries = config.get("methodConfig", [])
    if not isinstance(entries, list):
        raise ServiceConfigError("methodConfig must be a list of method configs")
    by_name: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(entries):
        where = f"methodConfig[{i}]"
        if not isinstance(entry, Mapping):
            raise ServiceConfigError(f"{where} must be an object")
        names = entry.get("name", [])
        if not isinstance(names, list):
            raise ServiceConfigError(f"{where}.name must be a list of {{service, method}}")
        for j, item in enumerate(names):
            if not isinstance(item, Mapping):
                raise ServiceConfigError(f"{where}.name[{j}] must be an object")
            svc, meth = str(item.get("service") or ""), str(item.get("method") or "")
            if meth and not svc:
                raise ServiceConfigError(f"{where}.name[{j}]: a method needs its service")
            if (svc, meth) in by_name:
                raise ServiceConfigError(
                    f"{where}.name[{j}]: {svc or '(default)'}/{meth or '*'} is already named "
                    f"by methodConfig[{by_name[(svc, meth)]}]"
                )
            by_name[(svc, meth)] = i
    if service is None:
        if len(entries) == 1:
            return entries[0], "methodConfig[0]"
        if not entries:
            return None, ""
        raise ServiceConfigError(
            f"the service config has {len(entries)} methodConfig entries: pass method= "
            f"(/package.Service/Method) to say which call is judged"
        )
    for key in ((service, name or ""), (service, ""), ("", "")):
        if key in by_name:
            i = by_name[key]
            return entries[i], f"methodConfig[{i}]"
    return None, ""


def _grpc_retry_fields(entry: Mapping[str, Any], where: str) -> dict[str, Any]:
    retry, hedge = entry.get("retryPolicy"), entry.get("hedgingPolicy")
    if retry is not None and hedge is not None:
        raise ServiceConfigError(f"{where}: retryPolicy and hedgingPolicy exclude each other")
    if retry is not None:
        where += ".retryPolicy"
        if not isinstance(retry, Mapping):
            raise ServiceConfigError(f"{where} must be an object")
        initial = _duration(_required(retry, "initialBackoff", where), f"{where}.initialBackoff")
        most = _duration(_required(retry, "maxBackoff", where), f"{where}.maxBackoff")
        multiplier = _required(retry, "backoffMultiplier", where)
        if isinstance(multiplier, bool) or not isinstance(multiplier, int | float):
            raise ServiceConfigError(f"{where}.backoffMultiplier must be a number")
        if initial <= 0 or most <= 0 or multiplier <= 0:
            bad = "initialBackoff" if initial <= 0 else "maxBackoff" if most <= 0 else ""
            raise ServiceConfigError(f"{where}.{bad or 'backoffMultiplier'} must be greater than 0")
        codes = _codes(_required(retry, "retryableStatusCodes", where), where, "retryable")
        if not codes:
            raise ServiceConfigError(f"{where}.retryableStatusCodes must not be empty")
        return {
            "max_attempts": _attempts(retry, where),
            "wait": GrpcBackoff(initial, float(multiplier), most),
            "retry_on": codes | ({"EndOfStream"} if "grpc_unavailable" in codes else set()),
        }
    if hedge is not None:
        where += ".hedgingPolicy"
        if not isinstance(hedge, Mapping):
            raise ServiceConfigError(f"{where} must be an object")
        delay = _duration(hedge.get("hedgingDelay", "0s"), f"{where}.hedgingDelay")
        return {
            "max_attempts": _attempts(hedge, where),
            "wait": Bounds(
                lambda k: -math.inf,
                lambda k: math.inf,
                f"hedged every {delay:g} s (attempts overlap: the schedule is not judged)",
            ),
            "retry_on": _codes(hedge.get("nonFatalStatusCodes", []), where, "nonFatal"),
            "hedging": True,
        }
    return {}


def _required(section: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in section:
        raise ServiceConfigError(f"{where}.{key} is required")
    return section[key]


def _attempts(section: Mapping[str, Any], where: str) -> int:
    value = _required(section, "maxAttempts", where)
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ServiceConfigError(f"{where}.maxAttempts must be an integer of at least 2")
    return min(value, GRPC_MAX_ATTEMPTS)


def _duration(value: Any, where: str) -> float:
    """A protobuf JSON duration (``"0.1s"``, ``"2s"``) in seconds."""
    if not isinstance(value, str) or not _DURATION.match(value.strip()):
        raise ServiceConfigError(
            f'{where} must be a duration string like "0.1s" (seconds, up to 9 decimals), '
            f"got {value!r}"
        )
    return float(value.strip()[:-1])


def _codes(values: Any, where: str, what: str) -> frozenset[str]:
    if not isinstance(values, list):
        raise ServiceConfigError(f"{where}.{what}StatusCodes must be a list of status codes")
    kinds = set()
    for i, value in enumerate(values):
        try:
            code = grpc_code(value) if isinstance(value, int) else _code_name(value)
        except (TypeError, ValueError):
            raise ServiceConfigError(
                f"{where}.{what}StatusCodes[{i}]: {value!r} is not a gRPC status (a number "
                f"from 0 to 16 or one of {', '.join(GRPC_CODES)})"
            ) from None
        if code == 0:
            raise ServiceConfigError(f"{where}.{what}StatusCodes[{i}]: OK is not a failure")
        kinds.add(grpc_kind(code))
    return frozenset(kinds)


def _code_name(value: Any) -> int:
    """A status name as grpcio reads it (``UNAVAILABLE``; case-insensitive here)."""
    if not isinstance(value, str) or value.strip().upper() not in GRPC_CODES:
        raise ValueError(value)
    return GRPC_CODES.index(value.strip().upper())


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
    def from_pybreaker(
        cls, breaker: Any, *, library: str | None = None, **overrides: Any
    ) -> BreakerPolicy:
        """Read ``fail_max``, ``reset_timeout``, ``success_threshold`` and the exclusions.

        A kind is excluded when ``breaker.is_system_error`` is False for one of
        its samples (faultlab's, or the HTTP libraries' per wire kind; only
        ``library``'s when given, by default the one library the excluded
        classes come from). An excluded class no sample is an instance of
        (your own ``BusinessError``) is recorded by name, with its subclasses:
        that is the ``error_kind`` the journal gives an exception a client
        raises. An excluded predicate that matches no sample raises
        :class:`PolicyImportError`; an explicit ``excluded=`` skips the probe.
        """
        fields: dict[str, Any] = {
            "fail_max": int(breaker.fail_max),
            "reset_timeout": float(breaker.reset_timeout),
            "success_threshold": int(getattr(breaker, "success_threshold", 1)),
            "name": str(getattr(breaker, "name", None) or ""),
        }
        if "excluded" not in overrides:
            fields["excluded"] = _pybreaker_excluded(breaker, library)
        fields.update(overrides)
        return cls(**fields)


def _pybreaker_excluded(breaker: Any, library: str | None) -> frozenset[str]:
    found = getattr(breaker, "excluded_exceptions", ())  # a property in pybreaker >= 1.0
    rules = list((found() if callable(found) else found) or ())
    if not rules:
        return frozenset()
    types = [r for r in rules if isinstance(r, type) and issubclass(r, BaseException)]
    library = library or library_of(types)
    libraries = None if library is None else (library,)
    excluded = set(
        _probe(lambda s: s.error is not None and not breaker.is_system_error(s.error), libraries)
    )
    errors = [s.error for s in probe_samples(libraries) if s.error is not None]
    unmapped: list[str] = []
    for rule in rules:
        if rule in types:
            if not any(isinstance(e, rule) for e in errors):
                excluded |= _names_under(rule)
            continue
        matched = False
        for e in errors:
            try:
                matched = bool(rule(e))
            except Exception:
                matched = False
            if matched:
                break
        if not matched:
            unmapped.append(_callable_name(rule))
    if unmapped:
        raise PolicyImportError(
            f"BreakerPolicy.from_pybreaker: the exclude rule(s) {', '.join(unmapped)} match "
            f"none of the errors faultlab can sample (faultlab's own, and requests, httpx, "
            f"urllib3 and urllib errors per wire kind), so what they exclude is unknown. "
            f"Declare it instead: pass excluded={{...}} ({_KINDS_HINT})"
        )
    return frozenset(excluded)


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
    ``methods`` limits the policy to the calls of those methods (``None``: every call),
    for a client that falls back on reads only. ``needs_success``: the fallback answers
    from what an earlier call of the same method returned (a stale cache), so before the
    first success of a method it has nothing to give and an eligible failure reaches the
    caller.
    """

    eligible: frozenset[str] = DEFAULT_RETRY_ON
    value: Any = NOT_SET
    on_reject: bool = True
    inner_attempts: int | None = None
    tolerance: Tolerance = DEFAULT_TOLERANCE
    name: str = ""
    methods: frozenset[str] | None = None
    needs_success: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "eligible", frozenset(self.eligible))
        if self.methods is not None:
            object.__setattr__(self, "methods", frozenset(self.methods))

    def handles(self, kind: str | None) -> bool:
        return kind is not None and kind in self.eligible

    def covers(self, method: str | None) -> bool:
        """Does the policy speak for calls of ``method``?"""
        return self.methods is None or method in self.methods


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

    @classmethod
    def from_grpc_service_config(
        cls,
        config: Mapping[str, Any] | str,
        *,
        method: str | None = None,
        deadline: float | None = None,
        **overrides: Any,
    ) -> DeadlinePolicy:
        """The deadline of ``method``'s calls: its ``methodConfig`` ``timeout``, or
        ``deadline`` (the caller's per-call timeout), the smaller of the two; only calls of
        ``method`` are judged when it is given. Neither set: :class:`ServiceConfigError`."""
        retry = RetryPolicy.from_grpc_service_config(config, method=method, deadline=deadline)
        if retry.deadline is None:
            raise ServiceConfigError(
                f"no deadline for {method or 'the calls'}: the methodConfig sets no timeout; "
                f"pass deadline= (the timeout your calls use)"
            )
        fields: dict[str, Any] = {"deadline": retry.deadline, "name": retry.name}
        if method is not None:
            fields["methods"] = frozenset({_full_method(method)})
        fields.update(overrides)
        return cls(**fields)


def policy_summary(policies: Mapping[str, Any]) -> dict[str, str]:
    """A readable line per declared policy (for reports)."""
    return {
        name: p.describe() if hasattr(p, "describe") else repr(p) for name, p in policies.items()
    }
