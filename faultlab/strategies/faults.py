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
and applied to live proxies and pairs by a :class:`PlanRunner` on a real or
virtual clock. Its steps are toxics, proxy disable windows, process faults on
a pair's server (pause, kill, SIGTERM, restart) and calls of named actions
(:data:`STEP_KINDS`); :func:`minimize` drops, shortens and softens them.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from hypothesis import strategies as st

from faultlab.errors import FaultlabError
from faultlab.toxics import Attr, InvalidToxic, Toxic, get_toxic_class, toxic_types

if TYPE_CHECKING:
    from faultlab.oracles.clock import VirtualClock
    from faultlab.proxy.engine import ProxyHandle

__all__ = [
    "PLAN_ENV",
    "STEP_KINDS",
    "CallOutcome",
    "Choice",
    "FaultPlan",
    "FaultStep",
    "Num",
    "PairLike",
    "PlanError",
    "PlanRunError",
    "PlanRunner",
    "ProcessTarget",
    "ToxicSpec",
    "UnsupportedStep",
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
    if cls.needs_frames and framing == "h2" and not cls.h2_aware:
        return False  # HTTP/2 frames: dropping or reordering them breaks the connection
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
        if cls.needs_frames and proxy_framing == "h2" and not cls.h2_aware:
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
STEP_KINDS = ("toxic", "disable", "pause", "kill", "stop", "restart", "call")
"""What a step does, in the order :func:`fault_plans` prefers them when shrinking.

``toxic``: a toxic on a proxy for a window. ``disable``: the proxy disabled for a window
(Toxiproxy's ``enabled=false``: the listener closes, connections are cut and refused),
enabled again at its end. ``pause``: the pair's server stopped with SIGSTOP for a window,
SIGCONT at its end. ``kill``: SIGKILL at the start, restarted on the same address at the end.
``stop``: SIGTERM (a graceful stop), restarted at the end. ``restart``: an instant restart of
the server. ``call``: an instant call of an action the runner was given by name."""
PROCESS_KINDS = frozenset({"pause", "kill", "stop", "restart"})
"""Steps that act on a pair's server process (a runner needs the pair)."""
INSTANT_KINDS = frozenset({"restart", "call"})
"""Steps that happen once at ``at_s`` and have no window."""
KIND_ALIASES = MappingProxyType({"sigterm": "stop", "sigkill": "kill", "sigstop": "pause"})


class PlanError(FaultlabError, ValueError):
    """A plan or one of its steps is malformed."""


class UnsupportedStep(PlanError):
    """This runner cannot apply a step: a process fault without a pair, an unknown action or
    proxy. Raised when the runner is made, naming the step."""


class PlanRunError(FaultlabError):
    """Applying or undoing a step failed while a plan ran (the step is named). The runner
    still undoes everything else; a proxy refusing a toxic ends here too."""


@dataclass(frozen=True)
class FaultStep:
    """One step of a plan, from ``at_s`` for ``duration_s`` seconds (None: to the end).

    ``kind`` is one of :data:`STEP_KINDS`; a ``toxic`` step names its ``toxic`` type,
    ``stream``, ``attributes`` and ``toxicity``; ``target`` names the proxy (or the pair,
    for a process fault) it hits (None: the runner's default); a ``call`` step names its
    ``action``. ``restart`` and ``call`` are instants (no duration). The class methods
    (:meth:`disable`, :meth:`pause`, :meth:`kill`, :meth:`sigterm`, :meth:`restart`,
    :meth:`call`) build the other kinds.
    """

    at_s: float
    toxic: str = ""
    stream: str = "downstream"
    attributes: Mapping[str, Any] = field(default_factory=dict)
    duration_s: float | None = None
    toxicity: float = 1.0
    target: str | None = None
    kind: str = "toxic"
    action: str | None = None

    def __post_init__(self) -> None:
        kind = KIND_ALIASES.get(self.kind, self.kind)
        if kind != self.kind:
            object.__setattr__(self, "kind", kind)
        if kind not in STEP_KINDS:
            raise PlanError(f"unknown plan step kind {self.kind!r}; known: {', '.join(STEP_KINDS)}")
        if kind == "toxic" and not self.toxic:
            raise PlanError("a toxic step names its toxic type")
        if kind != "toxic" and (self.toxic or self.attributes):
            raise PlanError(f"a {kind} step takes no toxic or attributes")
        if kind == "call" and not self.action:
            raise PlanError("a call step names its action")
        if kind != "call" and self.action is not None:
            raise PlanError(f"a {kind} step takes no action")
        if kind in INSTANT_KINDS and self.duration_s is not None:
            raise PlanError(f"a {kind} step is an instant: it takes no duration")
        if self.at_s < 0 or (self.duration_s is not None and self.duration_s < 0):
            raise PlanError("a step's time and duration are not negative")

    # other kinds than toxics
    @classmethod
    def disable(
        cls, at_s: float, duration_s: float | None = None, *, target: str | None = None
    ) -> FaultStep:
        """The proxy disabled from ``at_s`` (connections refused), enabled after ``duration_s``."""
        return cls(at_s, duration_s=duration_s, target=target, kind="disable")

    @classmethod
    def pause(
        cls, at_s: float, duration_s: float | None = None, *, target: str | None = None
    ) -> FaultStep:
        """The server paused (SIGSTOP) from ``at_s``, resumed after ``duration_s``."""
        return cls(at_s, duration_s=duration_s, target=target, kind="pause")

    @classmethod
    def kill(
        cls, at_s: float, duration_s: float | None = None, *, target: str | None = None
    ) -> FaultStep:
        """The server killed (SIGKILL) at ``at_s``, restarted on its address after the window."""
        return cls(at_s, duration_s=duration_s, target=target, kind="kill")

    @classmethod
    def sigterm(
        cls, at_s: float, duration_s: float | None = None, *, target: str | None = None
    ) -> FaultStep:
        """The server stopped gracefully (SIGTERM) at ``at_s``, restarted after ``duration_s``."""
        return cls(at_s, duration_s=duration_s, target=target, kind="stop")

    @classmethod
    def restart(cls, at_s: float, *, target: str | None = None) -> FaultStep:
        """The server restarted at ``at_s`` (an instant)."""
        return cls(at_s, target=target, kind="restart")

    @classmethod
    def call(cls, at_s: float, action: str, *, target: str | None = None) -> FaultStep:
        """The runner's action named ``action`` called at ``at_s`` (an instant)."""
        return cls(at_s, target=target, kind="call", action=action)

    @property
    def instant(self) -> bool:
        return self.kind in INSTANT_KINDS

    @property
    def end_s(self) -> float:
        if self.instant:
            return self.at_s
        return float("inf") if self.duration_s is None else self.at_s + self.duration_s

    @property
    def spec(self) -> ToxicSpec:
        if self.kind != "toxic":
            raise PlanError(f"a {self.kind} step has no toxic")
        return ToxicSpec(self.toxic, self.stream, self.toxicity, dict(self.attributes))

    def active_at(self, t: float) -> bool:
        """Inside this step's window at ``t`` (an instant has none)."""
        return not self.instant and self.at_s <= t < self.end_s

    def what(self) -> str:
        """What the step does, without when."""
        if self.kind == "toxic":
            return self.spec.describe()
        return {
            "disable": "proxy disabled (connections refused), enabled at the end",
            "pause": "server paused (SIGSTOP), resumed at the end",
            "kill": "server killed (SIGKILL), restarted at the end",
            "stop": "server stopped (SIGTERM), restarted at the end",
            "restart": "server restarted",
            "call": f"call {self.action!r}",
        }[self.kind]

    def describe(self) -> str:
        where = f" on {self.target}" if self.target else ""
        if self.instant:
            return f"{self.at_s:.3f} s{where}: {self.what()}"
        until = "end" if self.duration_s is None else f"{self.end_s:.3f}"
        return f"{self.at_s:.3f}-{until} s{where}: {self.what()}"

    def to_json(self) -> dict[str, Any]:
        if self.kind != "toxic":
            data: dict[str, Any] = {
                "kind": self.kind,
                "at_s": self.at_s,
                "duration_s": self.duration_s,
                "target": self.target,
            }
            if self.action is not None:
                data["action"] = self.action
            return data
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
        kind = str(data.get("kind", "toxic"))
        duration = None if data.get("duration_s") is None else float(data["duration_s"])
        target = data.get("target")
        if KIND_ALIASES.get(kind, kind) != "toxic":
            action = data.get("action")
            return cls(
                at_s=float(data["at_s"]),
                duration_s=duration,
                target=target,
                kind=kind,
                action=None if action is None else str(action),
            )
        return cls(
            at_s=float(data["at_s"]),
            toxic=str(data["toxic"]),
            stream=str(data.get("stream", "downstream")),
            attributes=dict(data.get("attributes", {})),
            duration_s=duration,
            toxicity=float(data.get("toxicity", 1.0)),
            target=target,
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

    def replay_command(self, seed: int | None, test: str | None = None) -> str:
        """A shell line that reruns ``test`` with this exact plan and the session seed.

        :func:`fault_plans` reads the plan from ``FAULTLAB_PLAN``; the seed
        replays every toxicity and jitter draw of the proxy (None: no seed option).
        """
        target = f" {shlex.quote(test)}" if test else ""
        seeded = "" if seed is None else f" --faultlab-seed={seed}"
        return f"{PLAN_ENV}={shlex.quote(self.dumps())} pytest{target}{seeded}"

    def without(self, index: int) -> FaultPlan:
        """This plan minus one step."""
        return FaultPlan(self.steps[:index] + self.steps[index + 1 :], self.duration_s)

    def with_step(self, index: int, step: FaultStep) -> FaultPlan:
        """This plan with one step replaced."""
        return FaultPlan((*self.steps[:index], step, *self.steps[index + 1 :]), self.duration_s)

    def runner(
        self,
        proxies: ProxyHandle | Mapping[str, ProxyHandle] | PairLike,
        *,
        clock: VirtualClock | None = None,
        actions: Mapping[str, Callable[[], Any]] | None = None,
        pairs: PairLike | Mapping[str, ProcessTarget] | None = None,
    ) -> PlanRunner:
        return PlanRunner(self, proxies, clock=clock, actions=actions, pairs=pairs)


def fault_plans(
    max_faults: int = 3,
    duration: float = 1.0,
    *,
    min_faults: int = 1,
    targets: Sequence[str] | None = None,
    quantum: float = 0.01,
    min_duration: float = 0.02,
    open_ended: bool = False,
    kinds: Sequence[str] = ("toxic",),
    actions: Sequence[str] = (),
    **toxic_options: Any,
) -> st.SearchStrategy[FaultPlan]:
    """Timed schedules of up to ``max_faults`` steps within ``duration`` seconds.

    Times are multiples of ``quantum``; each fault lasts at least
    ``min_duration`` (or to the end, when ``open_ended`` allows it).
    ``targets`` names the proxies (or pairs) a step may hit (None: the runner's default).
    ``kinds`` are the step kinds drawn (:data:`STEP_KINDS`; default: toxics only), the
    first preferred when shrinking; ``"call"`` draws from the action names ``actions``.
    Shrinking goes toward fewer faults, earlier and shorter windows, milder
    toxics. ``toxic_options`` go to :func:`toxics`. With ``FAULTLAB_PLAN`` set,
    only that plan is drawn (replay).
    """
    replay = FaultPlan.from_env()
    if replay is not None:
        return st.just(replay)
    if max_faults < min_faults or min_faults < 0:
        raise ValueError("need 0 <= min_faults <= max_faults")
    drawn = tuple(dict.fromkeys(KIND_ALIASES.get(k, k) for k in kinds))
    unknown = [k for k in drawn if k not in STEP_KINDS]
    if unknown or not drawn:
        raise PlanError(f"kinds must be among {', '.join(STEP_KINDS)}, got {list(kinds)}")
    if "call" in drawn and not actions:
        raise PlanError("drawing call steps needs actions=[names the runner will be given]")
    ticks = max(1, round(duration / quantum))
    min_ticks = max(1, round(min_duration / quantum))
    toxic = toxics(**toxic_options) if "toxic" in drawn else None
    target = st.sampled_from(tuple(targets)) if targets else st.none()
    action = st.sampled_from(tuple(actions)) if actions else st.none()

    @st.composite
    def step(draw: st.DrawFn) -> FaultStep:
        kind = draw(st.sampled_from(drawn)) if len(drawn) > 1 else drawn[0]
        start = draw(st.integers(0, max(0, ticks - min_ticks)))
        at_s = round(start * quantum, 6)
        if kind in INSTANT_KINDS:
            name = draw(action) if kind == "call" else None
            return FaultStep(at_s, target=draw(target), kind=kind, action=name)
        length: int | None = draw(st.integers(min_ticks, max(min_ticks, ticks - start)))
        if open_ended and draw(st.booleans()):
            length = None
        seconds = None if length is None else round(length * quantum, 6)
        if kind != "toxic":
            return FaultStep(at_s, duration_s=seconds, target=draw(target), kind=kind)
        assert toxic is not None
        spec = draw(toxic)
        return FaultStep(
            at_s=at_s,
            toxic=spec.type,
            stream=spec.stream,
            attributes=dict(spec.attributes),
            duration_s=seconds,
            toxicity=spec.toxicity,
            target=draw(target),
        )

    return st.lists(step(), min_size=min_faults, max_size=max_faults).map(
        lambda steps: FaultPlan(tuple(sorted(steps, key=lambda s: s.at_s)), float(duration))
    )


# ---- shrinking beyond Hypothesis ---------------------------------------------------------------
BISECT_STEPS = 10
"""Predicate calls a bisection may make after trying the mildest candidate."""


def minimize(
    plan: FaultPlan,
    fails: Callable[[FaultPlan], bool],
    *,
    max_runs: int = 40,
    quantum: float = 0.01,
    min_duration: float = 0.02,
    shorten: bool = True,
    soften: bool = True,
    lower_toxicity: bool = False,
) -> FaultPlan:
    """A greedy pass after Hypothesis' shrinking: drop steps, shorten windows, soften toxics.

    Hypothesis shrinks the choices that drew a plan; with timed faults a step
    that does nothing can survive because deleting it shifts every later draw.
    This pass asks the questions a reader asks directly, keeping each change
    only if ``fails`` still holds:

    1. *is this fault needed?* each step dropped in turn, until none can be;
    2. *for this long?* (``shorten``) an open-ended window closed at the plan's end, the
       end moved earlier (toward ``min_duration``), then the start moved later with the
       end kept, on multiples of ``quantum``; instants (restart, call) have no window;
    3. *this harsh?* (``soften``) each toxic attribute moved toward the toxic's mildest
       setting as its own declaration orders it (:func:`attribute_shape`: less latency,
       more bandwidth, a finite timeout before ``timeout=0``...; an attribute named
       ``protocol`` is context and stays); with ``lower_toxicity`` the toxicity is lowered
       too, among :data:`TOXICITIES` (off by default: a toxicity below 1 makes the plan a
       coin toss, and a replay may then not fail). Combinations the toxic refuses are
       skipped without a call.

    Each move tries the mildest candidate first, then bisects between it and the current
    value (at most :data:`BISECT_STEPS` more calls). Deterministic: the same plan and
    answers give the same result. Bound: ``fails`` is called at most ``max_runs`` times
    in all (a candidate already asked is answered from memory); when the budget is
    spent, the plan so far is returned.
    """
    shrinker = _Shrinker(plan, fails, max_runs)
    shrinker.lower_toxicity = lower_toxicity
    shrinker.drop_steps()
    if shorten:
        for index in range(len(shrinker.plan.steps)):
            shrinker.shorten(index, quantum, min_duration)
    if soften:
        for index in range(len(shrinker.plan.steps)):
            shrinker.soften(index)
    return shrinker.plan


class _Shrinker:
    def __init__(self, plan: FaultPlan, fails: Callable[[FaultPlan], bool], max_runs: int):
        self.plan = plan
        self.fails = fails
        self.max_runs = max_runs
        self.runs = 0
        self.lower_toxicity = False
        self.seen: dict[str, bool] = {plan.dumps(): True}

    def adopt(self, candidate: FaultPlan | None) -> bool:
        """Ask whether ``candidate`` still fails (once per distinct plan); adopt it if so."""
        if candidate is None:
            return False
        key = candidate.dumps()
        if key not in self.seen:
            if self.runs >= self.max_runs:
                return False
            self.runs += 1
            self.seen[key] = bool(self.fails(candidate))
        if self.seen[key]:
            self.plan = candidate
        return self.seen[key]

    def bisect(self, count: int, candidate: Callable[[int], FaultPlan | None]) -> None:
        """Candidates ``0..count-1`` run mildest first, the current plan is ``count``: adopt
        the mildest that still fails (the mildest tried first, then a bisection)."""
        if count <= 0 or self.adopt(candidate(0)):
            return
        low, high = 0, count
        for _ in range(BISECT_STEPS):
            if high - low <= 1:
                return
            middle = (low + high) // 2
            if self.adopt(candidate(middle)):
                high = middle
            else:
                low = middle

    def replaced(self, index: int, step: FaultStep) -> FaultPlan:
        return self.plan.with_step(index, step)

    def drop_steps(self) -> None:
        changed = True
        while changed and self.runs < self.max_runs:
            changed = False
            for index in range(len(self.plan.steps)):
                if self.adopt(self.plan.without(index)):
                    changed = True
                    break

    def shorten(self, index: int, quantum: float, min_duration: float) -> None:
        step = self.plan.steps[index]
        if step.instant:
            return
        shortest = max(min_duration, quantum)
        if step.duration_s is None:
            end = max(self.plan.duration_s, step.at_s + shortest)
            closed = replace(step, duration_s=round(end - step.at_s, 6))
            if not self.adopt(self.replaced(index, closed)):
                return  # it needs to last to the end
            step = closed
        assert step.duration_s is not None
        count = math.floor((step.duration_s - shortest) / quantum + 1e-9)
        ends_earlier = step

        def earlier_end(k: int) -> FaultPlan:
            length = round(shortest + k * quantum, 6)
            return self.replaced(index, replace(ends_earlier, duration_s=length))

        self.bisect(count, earlier_end)
        step = self.plan.steps[index]
        assert step.duration_s is not None
        end = step.at_s + step.duration_s
        count = math.floor((step.duration_s - shortest) / quantum + 1e-9)
        starts_later = step

        def later_start(k: int) -> FaultPlan | None:
            start = round(end - shortest - k * quantum, 6)
            if start <= starts_later.at_s:
                return None
            moved = replace(starts_later, at_s=start, duration_s=round(end - start, 6))
            return self.replaced(index, moved)

        self.bisect(count, later_start)

    def soften(self, index: int) -> None:
        step = self.plan.steps[index]
        if step.kind != "toxic":
            return
        try:
            cls = get_toxic_class(step.toxic)
        except InvalidToxic:
            cls = None  # an unregistered toxic: only its toxicity can soften
        for name, attr in (cls.attributes_spec if cls is not None else {}).items():
            assert cls is not None
            step = self.plan.steps[index]
            shape = attribute_shape(attr)
            if name == "protocol" or name not in step.attributes or shape is None:
                continue
            ladder = _milder_values(shape, step.attributes[name])
            if ladder is None:
                continue
            count, value_at = ladder
            current = step

            def softer(
                k: int,
                name: str = name,
                value_at: Callable[[int], Any] = value_at,
                current: FaultStep = current,
                cls: type[Toxic] = cls,
            ) -> FaultPlan | None:
                attrs = cls.fix({**current.attributes, name: value_at(k)})
                try:
                    cls(**attrs)
                except InvalidToxic:
                    return None
                if attrs == dict(current.attributes):
                    return None
                return self.replaced(index, replace(current, attributes=attrs))

            self.bisect(count, softer)
        if not self.lower_toxicity:
            return
        step = self.plan.steps[index]
        lower = [t for t in TOXICITIES if t < step.toxicity]
        current = step
        self.bisect(len(lower), lambda k: self.replaced(index, replace(current, toxicity=lower[k])))


def _milder_values(shape: Shape, value: Any) -> tuple[int, Callable[[int], Any]] | None:
    """``(count, value_at)``: the values milder than ``value`` in the order the declaration
    draws them, ``value_at(0)`` the mildest; None when ``value`` is already the mildest or
    is not in the declared order."""
    if isinstance(shape, Choice):
        if value not in shape.options:
            return None
        position = shape.options.index(value)
        return (position, lambda k: shape.options[k]) if position > 0 else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    low, high = round(shape.low * shape.scale), round(shape.high * shape.scale)
    span = high - low

    def in_range(k: int) -> Any:  # the ranking Num.strategy draws; beyond the harsh end it extends
        n = low + k if shape.milder == "low" else high - k
        return n if shape.scale == 1 else round(n / shape.scale, 6)

    if value in shape.also and not (shape.low <= value <= shape.high):
        special = span + 1 + shape.also.index(value)
        also = shape.also

        def value_at(k: int) -> Any:
            return in_range(k) if k <= span else also[k - span - 1]

        return special, value_at
    n = round(value * shape.scale)
    rank = n - low if shape.milder == "low" else high - n
    return (rank, in_range) if rank > 0 else None


# ---- applying a plan ---------------------------------------------------------------------------
class ProcessTarget(Protocol):
    """What a process step needs: a :class:`~faultlab.lab.pair.Pair`'s server controls."""

    def pause_server(self) -> None: ...
    def resume_server(self) -> None: ...
    def kill_server(self) -> None: ...
    def stop_server(self) -> None: ...
    def restart_server(self) -> None: ...


class PairLike(ProcessTarget, Protocol):
    """A pair: its name, its proxy and its server controls (:class:`~faultlab.lab.pair.Pair`)."""

    name: str
    proxy: ProxyHandle


def _is_pair(obj: object) -> bool:
    return hasattr(obj, "restart_server") and hasattr(obj, "proxy")


@dataclass
class CallOutcome:
    """What a ``call`` step's action did: its value, or the exception it raised."""

    index: int
    action: str
    at_s: float
    duration_s: float
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class PlanRunner:
    """Applies a plan's steps to live proxies and pairs as its clock passes each boundary.

    A window is applied at its start and undone at its end: a toxic added then removed, a
    proxy disabled then enabled, a server paused then resumed, killed (SIGKILL) or stopped
    (SIGTERM) then restarted on its address. Overlapping windows of one kind on one target
    nest (the last to end undoes). Instants (a restart, a call) happen once, as soon as the
    clock is at or past them. A call runs ``actions[name]()``; what it returned or raised
    is in :attr:`calls` (a call's exception is data, not a runner error).

    ``proxies`` is a proxy, a mapping of them by name, or a pair (its proxy and its
    server); ``pairs`` adds pairs by name (a process step's ``target``). A step this runner
    cannot apply (a process fault without a pair, an unknown action or target) raises
    :class:`UnsupportedStep` here, before anything runs.

    With a :class:`~faultlab.oracles.clock.VirtualClock` it follows the clock: every
    virtual sleep re-syncs, and the driver calls :meth:`sync` before each call
    (deterministic, no thread). Without one, a background thread follows real time
    (calls then run on their own threads, so boundaries stay on time). :meth:`stop`
    (and leaving the ``with`` block, also on an exception) undoes everything still
    applied: nothing stays disabled, paused, killed or toxic. A step that fails to apply
    or undo is a :class:`PlanRunError`: raised by :meth:`sync` when the driver syncs, or
    by :meth:`stop` after undoing the rest (unless the block already raised).
    """

    def __init__(
        self,
        plan: FaultPlan,
        proxies: ProxyHandle | Mapping[str, ProxyHandle] | PairLike,
        *,
        clock: VirtualClock | None = None,
        actions: Mapping[str, Callable[[], Any]] | None = None,
        pairs: PairLike | Mapping[str, ProcessTarget] | None = None,
    ) -> None:
        self.plan = plan
        self.pairs: dict[str, ProcessTarget] = {}
        if _is_pair(proxies):
            pair = cast("PairLike", proxies)
            self.proxies: dict[str, ProxyHandle] = {pair.proxy.name: pair.proxy}
            self.pairs[pair.name] = pair
        elif isinstance(proxies, Mapping):
            self.proxies = dict(proxies)
        else:
            handle = cast("ProxyHandle", proxies)
            self.proxies = {handle.name: handle}
        if isinstance(pairs, Mapping):
            self.pairs.update(pairs)
        elif pairs is not None:
            self.pairs[pairs.name] = pairs
        self.default = next(iter(self.proxies.values()), None)
        self.default_pair = next(iter(self.pairs.values()), None)
        self.actions = dict(actions or {})
        self.clock = clock
        self.applied: dict[int, str] = {}
        """Toxics this runner added and has not removed yet, by step index."""
        self.calls: list[CallOutcome] = []
        self.errors: list[PlanRunError] = []
        self.t0 = 0.0
        self._undo: dict[int, Callable[[], None]] = {}
        self._fired: set[int] = set()
        self._holds: dict[tuple[str, int], int] = {}
        self._raised: set[int] = set()
        self._lock = threading.RLock()
        self._unsubscribe: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._call_threads: list[threading.Thread] = []
        for index, step in enumerate(plan.steps):
            self._check(index, step)

    # what each step hits
    def _check(self, index: int, step: FaultStep) -> None:
        where = f"plan step {index} ({step.describe()})"
        if step.kind in PROCESS_KINDS:
            if not self.pairs:
                raise UnsupportedStep(
                    f"{where} is a process fault ({step.kind}) but this runner has no pair, "
                    "only proxies: run the plan on the pair (plan.runner(pair)) or pass pairs="
                )
            if step.target is not None and step.target not in self.pairs:
                raise UnsupportedStep(
                    f"{where} targets pair {step.target!r}; this runner has "
                    f"{', '.join(map(repr, self.pairs))}"
                )
        elif step.kind == "call":
            if step.action not in self.actions:
                known = ", ".join(map(repr, self.actions)) or "none"
                raise UnsupportedStep(
                    f"{where} calls {step.action!r}, which this runner was not given "
                    f"(actions={{...}}; it has {known})"
                )
        elif step.target is not None and step.target not in self.proxies:
            raise UnsupportedStep(
                f"{where} targets unknown proxy {step.target!r}; this runner has "
                f"{', '.join(map(repr, self.proxies)) or 'none'}"
            )
        elif self.default is None:
            raise UnsupportedStep(f"{where} needs a proxy and this runner has none")

    def _proxy(self, step: FaultStep) -> ProxyHandle:
        proxy = self.proxies.get(step.target) if step.target else self.default
        assert proxy is not None  # _check refused the plan otherwise
        return proxy

    def _pair(self, step: FaultStep) -> ProcessTarget:
        pair = self.pairs.get(step.target) if step.target else self.default_pair
        assert pair is not None  # _check refused the plan otherwise
        return pair

    def now(self) -> float:
        """Seconds since :meth:`start` on the runner's clock."""
        clock = self.clock.monotonic() if self.clock is not None else time.monotonic()
        return clock - self.t0

    # nested holds: the first to open acts, the last to close undoes
    def _hold(self, what: str, target: object, act: Callable[[], None]) -> None:
        key = (what, id(target))
        if self._holds.get(key, 0) == 0:
            act()
        self._holds[key] = self._holds.get(key, 0) + 1

    def _release(self, what: str, target: object, undo: Callable[[], None]) -> None:
        key = (what, id(target))
        count = self._holds.get(key, 0) - 1
        if count <= 0:
            self._holds.pop(key, None)
            undo()
        else:
            self._holds[key] = count

    def _restarted(self, pair: ProcessTarget) -> None:
        """After a restart: a pause window still open holds the new process too."""
        pair.restart_server()
        if self._holds.get(("paused", id(pair)), 0) > 0:
            pair.pause_server()

    def _apply(self, index: int, step: FaultStep) -> Callable[[], None]:
        """Apply a window's start; return what undoes it."""
        if step.kind == "toxic":
            proxy = self._proxy(step)
            name = f"plan{index}-{step.toxic}-{step.stream}"
            step.spec.add_to(proxy, name=name)
            self.applied[index] = name

            def remove() -> None:
                self.applied.pop(index, None)
                try:
                    proxy.remove_toxic(name)
                except Exception:  # already gone (a reset, a deleted proxy): nothing to undo
                    pass

            return remove
        if step.kind == "disable":
            proxy = self._proxy(step)
            self._hold("disabled", proxy, proxy.disable)
            return lambda: self._release("disabled", proxy, proxy.enable)
        pair = self._pair(step)
        if step.kind == "pause":
            self._hold("paused", pair, pair.pause_server)
            return lambda: self._release("paused", pair, pair.resume_server)
        down = pair.kill_server if step.kind == "kill" else pair.stop_server
        self._hold("down", pair, down)
        return lambda: self._release("down", pair, lambda: self._restarted(pair))

    def _fire(self, index: int, step: FaultStep) -> None:
        if step.kind == "restart":
            self._restarted(self._pair(step))
            return
        assert step.action is not None
        action = self.actions[step.action]
        if self._thread is not None:  # real time: a slow call must not delay boundaries
            thread = threading.Thread(
                target=self._call, args=(index, step.action, action), daemon=True,
                name=f"faultlab-plan-call-{index}",
            )  # fmt: skip
            self._call_threads.append(thread)
            thread.start()
        else:
            self._call(index, step.action, action)

    def _call(self, index: int, name: str, action: Callable[[], Any]) -> None:
        started = self.now()
        outcome = CallOutcome(index, name, round(started, 6), 0.0)
        try:
            outcome.value = action()
        except Exception as exc:  # the call's failure is what the test looks at
            outcome.error = exc
        outcome.duration_s = round(self.now() - started, 6)
        with self._lock:
            self.calls.append(outcome)

    def _failed(self, index: int, doing: str, exc: Exception) -> PlanRunError:
        step = self.plan.steps[index]
        error = PlanRunError(f"{doing} plan step {index} ({step.describe()}): {exc}")
        error.__cause__ = exc
        self.errors.append(error)
        return error

    def _undo_step(self, index: int) -> None:
        undo = self._undo.pop(index)
        try:
            undo()
        except Exception as exc:
            self._failed(index, "undoing", exc)

    def sync(self, _now: float | None = None) -> None:
        """Make the proxies and servers match the plan at the current time: windows that
        ended are undone first, then windows that started are applied, then instants due
        are run. Raises :class:`PlanRunError` if a step fails to apply or undo."""
        with self._lock:
            before = len(self.errors)
            self._sync()
            if len(self.errors) > before:
                self._raised.update(range(before, len(self.errors)))
                raise self.errors[before]

    def _sync(self) -> None:
        with self._lock:
            t = self.now()
            for index, step in enumerate(self.plan.steps):
                if index in self._undo and not step.active_at(t):
                    self._undo_step(index)
            for index, step in enumerate(self.plan.steps):
                if step.active_at(t) and index not in self._undo:
                    try:
                        self._undo[index] = self._apply(index, step)
                    except Exception as exc:
                        self._failed(index, "applying", exc)
                        self._undo[index] = lambda: None  # not retried on the next sync
            self._fire_due(t)

    def _fire_due(self, t: float) -> None:
        for index, step in enumerate(self.plan.steps):
            if step.instant and index not in self._fired and t >= step.at_s:
                self._fired.add(index)
                try:
                    self._fire(index, step)
                except Exception as exc:
                    self._failed(index, "running", exc)

    def next_boundary(self) -> float | None:
        t = self.now()
        times = [s.at_s for i, s in enumerate(self.plan.steps) if i not in self._fired]
        times += [s.end_s for s in self.plan.steps if not s.instant]
        future = [x for x in times if x > t and x != float("inf")]
        return min(future) if future else None

    def start(self) -> PlanRunner:
        self.t0 = self.clock.monotonic() if self.clock is not None else time.monotonic()
        if self.clock is None:
            self._thread = threading.Thread(target=self._follow, name="faultlab-plan", daemon=True)
        try:
            self.sync()
        except PlanRunError:
            self.stop(raise_errors=False, run_due=False)
            raise
        if self.clock is not None:
            self._unsubscribe = self.clock.on_advance(self.sync)
        elif self._thread is not None:
            self._thread.start()
        return self

    def _follow(self) -> None:
        while not self._stop.is_set():
            boundary = self.next_boundary()
            if boundary is None:
                return
            if self._stop.wait(max(0.0, boundary - self.now())):
                return
            self._sync()  # an error stays in self.errors, for stop() to raise

    def stop(self, *, raise_errors: bool = True, run_due: bool = True) -> None:
        """Stop following the clock, run the instants already due that a slow boundary held
        back (unless ``run_due`` is False: the ``with`` block raised), and undo everything
        still applied (last applied first).

        Then raises the first :class:`PlanRunError` nobody has seen yet (a background
        apply, an undo), unless ``raise_errors`` is False."""
        self._stop.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            thread.join(timeout=30)
        for call in self._call_threads:
            call.join(timeout=30)
        self._call_threads.clear()
        with self._lock:
            if run_due:
                self._fire_due(self.now())  # instants a slow boundary (a restart) held back
            for index in reversed(list(self._undo)):
                self._undo_step(index)
            unseen = [e for i, e in enumerate(self.errors) if i not in self._raised]
            self._raised.update(range(len(self.errors)))
        if raise_errors and unseen:
            raise unseen[0]

    def __enter__(self) -> PlanRunner:
        return self.start()

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.stop(raise_errors=exc_type is None, run_due=exc_type is None)
