"""Hypothesis strategies for faults: single toxics and timed fault plans, shrinking toward mild.

``toxics()`` draws a valid toxic configuration from what each registered
toxic declares (:class:`~faultlab.toxics.Attr`), so a toxic added by a
plugin is drawn too and this module knows no toxic by name. A declaration
gives the *legal* range (latency up to an hour) and a practical one for
tests, mildest end first; every draw is arranged so Hypothesis' shrinking
(toward smaller integers, earlier list elements, shorter lists) moves
toward the milder end: less latency, lower probability, more bandwidth,
more bytes before a cut, ending at the toxic's ``mildest()``. ``fault_plans()``
draws timed schedules of such toxics; a failing plan shrinks toward fewer,
shorter, milder faults, which is what a user wants to read.

A plan is data (:meth:`FaultPlan.to_json`), replayable from the
``FAULTLAB_PLAN`` environment variable (:meth:`FaultPlan.replay_command`),
and applied to live proxies by a :class:`PlanRunner` on a real or virtual
clock.
"""

from __future__ import annotations

import json
import os
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from hypothesis import strategies as st

from faultlab.toxics import Attr, InvalidToxic, Toxic, get_toxic_class, toxic_types

if TYPE_CHECKING:
    from faultlab.oracles.clock import VirtualClock
    from faultlab.proxy.engine import ProxyHandle

__all__ = [
    "PLAN_ENV",
    "Choice",
    "FaultPlan",
    "FaultStep",
    "Num",
    "PlanRunner",
    "ToxicSpec",
    "attribute_shape",
    "fault_plans",
    "minimize",
    "toxics",
]

PLAN_ENV = "FAULTLAB_PLAN"
"""A plan's JSON here makes :func:`fault_plans` draw exactly that plan (replay)."""
STREAMS = ("downstream", "upstream")
TOXICITIES = (0.25, 0.5, 0.75, 1.0)
"""Drawn toxicities, mildest first (so shrinking lowers the probability)."""


# ---- attribute shapes --------------------------------------------------------------------------
@dataclass(frozen=True)
class Num:
    """A number in ``[low, high]``; ``milder`` is the end shrinking moves toward.

    ``scale`` divides a drawn integer (``Num(0, 1, scale=1000)`` draws a
    probability in steps of 0.001); ``also`` adds special values drawn after
    the range (``timeout=0`` means "never close", the harshest).
    """

    low: float
    high: float
    milder: Literal["low", "high"] = "low"
    scale: int = 1
    also: tuple[Any, ...] = ()

    def strategy(self) -> st.SearchStrategy[Any]:
        lo, hi = round(self.low * self.scale), round(self.high * self.scale)
        span, also, scale, milder = hi - lo, self.also, self.scale, self.milder

        def value(k: int) -> Any:
            if k > span:  # the special values come after the whole range: shrunk last
                return also[k - span - 1]
            n = lo + k if milder == "low" else hi - k
            return n if scale == 1 else round(n / scale, 6)

        return st.integers(0, span + len(also)).map(value)


@dataclass(frozen=True)
class Choice:
    """One of ``options``, the mildest first."""

    options: tuple[Any, ...]

    def strategy(self) -> st.SearchStrategy[Any]:
        return st.sampled_from(self.options)


Shape = Num | Choice
FLOAT_STEP = 0.001
"""Resolution of a drawn float whose ``Attr`` declares no ``step``."""


def attribute_shape(attr: Attr) -> Shape | None:
    """What tests draw for one declared attribute; None: not drawn (its default stays)."""
    values = attr.draw_values()
    if values:
        return Choice(values)
    bounds = attr.draw_range()
    if bounds is None:
        return None
    mildest, harshest = bounds
    scale = 1 if attr.kind is int else round(1 / (attr.step or FLOAT_STEP))
    milder: Literal["low", "high"] = "low" if mildest <= harshest else "high"
    return Num(min(bounds), max(bounds), milder, scale, attr.also)


