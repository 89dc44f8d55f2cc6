"""Correct clients, unmodified, pass every oracle their declared policies call for, judged
from the wire, over 20 Hypothesis fault plans each (HTTP errors with and without
Retry-After, black holes, resets, latency), against FastAPI on uvicorn run as a Command."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given

from tests.blackbox import clients
from tests.blackbox.clients import Client
from tests.blackbox.harness import BLACKBOX, BREAKER_WORKLOAD, WORKLOAD, Env, plans, run, verdicts

CORRECT: dict[str, tuple[Callable[[], Client], tuple[object, ...]]] = {
    "requests+urllib3": (clients.requests_client, WORKLOAD),
    "httpx+stamina": (clients.httpx_stamina_client, WORKLOAD),
    "tenacity+pybreaker+urllib": (clients.tenacity_breaker_client, BREAKER_WORKLOAD),
}


@pytest.mark.parametrize("name", list(CORRECT))
def test_a_correct_client_raises_no_false_alarm(env: Env, name: str) -> None:
    factory, workload = CORRECT[name]
    exercised: Counter[str] = Counter()
    examples = 0

    @BLACKBOX
    @given(plan=plans())
    def check(plan: object) -> None:
        nonlocal examples
        result = run(env, factory, plan, workload)  # type: ignore[arg-type]
        examples += 1
        for oracle, verdict in verdicts(result).items():
            assert verdict.passed, f"{name}: false alarm under {plan}:\n{verdict.report()}"
            if not verdict.vacuous:
                exercised[oracle] += 1

    check()
    assert examples >= 20
    # the plans must have pressed on the client, or the green means nothing
    assert exercised["retry"] >= 5, exercised
    assert exercised["deadline"] >= 5, exercised
    if "breaker" in factory().policies:
        assert exercised["breaker"] >= 1, exercised
    if "fallback" in factory().policies:
        assert exercised["fallback"] >= 1, exercised
