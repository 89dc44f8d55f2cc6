"""Correct clients, unmodified, pass every oracle their declared policies call for, judged
from the wire, over 20 Hypothesis fault plans each (HTTP errors with and without
Retry-After, black holes, resets, latency), against FastAPI on uvicorn run as a Command;
50 plans under each of three seeds in slow mode."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given, seed, settings

from tests.blackbox import clients
from tests.blackbox.clients import Client
from tests.blackbox.harness import BLACKBOX, BREAKER_WORKLOAD, WORKLOAD, Env, plans, run, verdicts
from tests.fuzz.budget import SLOW

CORRECT: dict[str, tuple[Callable[[], Client], tuple[object, ...]]] = {
    "requests+urllib3": (clients.requests_client, WORKLOAD),
    "httpx+stamina": (clients.httpx_stamina_client, WORKLOAD),
    "tenacity+pybreaker+urllib": (clients.tenacity_breaker_client, BREAKER_WORKLOAD),
}


SEEDS: list[int | None] = [1, 2, 3] if SLOW else [None]
"""Slow mode (``FAULTLAB_SLOW=1``, ``make quality``): 50 plans per client under each of three
Hypothesis seeds; the default run: 20 derandomized plans."""
SETTINGS = settings(BLACKBOX, max_examples=50, derandomize=False) if SLOW else BLACKBOX


@pytest.mark.parametrize(
    "search_seed", SEEDS, ids=lambda s: "derandomized" if s is None else f"seed{s}"
)
@pytest.mark.parametrize("name", list(CORRECT))
def test_a_correct_client_raises_no_false_alarm(
    env: Env, name: str, search_seed: int | None
) -> None:
    factory, workload = CORRECT[name]
    exercised: Counter[str] = Counter()
    examples = 0

    @SETTINGS
    @given(plan=plans())
    def check(plan: object) -> None:
        nonlocal examples
        result = run(env, factory, plan, workload)  # type: ignore[arg-type]
        examples += 1
        for oracle, verdict in verdicts(result).items():
            assert verdict.passed, f"{name}: false alarm under {plan}:\n{verdict.report()}"
            if not verdict.vacuous:
                exercised[oracle] += 1

    if search_seed is not None:
        check = seed(search_seed)(check)
    check()
    assert examples >= (50 if SLOW else 20)
    # the plans must have pressed on the client, or the green means nothing
    assert exercised["retry"] >= 5, exercised
    assert exercised["deadline"] >= 5, exercised
    if "breaker" in factory().policies:
        assert exercised["breaker"] >= 1, exercised
    if "fallback" in factory().policies:
        assert exercised["fallback"] >= 1, exercised
