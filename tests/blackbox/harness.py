"""Run an unmodified client against a real service through faultlab's proxy, under a plan.

The service is a FastAPI app on uvicorn started as a :class:`faultlab.Command` (no Python
class restating it); the proxy in front has HTTP framing, so every exchange is journaled
and the oracles take their attempts from the wire. Between runs only the proxy's toxics are
cleared: the service keeps running. Real time throughout (urllib3, stamina and tenacity
sleep for real), so plans are short and backoffs small.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from hypothesis import Phase, find, settings

import faultlab
from faultlab.lab import Lab, Pair
from faultlab.oracles import (
    Verdict,
    check_breaker,
    check_deadline,
    check_fallback,
    check_idempotency,
    check_retry,
)
from faultlab.strategies import Choice, FaultPlan, Num, fault_plans, minimize
from tests.blackbox.clients import Client
from tests.quality.harness import QUALITY

REPO = Path(__file__).resolve().parents[2]
THINK = 0.05
"""Seconds between two calls, so the workload spans the plan's window."""
CALL_BUDGET = 6.0
"""No call of the workload may block longer than this (a client with no timeout under a
black hole): the runner removes the fault by then and the call returns."""

BLACKBOX = QUALITY
"""The quality corpus's settings: 20 derandomized examples, no deadline, shrinking on."""

SHAPES: dict[str, dict[str, Any]] = {
    "http_error": {
        "status": Choice((503, 500, 502, 504, 400)),
        "retry_after": Choice((0, 1)),
    },
    "latency": {"latency": Num(0, 300), "jitter": Num(0, 20)},
    "timeout": {"timeout": Num(0, 0)},
    "reset_peer": {"timeout": Num(0, 0)},
}
"""Faults that matter to an HTTP client, kept short so a run costs about a second."""
TOXICS = ("http_error", "timeout", "reset_peer", "latency")
EVERY_REQUEST = {"every": Choice((1,)), "scope": Choice(("connection",))}
"""The search varies when and how long a fault acts, not which requests it skips."""
UNAVAILABLE = {
    "http_error": {"status": Choice((503,)), "retry_after": Choice((0,)), **EVERY_REQUEST}
}
BAD_REQUEST = {
    "http_error": {"status": Choice((400,)), "retry_after": Choice((0,)), **EVERY_REQUEST}
}
RETRY_AFTER = {
    "http_error": {"status": Choice((503,)), "retry_after": Choice((1,)), **EVERY_REQUEST}
}
SEARCH = settings(BLACKBOX, max_examples=15, phases=[Phase.generate, Phase.shrink])


def plans(
    *,
    allow: Sequence[str] = TOXICS,
    max_faults: int = 2,
    min_faults: int = 1,
    duration: float = 0.8,
    shapes: dict[str, dict[str, Any]] | None = None,
    min_duration: float = 0.3,
) -> Any:
    return fault_plans(
        max_faults,
        duration,
        min_faults=min_faults,
        allow=allow,
        framing="http",
        streams=("upstream",),
        shapes={**SHAPES, **(shapes or {})},
        toxicity=1.0,
        quantum=0.1,
        min_duration=min_duration,
    )


def fastapi_command() -> faultlab.Command:
    argv = [sys.executable, "-m", "uvicorn", "tests.blackbox.services.fastapi_app:app"]
    argv += ["--host", "{host}", "--port", "{port}", "--no-access-log", "--log-level", "warning"]
    return faultlab.Command(
        argv,
        cwd=str(REPO),
        ready=faultlab.ready.http(path="/health", status=200),
    )


@dataclass
class Env:
    lab: Lab
    pair: Pair
    runs: int = 0

    @property
    def base(self) -> str:
        return self.pair.url

    def orders(self) -> list[dict[str, Any]]:
        """Orders the service applied, asked directly (bypassing the proxy); none when the
        service keeps no orders."""
        response = httpx.get(f"{self.pair.server_url}/orders", timeout=5)
        if response.status_code == 404:
            return []
        response.raise_for_status()
        orders: list[dict[str, Any]] = response.json()
        return orders


def make_env(seed: int, service: Any = None) -> Env:
    """A lab and a pair fronting ``service`` (default: the FastAPI app as a Command)."""
    lab = Lab(seed=seed)
    try:
        pair = lab.pair(service if service is not None else fastapi_command(), protocol="http")
    except BaseException:
        lab.close()
        raise
    return Env(lab, pair)


# ---- workload --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    label: str
    method: str
    run: Callable[[Client, str], Any]
    idempotent: bool = True


