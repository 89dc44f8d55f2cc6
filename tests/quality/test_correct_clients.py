"""The correct example clients keep every property their policies declare, under many plans.

A failure here is a false alarm (or a real bug in an example client): the
oracles must stay quiet for tenacity, stamina and pybreaker used right.
Every run also counts how often each oracle was vacuous, so a suite whose
faults never touch the mechanism shows up as such.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, seed, settings

from examples.clients import BreakerCalc, DeadlineCalc, StaminaCalc, TenacityCalc
from faultlab.strategies import FaultPlan
from tests.fuzz.budget import SLOW
from tests.quality.conftest import STATS
from tests.quality.harness import (
    BREAKER_TOXICS,
    BREAKER_WORKLOAD,
    DEADLINE_TOXICS,
    DEADLINE_WORKLOAD,
    QUALITY,
    RETRY_WORKLOAD,
    Env,
    Step,
    plans,
    run,
    verdicts,
)

CLIENTS: dict[str, tuple[Callable[[Env], Any], list[Step], Any]] = {
    "tenacity": (
        lambda env: TenacityCalc(env.pair.client, sleep=env.clock.sleep),
        RETRY_WORKLOAD,
        plans(toxicity=1.0),
    ),
    "tenacity-full-jitter": (
        lambda env: TenacityCalc(
            env.pair.client, initial=0.25, max_wait=2.0, full_jitter=True, sleep=env.clock.sleep
        ),
        RETRY_WORKLOAD,
        # long faults: enough jittered waits in one run for R6 to judge their distribution
        plans(duration=6.0, min_duration=5.0, toxicity=1.0),
    ),
    "stamina": (lambda env: StaminaCalc(env.pair.client), RETRY_WORKLOAD, plans(toxicity=1.0)),
    "pybreaker": (
        lambda env: BreakerCalc(env.pair.client),
        BREAKER_WORKLOAD,
        plans(allow=BREAKER_TOXICS, toxicity=1.0),
    ),
    "deadline": (
        lambda env: DeadlineCalc(
            env.pair.client, sleep=env.clock.sleep, monotonic=env.clock.monotonic
        ),
        DEADLINE_WORKLOAD,
        plans(duration=1.5, allow=DEADLINE_TOXICS, toxicity=1.0),
    ),
}


SEEDS: list[int | None] = [1, 2, 3] if SLOW else [None]
"""Slow mode (``FAULTLAB_SLOW=1``, ``make quality``): 50 plans per client under each of three
Hypothesis seeds; the default run: 20 derandomized plans."""
SETTINGS = settings(QUALITY, max_examples=50, derandomize=False) if SLOW else QUALITY


@pytest.mark.parametrize(
    "search_seed", SEEDS, ids=lambda s: "derandomized" if s is None else f"seed{s}"
)
@pytest.mark.parametrize("name", list(CLIENTS))
def test_correct_client_passes_every_oracle(env: Env, name: str, search_seed: int | None) -> None:
    make, workload, strategy = CLIENTS[name]
    exercised: dict[str, int] = {}

    @SETTINGS
    @given(plan=strategy)
    def no_false_alarm(plan: FaultPlan) -> None:
        client = make(env)
        result = run(env, client, workload, plan)
        for oracle, verdict in verdicts(result, client.policies()).items():
            counts = STATS["verdicts"].setdefault(
                f"{name}/{oracle}", {"passed": 0, "vacuous": 0, "failed": 0}
            )
            counts["failed" if not verdict.passed else "passed"] += 1
            counts["vacuous"] += verdict.passed and verdict.vacuous
            if verdict.passed and not verdict.vacuous:
                exercised[oracle] = exercised.get(oracle, 0) + 1
            for check in verdict.details.get("checks", ()):
                if check.property.startswith("R6") and check.passed and not check.vacuous:
                    exercised["R6"] = exercised.get("R6", 0) + 1
                    r6 = STATS["verdicts"].setdefault(
                        f"{name}/retry R6 distribution",
                        {"passed": 0, "vacuous": 0, "failed": 0},
                    )
                    r6["passed"] += 1
            assert verdict.passed, (
                f"false alarm for the correct {name} client under\n{plan.describe()}\n"
                f"{verdict.report()}"
            )

    if search_seed is not None:
        no_false_alarm = seed(search_seed)(no_false_alarm)
    no_false_alarm()
    policies = make(env).policies()
    for oracle in policies:
        assert exercised.get(oracle), f"{oracle} was vacuous in every example: faults too mild"
    if name == "tenacity-full-jitter":
        assert exercised.get("R6"), "R6 never had enough jittered waits: faults too short"