# ---- a toxic -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ToxicSpec:
    """A toxic as ``ProxyHandle.add_toxic`` takes it."""

    type: str
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def add_to(self, proxy: ProxyHandle, *, name: str | None = None) -> dict[str, Any]:
        return proxy.add_toxic(
            self.type, name=name, stream=self.stream, toxicity=self.toxicity, **self.attributes
        )

    def describe(self) -> str:
        attrs = " ".join(f"{k}={v}" for k, v in self.attributes.items())
        text = f"{self.type} {self.stream}" + (f" {attrs}" if attrs else "")
        return text + (f" (toxicity {self.toxicity:g})" if self.toxicity < 1 else "")


def _shapes_on(
    cls: type[Toxic], protocol: str | None, usable: Callable[[dict[str, Any]], bool]
) -> tuple[dict[str, Shape | None], dict[str, Any]] | None:
    """Each attribute's shape on such a proxy, and the mildest setting (None: refused even so).

    From the toxic's declarations, with two rules of the proxy's context: an
    attribute named ``protocol`` gets the proxy's protocol, and a choice the
    proxy refuses at the otherwise mildest setting is not drawn (fail_first's
    ``mode="error"`` without a protocol), so shrinking ends somewhere it accepts.
    """
    shapes = {name: attribute_shape(attr) for name, attr in cls.attributes_spec.items()}
    mildest = cls.mildest()
    if protocol is not None and "protocol" in shapes:
        shapes["protocol"] = Choice((protocol,))
        mildest = cls.fix({**mildest, "protocol": protocol})
    changed = True
    while changed:  # options only ever shrink: this ends
        changed = False
        for name, shape in shapes.items():
            if not isinstance(shape, Choice) or len(shape.options) < 2:
                continue
            accepted = tuple(o for o in shape.options if usable(cls.fix({**mildest, name: o})))
            if accepted and accepted != shape.options:
                shapes[name] = Choice(accepted)
                mildest = cls.fix({**mildest, name: accepted[0]})
                changed = True
    return (shapes, mildest) if usable(mildest) else None


def _context(transport_kind: str, framing: str | None) -> tuple[bool, str | None]:
    """(message_based, framing) of a proxy on this kind of transport."""
    kind = transport_kind
    if kind not in ("stream", "message"):
        from faultlab import transports

        kind = transports.get(kind.split("://", 1)[0]).capabilities.kind
    message_based = kind == "message"
    return message_based, (None if message_based else framing)


def _usable(
    type_name: str,
    attrs: Mapping[str, Any],
    *,
    stream: str,
    framing: str | None,
    message_based: bool,
) -> bool:
    """Would a proxy accept this toxic? (valid attributes, frames available, protocol known)."""
    cls = get_toxic_class(type_name)
    if cls.needs_frames and framing is None and not message_based:
        return False
    try:
        toxic = cls(**attrs)
    except InvalidToxic:
        return False
    reason = toxic.unsupported_reason(
        stream=stream, framing=framing, protocol=None, message_based=message_based
    )
    return reason is None