WORKLOAD: tuple[Step, ...] = (
    Step("get 1", "GET /items", lambda c, base: c.get_item(base, 1)),
    Step("order 1", "POST /orders", lambda c, base: c.create_order(base, 1), idempotent=False),
    Step("get 2", "GET /items", lambda c, base: c.get_item(base, 2)),
    Step("get 3", "GET /items", lambda c, base: c.get_item(base, 3)),
    Step("order 2", "POST /orders", lambda c, base: c.create_order(base, 2), idempotent=False),
    Step("get 4", "GET /items", lambda c, base: c.get_item(base, 4)),
    Step("get 5", "GET /items", lambda c, base: c.get_item(base, 5)),
)
GET_WORKLOAD: tuple[Step, ...] = tuple(
    Step(f"get {n}", "GET /items", lambda c, base, n=n: c.get_item(base, n)) for n in range(1, 8)
)
"""For services with no orders (the Node server)."""
BREAKER_WORKLOAD: tuple[Step, ...] = WORKLOAD + tuple(
    Step(f"get {n}", "GET /items", lambda c, base, n=n: c.get_item(base, n)) for n in range(6, 12)
)


def _one_call(env: Env, client: Client, step: Step) -> None:
    """One logical call, bounded: the client's own errors are journaled, not raised."""

    def body() -> None:
        try:
            with env.pair.logical_call(
                step.label, method=step.method, idempotent=step.idempotent
            ) as record:
                record.value = step.run(client, env.base)
        except Exception:
            pass

    worker = threading.Thread(target=body, daemon=True, name=f"blackbox-{step.label}")
    worker.start()
    worker.join(CALL_BUDGET)


@dataclass
class Run:
    plan: FaultPlan
    events: list[dict[str, Any]]
    orders_before: int
    orders: list[dict[str, Any]]
    policies: dict[str, Any]


def run(
    env: Env,
    make_client: Callable[[], Client],
    plan: FaultPlan,
    workload: Sequence[Step] = WORKLOAD,
) -> Run:
    """A fresh client (a breaker's state must not leak between runs) runs the workload while
    ``plan`` is applied on the real clock; the journal excerpt and the orders applied."""
    env.pair.clear_faults()
    before = len(env.orders())
    since = env.pair.journal.record("mark", proxy=env.pair.name)["seq"]
    client = make_client()
    try:
        with plan.runner(env.pair.proxy):
            for step in workload:
                _one_call(env, client, step)
                time.sleep(THINK)
    finally:
        client.close()
        env.pair.clear_faults()
    env.runs += 1
    return Run(plan, env.pair.journal.events(since=since), before, env.orders(), client.policies)


def verdicts(result: Run) -> dict[str, Verdict]:
    """Every oracle the client's declared policies call for."""
    policies = result.policies
    events = result.events
    found: dict[str, Verdict] = {}
    if "retry" in policies:
        found["retry"] = check_retry(events, policies["retry"])
        effects = [
            {"key": o.get("key"), "method": "POST /orders", "order": o["id"]}
            for o in result.orders[result.orders_before :]
        ]
        found["idempotency"] = check_idempotency(events, policies["retry"], effects=effects)
    if "breaker" in policies:
        found["breaker"] = check_breaker(events, policies["breaker"])
    if "fallback" in policies:
        found["fallback"] = check_fallback(events, policies["fallback"])
    if "deadline" in policies:
        found["deadline"] = check_deadline(events, policies["deadline"])
    return found


def search_and_shrink(
    strategy: Any,
    caught: Callable[[FaultPlan], bool],
    *,
    min_duration: float,
    max_runs: int = 40,
) -> tuple[FaultPlan, int]:
    """Search plans until ``caught`` holds, then shrink (drop steps, shorten windows on the
    plans' own 0.1 s grid, no softening: every candidate is a real run and a milder fault
    catches the bug only sometimes). Answers are memoised per plan (a real network is not
    perfectly repeatable, and the shrinker must see one answer per plan), and a plan is kept
    only if it is caught twice: one on a timing edge would not replay. Returns the plan and
    how many distinct plans were run."""
    seen: dict[str, bool] = {}

    def once(plan: FaultPlan) -> bool:
        key = plan.dumps()
        if key not in seen:
            seen[key] = caught(plan)
        return seen[key]

    robust: dict[str, bool] = {}

    def twice(plan: FaultPlan) -> bool:
        key = plan.dumps()
        if key not in robust:
            robust[key] = once(plan) and caught(plan)
        return robust[key]

    found = find(strategy, once, settings=SEARCH)
    plan = minimize(
        found, twice, max_runs=max_runs, quantum=0.1, min_duration=min_duration, soften=False
    )
    return plan, len(seen)
