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
from hypothesis import given

from examples.clients import BreakerCalc, DeadlineCalc, StaminaCalc, TenacityCalc
from faultlab.strategies import FaultPlan
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


@pytest.mark.parametrize("name", list(CLIENTS))
def test_correct_client_passes_every_oracle(env: Env, name: str) -> None:
    make, workload, strategy = CLIENTS[name]
    exercised: dict[str, int] = {}

    @QUALITY
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
            assert verdict.passed, (
                f"false alarm for the correct {name} client under\n{plan.describe()}\n"
                f"{verdict.report()}"
            )

    no_false_alarm()
    policies = make(env).policies()
    for oracle in policies:
        assert exercised.get(oracle), f"{oracle} was vacuous in every example: faults too mild"