def toxics(
    transport_kind: str = "stream",
    *,
    allow: Iterable[str] | None = None,
    deny: Iterable[str] = (),
    streams: Sequence[str] = STREAMS,
    framing: str | None = "length-prefix",
    protocol: str | None = None,
    toxicity: float | None = None,
    shapes: Mapping[str, Mapping[str, Shape | st.SearchStrategy[Any]]] | None = None,
) -> st.SearchStrategy[ToxicSpec]:
    """Valid toxic configurations for a proxy on ``transport_kind`` (or a scheme like ``"tcp"``).

    ``framing`` is the proxy's framing (``None``: raw bytes, so frame-only
    toxics are left out); ``protocol`` is written into protocol-aware toxics
    (``rpc_error``...), which are left out without it. ``toxicity=None``
    draws it, mildest first. ``shapes`` overrides attribute ranges per toxic
    type (a :class:`Num`, :class:`Choice` or any strategy). A toxic that
    injects no fault (``noop``) is drawn only if ``allow`` names it.
    """
    message_based, proxy_framing = _context(transport_kind, framing)
    denied = set(deny)
    names = sorted(allow) if allow is not None else toxic_types()
    known = set(toxic_types())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidToxic(f"unknown toxic type(s): {', '.join(unknown)}")
    candidates: dict[str, dict[str, Shape | None]] = {}
    for name in names:
        if name in denied:
            continue
        cls = get_toxic_class(name)
        if allow is None and not cls.drawn_by_default:
            continue
        if cls.needs_frames and proxy_framing is None and not message_based:
            continue

        def usable(attrs: dict[str, Any], name: str = name) -> bool:
            return _usable(
                name, attrs, stream=streams[0], framing=proxy_framing, message_based=message_based
            )

        declared = _shapes_on(cls, protocol, usable)
        if declared is None:
            continue  # refused even at its mildest on such a proxy (e.g. slicer on frames)
        candidates[name] = declared[0]
    if not candidates:
        raise InvalidToxic("no toxic type can act on such a proxy with these allow/deny lists")
    overrides = {k: dict(v) for k, v in (shapes or {}).items()}

    @st.composite
    def draw_toxic(draw: st.DrawFn) -> ToxicSpec:
        type_name = draw(st.sampled_from(tuple(candidates)))
        stream = draw(st.sampled_from(tuple(streams)))
        attrs: dict[str, Any] = {}
        for attr_name, declared in candidates[type_name].items():
            shape = overrides.get(type_name, {}).get(attr_name, declared)
            if shape is None:
                continue
            strategy = shape if isinstance(shape, st.SearchStrategy) else shape.strategy()
            attrs[attr_name] = draw(strategy)
        attrs = get_toxic_class(type_name).fix(attrs)
        level = toxicity if toxicity is not None else draw(st.sampled_from(TOXICITIES))
        return ToxicSpec(type_name, stream, level, attrs)

    return draw_toxic().filter(
        lambda spec: _usable(
            spec.type,
            spec.attributes,
            stream=spec.stream,
            framing=proxy_framing,
            message_based=message_based,
        )
    )


# ---- plans -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaultStep:
    """One toxic on one proxy from ``at_s`` for ``duration_s`` seconds (None: to the end)."""

    at_s: float
    toxic: str
    stream: str = "downstream"
    attributes: Mapping[str, Any] = field(default_factory=dict)
    duration_s: float | None = None
    toxicity: float = 1.0
    target: str | None = None

    @property
    def end_s(self) -> float:
        return float("inf") if self.duration_s is None else self.at_s + self.duration_s

    @property
    def spec(self) -> ToxicSpec:
        return ToxicSpec(self.toxic, self.stream, self.toxicity, dict(self.attributes))

    def active_at(self, t: float) -> bool:
        return self.at_s <= t < self.end_s

    def describe(self) -> str:
        until = "end" if self.duration_s is None else f"{self.end_s:.3f}"
        where = f" on {self.target}" if self.target else ""
        return f"{self.at_s:.3f}-{until} s{where}: {self.spec.describe()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "at_s": self.at_s,
            "toxic": self.toxic,
            "stream": self.stream,
            "attributes": dict(self.attributes),
            "duration_s": self.duration_s,
            "toxicity": self.toxicity,
            "target": self.target,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultStep:
        return cls(
            at_s=float(data["at_s"]),
            toxic=str(data["toxic"]),
            stream=str(data.get("stream", "downstream")),
            attributes=dict(data.get("attributes", {})),
            duration_s=None if data.get("duration_s") is None else float(data["duration_s"]),
            toxicity=float(data.get("toxicity", 1.0)),
            target=data.get("target"),
        )


