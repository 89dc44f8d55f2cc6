"""Deliberately wrong clients are caught by the intended property, on a plan shrunk to at most
one fault, with a replay line that runs as printed.

Each variant configures its library differently from what it declares (the bugs users
ship: ``Retry(total)`` off by one, ``backoff_factor=0``, a POST retried without an
idempotency key...). Hypothesis searches fault plans until the expected property fails,
then shrinks; verdicts are memoised per plan (a real network is not perfectly repeatable,
and the shrinker must see one answer per plan) and the shrunk plan is replayed for real.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from faultlab.oracles import Verdict
from faultlab.strategies import FaultPlan
from tests.blackbox import clients
from tests.blackbox.clients import Client
from tests.blackbox.harness import (
    BAD_REQUEST,
    BREAKER_WORKLOAD,
    RETRY_AFTER,
    UNAVAILABLE,
    WORKLOAD,
    Env,
    Step,
    plans,
    run,
    search_and_shrink,
    verdicts,
)

CAUGHT: list[str] = []
"""One line per caught variant, printed at the end (the table of the session note)."""


@dataclass(frozen=True)
class Wrong:
    name: str
    factory: Callable[[], Client]
    oracle: str
    properties: tuple[str, ...]
    allow: tuple[str, ...] = ("http_error",)
    shapes: dict[str, dict[str, Any]] = field(default_factory=lambda: UNAVAILABLE)
    workload: tuple[Step, ...] = WORKLOAD
    duration: float = 0.8
    min_duration: float = 0.3


WRONG = [
    Wrong("retry_total_off_by_one", lambda: clients.requests_client(total=3), "retry", ("R1",)),
    Wrong(
        "backoff_factor_zero", lambda: clients.requests_client(backoff_factor=0), "retry", ("R4",)
    ),
    Wrong(
        "post_retried_without_key",
        lambda: clients.requests_client(keyed_posts=False),
        "retry",
        ("R11",),
    ),
    Wrong(
        "retry_after_ignored",
        lambda: clients.requests_client(respect_retry_after=False),
        "retry",
        ("R9",),
        shapes=RETRY_AFTER,
    ),
    Wrong(
        "no_timeout_under_a_black_hole",
        lambda: clients.requests_client(timeout=None),
        "deadline",
        ("T2",),
        allow=("timeout",),
        shapes={},
        duration=5.0,
        min_duration=4.5,
    ),
    Wrong(
        "forcelist_without_503",
        lambda: clients.requests_client(status_forcelist=(500, 502, 504)),
        "retry",
        ("R3",),
    ),
    Wrong(
        "breaker_never_opens",
        lambda: clients.tenacity_breaker_client(fail_max=1000),
        "breaker",
        ("C1", "C4"),
        workload=BREAKER_WORKLOAD,
    ),
    Wrong(
        "fallback_hides_a_4xx",
        lambda: clients.requests_client(fallback_on=lambda exc: True),
        "fallback",
        ("F1",),
        shapes=BAD_REQUEST,
    ),
    Wrong(
        "retry_on_400",
        lambda: clients.httpx_stamina_client(retry_on=lambda e: isinstance(e, httpx.HTTPError)),
        "retry",
        ("R3",),
        shapes=BAD_REQUEST,
    ),
    Wrong(
        "new_idempotency_key_per_attempt",
        lambda: clients.httpx_stamina_client(new_key_per_attempt=True),
        "idempotency",
        ("I2",),
    ),
]


def judge(env: Env, bug: Wrong, plan: FaultPlan) -> Verdict:
    return verdicts(run(env, bug.factory, plan, bug.workload))[bug.oracle]


def _caught(verdict: Verdict, bug: Wrong) -> bool:
    return not verdict.passed and verdict.property.startswith(bug.properties)


def test_there_are_ten_wrong_clients_over_every_oracle() -> None:
    assert len(WRONG) >= 10
    assert len({w.name for w in WRONG}) == len(WRONG)
    assert {w.oracle for w in WRONG} == {"retry", "deadline", "breaker", "fallback", "idempotency"}


@pytest.mark.parametrize("bug", WRONG, ids=lambda w: w.name)
def test_a_wrong_client_is_caught_on_one_fault(
    env: Env, bug: Wrong, faultlab_seed: int, request: pytest.FixtureRequest
) -> None:
    strategy = plans(
        allow=bug.allow,
        shapes=bug.shapes,
        duration=bug.duration,
        min_duration=bug.min_duration,
        max_faults=2,
    )
    plan, runs = search_and_shrink(
        strategy, lambda p: _caught(judge(env, bug, p), bug), min_duration=bug.min_duration
    )
    verdict = judge(env, bug, plan)
    for _ in range(2):  # replayed for real: timing can make one replay miss
        if _caught(verdict, bug):
            break
        verdict = judge(env, bug, plan)
    assert not verdict.passed, f"{bug.name}: the shrunk plan no longer fails\n{plan.describe()}"
    assert verdict.oracle == bug.oracle
    assert verdict.property.startswith(bug.properties), verdict.report()
    assert len(plan) <= 1, f"{bug.name} shrank to {len(plan)} faults:\n{plan.describe()}"
    assert verdict.evidence, "a failed verdict carries the journal excerpt that proves it"
    node = f"{Path(__file__).resolve()}::{request.node.name}"
    replay = plan.replay_command(faultlab_seed, node)
    assert replay.startswith("FAULTLAB_PLAN=")
    CAUGHT.append(
        f"{bug.name}: {verdict.property} with {len(plan)} fault(s) after {runs} plan(s): "
        + " | ".join(step.describe() for step in plan)
        + f"\n    replay: {replay}"
    )


def test_the_replay_line_runs_as_printed(faultlab_seed: int) -> None:
    """The printed command, run from another directory, replays the exact plan and catches
    the same bug (FAULTLAB_PLAN makes the search draw only that plan)."""
    plan = FaultPlan.from_json(
        {
            "duration_s": 1.0,
            "steps": [
                {
                    "at_s": 0.0,
                    "toxic": "http_error",
                    "stream": "upstream",
                    "attributes": {"status": 503, "retry_after": 0},
                    "duration_s": 1.0,
                    "toxicity": 1.0,
                }
            ],
        }
    )
    node = f"{Path(__file__).resolve()}::test_a_wrong_client_is_caught_on_one_fault"
    command = plan.replay_command(faultlab_seed, f"{node}[retry_total_off_by_one]")
    env_part, _, rest = command.partition(" ")
    name, _, value = env_part.partition("=")
    argv = shlex.split(rest)
    assert argv[0] == "pytest"
    result = subprocess.run(
        [sys.executable, "-m", *argv, "-q", "-p", "no:cacheprovider"],
        cwd="/",
        env={**os.environ, name: shlex.split(value)[0]},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout
