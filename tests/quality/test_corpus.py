"""Every deliberately wrong client is caught by the right oracle, on a small shrunk plan.

Hypothesis searches fault plans (up to 5 faults, toxicity 1 so a plan means
the same on every replay) until the expected property fails, then shrinks:
the plan it returns must have at most one fault, and the verdict must say what
was expected and what happened, naming the call. Verdicts are memoised per
plan: a real network is not perfectly repeatable, and the shrinker must see
one answer per plan; the shrunk plan is then replayed for real.
"""

from __future__ import annotations

import pytest
from hypothesis import find

from faultlab.oracles import Verdict
from faultlab.strategies import FaultPlan, minimize
from tests.quality.conftest import STATS
from tests.quality.corpus import CORPUS, Bug
from tests.quality.harness import (
    BREAKER_WORKLOAD,
    DEADLINE_TOXICS,
    DEADLINE_WORKLOAD,
    RETRY_WORKLOAD,
    SEARCH,
    SEARCH_TOXICS,
    Env,
    plans,
    run,
    verdicts,
)

SEARCH_PLANS = {"max_faults": 5, "min_faults": 0, "toxicity": 1.0, "quantum": 0.1}
MIN_WINDOW = {"jitter": 6.0, "exhaust": 1.5, "deadline": 0.8}
"""The shortest fault window a workload's shrinking may reach (default: 20 ms)."""
WORKLOADS = {
    "retry": (RETRY_WORKLOAD, plans(allow=SEARCH_TOXICS, **SEARCH_PLANS)),
    "breaker": (BREAKER_WORKLOAD, plans(allow=SEARCH_TOXICS, **SEARCH_PLANS)),
    # Full-jitter waits of up to 2 s of virtual time: a plan long enough to fail many calls,
    # since one wait alone can never be wrong (R6 pools them).
    "jitter": (
        RETRY_WORKLOAD,
        plans(duration=20.0, allow=SEARCH_TOXICS, min_duration=6.0, **SEARCH_PLANS),
    ),
    # Faults of at least 1.5 s: a bug seen only once a call's four attempts all failed (0.7 s of
    # backoff on the virtual clock plus the attempts' real time). Shrunk to the edge (0.83 s),
    # the trailing sleep failed twice in the search, then passed four replays on a loaded CI.
    "exhaust": (
        RETRY_WORKLOAD,
        plans(duration=3.0, allow=SEARCH_TOXICS, min_duration=1.5, **SEARCH_PLANS),
    ),
    # Faults of at least 0.8 s: a black hole shorter than the attempts it swallows sits on a
    # timing edge and does not replay reliably on a loaded machine.
    "deadline": (
        DEADLINE_WORKLOAD,
        plans(duration=1.5, allow=DEADLINE_TOXICS, min_duration=0.8, **SEARCH_PLANS),
    ),
}


def judge(env: Env, bug: Bug, plan: FaultPlan) -> Verdict:
    workload, _ = WORKLOADS[bug.workload]
    client = bug.factory(env.pair.client, env.clock)
    return verdicts(run(env, client, workload, plan), client.policies())[bug.oracle]


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 12
    assert len({b.name for b in CORPUS}) == len(CORPUS)
    assert {b.oracle for b in CORPUS} >= {
        "retry",
        "idempotency",
        "breaker",
        "fallback",
        "deadline",
        "roundtrip",
    }


@pytest.mark.slow
@pytest.mark.parametrize("bug", CORPUS, ids=lambda b: b.name)
def test_bug_is_caught_by_the_right_oracle(env: Env, bug: Bug) -> None:
    _, strategy = WORKLOADS[bug.workload]
    seen: dict[str, bool] = {}

    def caught(plan: FaultPlan) -> bool:
        key = plan.dumps()
        if key not in seen:
            verdict = judge(env, bug, plan)
            seen[key] = not verdict.passed and verdict.property.startswith(bug.property)
        return seen[key]

    robust: dict[str, bool] = {}

    def caught_twice(plan: FaultPlan) -> bool:
        """Shrink only to plans that fail twice: a plan on a timing edge (a partition that
        ends just as the deadline passes) would not replay on a loaded machine."""
        key = plan.dumps()
        if key not in robust:
            if not caught(plan):
                robust[key] = False
            else:
                again = judge(env, bug, plan)
                robust[key] = not again.passed and again.property.startswith(bug.property)
        return robust[key]

    # a window is shortened no further than the workload's plans draw it: the jitter bugs need
    # many failing calls, and a window cut to the edge of enough catches them only sometimes
    plan = minimize(
        find(strategy, caught, settings=SEARCH),
        caught_twice,
        min_duration=MIN_WINDOW.get(bug.workload, 0.02),
    )
    verdict = judge(env, bug, plan)
    for _ in range(3):  # replayed for real: timing can make one replay miss
        if not verdict.passed:
            break
        verdict = judge(env, bug, plan)
    assert not verdict.passed, f"{bug.name}: the shrunk plan no longer fails\n{plan.describe()}"
    assert verdict.oracle == bug.oracle
    assert verdict.property.startswith(bug.property), verdict.report()
    assert len(plan) <= 1, f"{bug.name} shrank to {len(plan)} faults:\n{plan.describe()}"
    assert "call" in verdict.message or "key" in verdict.message, verdict.message
    assert verdict.evidence, "a failed verdict carries the journal excerpt that proves it"
    STATS["caught"].append(
        f"{bug.name} by {bug.oracle} {verdict.property.split()[0]} with {len(plan)} fault(s) "
        f"after {len(seen)} plans: " + " | ".join(step.describe() for step in plan)
    )
