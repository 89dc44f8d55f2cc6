"""Search fault plans for a failing one, shrink it, and never lose a failure that does not replay.

:func:`search_plans` runs a property over plans drawn by a strategy (usually
:func:`~faultlab.strategies.fault_plans`) with Hypothesis. Each plan's first
outcome is remembered, so the shrinker sees one answer per plan and Hypothesis
never ends in a bare ``FlakyFailure``; faultlab replays the plan itself instead:

- the failure replays: :func:`~faultlab.strategies.minimize` drops steps, shortens
  windows and softens toxics, keeping only plans that fail on every run, and the
  result carries the smallest plan, its outcomes and its replay line;
- it does not: the result is *flaky*, with the first (failing) outcome, what each
  replay gave, and the replay line, and no further shrinking (a predicate that is not
  repeatable cannot guide it).

Either way :meth:`PlanSearch.verdict` is a failed verdict (oracle ``plans``) whose
message holds both outcomes and the replay line, journaled when a journal is given
(with a ``plan_search`` event holding the plan as JSON), so the report keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky, NoSuchExample

from faultlab.strategies.faults import FaultPlan, PlanError, PlanRunError, minimize

if TYPE_CHECKING:
    from faultlab.oracles.verdict import Verdict

__all__ = [
    "PLAN_SEARCH",
    "SEARCH_SETTINGS",
    "FlakyPlan",
    "Outcome",
    "PlanFailed",
    "PlanSearch",
    "search_plans",
]

PLAN_SEARCH = "plan_search"
"""The journal kind :func:`search_plans` records: the plan, its outcomes, flaky, replay."""
SEARCH_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
"""Hypothesis settings when none are given: deterministic, no database, no deadline."""


@dataclass(frozen=True)
class Outcome:
    """One run of the property on one plan: did it fail, and how (the exception or the
    failed verdict, in words)."""

    failed: bool
    message: str
    error: str | None = None
    """The exception's type name (None: it returned, perhaps a failed verdict)."""

    def describe(self) -> str:
        head = "FAILED" if self.failed else "passed"
        return f"{head}: {self.message}" if self.message else head

    def to_json(self) -> dict[str, Any]:
        return {"failed": self.failed, "message": self.message, "error": self.error}


class PlanFailed(AssertionError):
    """A fault plan made the property fail, and it replays (the message says how to)."""


class FlakyPlan(AssertionError):
    """A fault plan made the property fail once, but not on replay (both outcomes and the
    replay line are in the message)."""


@dataclass(frozen=True)
class PlanSearch:
    """What :func:`search_plans` found.

    ``plan`` is the failing plan (shrunk when it replays), None if every plan passed;
    ``outcomes`` are its runs in order, the first the failing one; ``flaky`` says a
    replay passed; ``replay`` is the command that reruns it; ``examples`` counts the
    distinct plans run in the search (shrinking included).
    """

    plan: FaultPlan | None
    outcomes: tuple[Outcome, ...] = ()
    flaky: bool = False
    replay: str | None = None
    examples: int = 0
    found: FaultPlan | None = field(default=None, compare=False)
    """The plan Hypothesis returned, before :func:`minimize`."""

    @property
    def failed(self) -> bool:
        """A plan failed (reproducibly or not)."""
        return self.plan is not None

    def report(self) -> str:
        if self.plan is None:
            return f"no failing fault plan in {self.examples} plan(s)"
        if self.flaky:
            head = (
                "FLAKY: the plan failed on its first run but not on every replay "
                "(a timing edge, or state kept between runs)"
            )
        else:
            head = f"the plan fails on each of its {len(self.outcomes)} run(s)"
        lines = [head, self.plan.describe()]
        for number, outcome in enumerate(self.outcomes, 1):
            label = "first run" if number == 1 else f"replay {number - 1}"
            lines.append(f"  {label}: {outcome.describe()}")
        if self.replay:
            lines.append(f"replay: {self.replay}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": None if self.plan is None else self.plan.to_json(),
            "outcomes": [o.to_json() for o in self.outcomes],
            "flaky": self.flaky,
            "replay": self.replay,
            "examples": self.examples,
        }

    def verdict(self) -> Verdict:
        """Oracle ``plans``: property ``flaky`` (a failure that did not replay), ``fails``
        (one that did), or ``passes`` (none found); the message is :meth:`report`."""
        from faultlab.oracles.verdict import Verdict

        if self.plan is None:
            return Verdict("plans", "passes", True, message=self.report())
        name = "flaky" if self.flaky else "fails"
        return Verdict("plans", name, False, message=self.report(), details=self.to_json())

    def raise_if_failed(self) -> None:
        """Raise :class:`FlakyPlan` or :class:`PlanFailed` with :meth:`report` if a plan failed."""
        if self.plan is not None:
            raise (FlakyPlan if self.flaky else PlanFailed)(self.report())