@dataclass(frozen=True)
class FaultPlan:
    """A timed schedule of faults: what a Hypothesis example injects, and what it shrinks."""

    steps: tuple[FaultStep, ...] = ()
    duration_s: float = 1.0

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[FaultStep]:
        return iter(self.steps)

    def active_at(self, t: float) -> list[FaultStep]:
        return [s for s in self.steps if s.active_at(t)]

    def describe(self) -> str:
        if not self.steps:
            return f"no faults for {self.duration_s:g} s"
        lines = [f"{len(self.steps)} fault(s) over {self.duration_s:g} s:"]
        lines += [f"  {step.describe()}" for step in self.steps]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (the journal and the report store it as is)."""
        return {
            "schema": "faultlab.plan/1",
            "duration_s": self.duration_s,
            "steps": [s.to_json() for s in self.steps],
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str) -> FaultPlan:
        raw: Mapping[str, Any] = json.loads(data) if isinstance(data, str) else data
        return cls(
            tuple(FaultStep.from_json(s) for s in raw.get("steps", ())),
            float(raw.get("duration_s", 1.0)),
        )

    @classmethod
    def from_env(cls) -> FaultPlan | None:
        text = os.environ.get(PLAN_ENV)
        return cls.from_json(text) if text else None

    def replay_command(self, seed: int, test: str | None = None) -> str:
        """A shell line that reruns ``test`` with this exact plan and the session seed.

        :func:`fault_plans` reads the plan from ``FAULTLAB_PLAN``; the seed
        replays every toxicity and jitter draw of the proxy.
        """
        target = f" {shlex.quote(test)}" if test else ""
        return f"{PLAN_ENV}={shlex.quote(self.dumps())} pytest{target} --faultlab-seed={seed}"

    def without(self, index: int) -> FaultPlan:
        """This plan minus one step."""
        return FaultPlan(self.steps[:index] + self.steps[index + 1 :], self.duration_s)

    def with_step(self, index: int, step: FaultStep) -> FaultPlan:
        """This plan with one step replaced."""
        return FaultPlan((*self.steps[:index], step, *self.steps[index + 1 :]), self.duration_s)

    def runner(
        self,
        proxies: ProxyHandle | Mapping[str, ProxyHandle],
        *,
        clock: VirtualClock | None = None,
    ) -> PlanRunner:
        return PlanRunner(self, proxies, clock=clock)


def fault_plans(
    max_faults: int = 3,
    duration: float = 1.0,
    *,
    min_faults: int = 1,
    targets: Sequence[str] | None = None,
    quantum: float = 0.01,
    min_duration: float = 0.02,
    open_ended: bool = False,
    **toxic_options: Any,
) -> st.SearchStrategy[FaultPlan]:
    """Timed schedules of up to ``max_faults`` toxics within ``duration`` seconds.

    Times are multiples of ``quantum``; each fault lasts at least
    ``min_duration`` (or to the end, when ``open_ended`` allows it).
    ``targets`` names the proxies a step may hit (None: the runner's default).
    Shrinking goes toward fewer faults, earlier and shorter windows, milder
    toxics. ``toxic_options`` go to :func:`toxics`. With ``FAULTLAB_PLAN`` set,
    only that plan is drawn (replay).
    """
    replay = FaultPlan.from_env()
    if replay is not None:
        return st.just(replay)
    if max_faults < min_faults or min_faults < 0:
        raise ValueError("need 0 <= min_faults <= max_faults")
    ticks = max(1, round(duration / quantum))
    min_ticks = max(1, round(min_duration / quantum))
    toxic = toxics(**toxic_options)
    target = st.sampled_from(tuple(targets)) if targets else st.none()

    @st.composite
    def step(draw: st.DrawFn) -> FaultStep:
        start = draw(st.integers(0, max(0, ticks - min_ticks)))
        length: int | None = draw(st.integers(min_ticks, max(min_ticks, ticks - start)))
        if open_ended and draw(st.booleans()):
            length = None
        spec = draw(toxic)
        return FaultStep(
            at_s=round(start * quantum, 6),
            toxic=spec.type,
            stream=spec.stream,
            attributes=dict(spec.attributes),
            duration_s=None if length is None else round(length * quantum, 6),
            toxicity=spec.toxicity,
            target=draw(target),
        )

    return st.lists(step(), min_size=min_faults, max_size=max_faults).map(
        lambda steps: FaultPlan(tuple(sorted(steps, key=lambda s: s.at_s)), float(duration))
    )


def minimize(
    plan: FaultPlan, fails: Callable[[FaultPlan], bool], *, max_runs: int = 40
) -> FaultPlan:
    """A greedy pass after Hypothesis' shrinking: drop whole steps, then halve windows.

    Hypothesis shrinks the choices that drew a plan; with timed faults a step
    that does nothing can survive because deleting it shifts every later draw.
    This pass asks the question a reader asks ("is this fault needed?")
    directly, keeping each change only if ``fails`` still holds.
    """
    runs = 0
    changed = True
    while changed and runs < max_runs:
        changed = False
        for index in range(len(plan.steps)):
            runs += 1
            candidate = plan.without(index)
            if fails(candidate):
                plan, changed = candidate, True
                break
    for index in range(len(plan.steps)):
        while runs < max_runs:
            step = plan.steps[index]
            if step.duration_s is None or step.duration_s < 0.02:
                break
            shorter = FaultStep(
                step.at_s,
                step.toxic,
                step.stream,
                step.attributes,
                round(step.duration_s / 2, 2),
                step.toxicity,
                step.target,
            )
            runs += 1
            candidate = plan.with_step(index, shorter)
            if not fails(candidate):
                break
            plan = candidate
    return plan


# ---- applying a plan ---------------------------------------------------------------------------
class PlanRunner:
    """Adds and removes a plan's toxics on live proxies as its clock passes each boundary.

    With a :class:`~faultlab.oracles.clock.VirtualClock` it follows the
    clock: every virtual sleep re-syncs, and the driver calls :meth:`sync`
    before each call (deterministic, no thread). Without one, a background
    thread follows real time. :meth:`stop` removes whatever it added.
    """

    def __init__(
        self,
        plan: FaultPlan,
        proxies: ProxyHandle | Mapping[str, ProxyHandle],
        *,
        clock: VirtualClock | None = None,
    ) -> None:
        self.plan = plan
        if isinstance(proxies, Mapping):
            self.proxies = dict(proxies)
            self.default = next(iter(self.proxies.values()), None)
        else:
            self.proxies = {proxies.name: proxies}
            self.default = proxies
        self.clock = clock
        self.applied: dict[int, str] = {}
        self.t0 = 0.0
        self._lock = threading.RLock()
        self._unsubscribe: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> float:
        """Seconds since :meth:`start` on the runner's clock."""
        clock = self.clock.monotonic() if self.clock is not None else time.monotonic()
        return clock - self.t0

    def _proxy(self, step: FaultStep) -> ProxyHandle:
        proxy = self.proxies.get(step.target) if step.target else self.default
        if proxy is None:
            raise KeyError(f"plan step targets unknown proxy {step.target!r}")
        return proxy

    def sync(self, _now: float | None = None) -> None:
        """Make the proxies match the plan at the current time."""
        with self._lock:
            t = self.now()
            for index, step in enumerate(self.plan.steps):
                wanted = step.active_at(t)
                if wanted and index not in self.applied and t < step.end_s:
                    name = f"plan{index}-{step.toxic}-{step.stream}"
                    step.spec.add_to(self._proxy(step), name=name)
                    self.applied[index] = name
                elif not wanted and index in self.applied:
                    self._remove(index)

    def _remove(self, index: int) -> None:
        name = self.applied.pop(index)
        try:
            self._proxy(self.plan.steps[index]).remove_toxic(name)
        except Exception:  # already gone (a reset, a deleted proxy): nothing left to undo
            pass

    def next_boundary(self) -> float | None:
        t = self.now()
        times = [s.at_s for s in self.plan.steps] + [s.end_s for s in self.plan.steps]
        future = [x for x in times if x > t and x != float("inf")]
        return min(future) if future else None

    def start(self) -> PlanRunner:
        self.t0 = self.clock.monotonic() if self.clock is not None else time.monotonic()
        self.sync()
        if self.clock is not None:
            self._unsubscribe = self.clock.on_advance(self.sync)
        else:
            self._thread = threading.Thread(target=self._follow, name="faultlab-plan", daemon=True)
            self._thread.start()
        return self

    def _follow(self) -> None:
        while not self._stop.is_set():
            boundary = self.next_boundary()
            if boundary is None:
                return
            if self._stop.wait(max(0.0, boundary - self.now())):
                return
            self.sync()

    def stop(self) -> None:
        """Stop following the clock and remove every toxic this runner added."""
        self._stop.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            for index in list(self.applied):
                self._remove(index)

    def __enter__(self) -> PlanRunner:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