def _outcome(result: object) -> Outcome:
    failed = getattr(result, "passed", True) is False
    if not failed:
        return Outcome(False, "")
    report = getattr(result, "report", None)
    message = report() if callable(report) else str(getattr(result, "message", result))
    return Outcome(True, str(message))


def search_plans(
    strategy: st.SearchStrategy[FaultPlan],
    test: Callable[[FaultPlan], object],
    *,
    settings: settings | None = None,
    replays: int = 1,
    shrink: bool = True,
    max_runs: int = 40,
    quantum: float = 0.01,
    min_duration: float = 0.02,
    seed: int | None = None,
    test_id: str | None = None,
    replay: Callable[[FaultPlan], str] | None = None,
    journal: Any = None,
    nodeid: str = "",
) -> PlanSearch:
    """Search ``strategy`` for a plan on which ``test`` fails; shrink it; replay it.

    ``test(plan)`` runs the workload under the plan and fails by raising (an assertion,
    any exception) or by returning a failed verdict (anything whose ``passed`` is
    False); anything else passes. A :class:`~faultlab.strategies.PlanError` or
    :class:`~faultlab.strategies.PlanRunError` (the runner or the proxy refused the
    plan) does not count as a failure of the property.

    A failing plan is run again ``replays`` times. If every replay fails it is shrunk
    with :func:`minimize` (at most ``max_runs`` candidate plans, each kept only if it
    fails on its first run and on ``replays`` replays), otherwise the result is flaky.
    ``replay(plan)`` gives the replay line (default: ``plan.replay_command(seed,
    test_id)``). With ``journal``, a ``plan_search`` event and the :meth:`verdict`
    (under ``nodeid``) are journaled. Calls to ``test``: the search's (at most
    ``settings.max_examples`` plus Hypothesis' shrinking), ``replays`` for the found plan,
    and at most ``max_runs * (1 + replays)`` while minimizing.
    """
    first: dict[str, Outcome] = {}
    runs: dict[str, list[Outcome]] = {}

    def run(plan: FaultPlan) -> Outcome:
        try:
            outcome = _outcome(test(plan))
        except (PlanError, PlanRunError) as exc:
            outcome = Outcome(False, f"plan refused: {exc}", type(exc).__name__)
        except Exception as exc:
            outcome = Outcome(True, f"{type(exc).__name__}: {exc}", type(exc).__name__)
        runs.setdefault(plan.dumps(), []).append(outcome)
        return outcome

    def fails_first(plan: FaultPlan) -> bool:
        key = plan.dumps()
        if key not in first:
            first[key] = run(plan)
        return first[key].failed

    def fails_every_time(plan: FaultPlan) -> bool:
        if not fails_first(plan):
            return False
        done = runs[plan.dumps()]
        while len(done) < 1 + replays:
            if not run(plan).failed:
                return False
        return all(o.failed for o in done[: 1 + replays])

    found: FaultPlan | None = None
    try:
        found = find(strategy, fails_first, settings=settings or SEARCH_SETTINGS)
    except NoSuchExample:
        found = None
    except Flaky:  # the strategy itself drew differently: keep the first plan that failed
        failing = [k for k, o in first.items() if o.failed]
        found = FaultPlan.from_json(failing[0]) if failing else None
    if found is None:
        result = PlanSearch(None, examples=len(first))
    else:
        plan = found
        reproduced = fails_every_time(found)
        if reproduced and shrink:
            plan = minimize(
                found,
                fails_every_time,
                max_runs=max_runs,
                quantum=quantum,
                min_duration=min_duration,
            )
        outcomes = tuple(runs[plan.dumps()][: 1 + replays])
        line = replay(plan) if replay is not None else plan.replay_command(seed, test_id)
        result = PlanSearch(plan, outcomes, not reproduced, line, len(first), found)
    if journal is not None and result.failed:
        from faultlab.oracles.verdict import record_verdict

        journal.record(PLAN_SEARCH, nodeid=nodeid, **result.to_json())
        record_verdict(journal, result.verdict(), nodeid=nodeid)
    return result
