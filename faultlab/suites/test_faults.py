"""Latency, disconnects and black holes: the client's retry, deadline, breaker and idempotency
behave as declared (checked by the oracles over the journal)."""

from __future__ import annotations

from typing import Any

import pytest

from faultlab.suites._support import mark, since

LATENCY = [
    {"type": "latency", "stream": "downstream", "latency": 50},
    {"type": "latency", "stream": "downstream", "latency": 500},  # beyond the attempt timeout
]
DISCONNECTS = [
    {"type": "reset_peer", "stream": "upstream", "timeout": 0},
    {"type": "reset_peer", "stream": "downstream", "timeout": 0},
    {"type": "limit_data", "stream": "downstream", "bytes": 4},
    {"type": "slow_close", "stream": "downstream", "delay": 50},
]
BLACK_HOLES = [
    {"type": "partition", "stream": "upstream"},
    {"type": "partition", "stream": "downstream"},
    {"type": "timeout", "stream": "downstream", "timeout": 0},
]


def _apply(pair: Any, fault: dict[str, Any]) -> None:
    attrs = {k: v for k, v in fault.items() if k not in ("type", "stream")}
    pair.proxy.add_toxic(fault["type"], stream=fault["stream"], **attrs)


def _calls(pair: Any, target: Any, *, with_side_effects: bool, limit: int | None = None) -> None:
    """One logical call per probe (``limit``: only the first few, for faults that make every
    call wait out its deadline)."""
    resilient = target.resilient_for(pair)
    probes = [p for p in target.probes if p.idempotent or with_side_effects]
    for probe in probes[:limit]:
        try:
            pair.run(
                lambda _c, p=probe: target.invoke(resilient, p),
                label=probe.method,
                method=probe.method,
                idempotent=probe.idempotent,
            )
        except Exception as exc:
            assert target.is_transient(exc), (
                f"{probe.method} raised {type(exc).__name__}: {exc}: not a declared transient error"
            )


def _policy(target: Any, name: str) -> Any:
    policy = target.policies.get(name)
    if policy is None:
        pytest.skip(f"the target declares no {name} policy")
    return policy


@pytest.mark.faultlab(target=True, faults=LATENCY)
def test_latency_respects_retry_and_deadline(
    faultlab_pair: Any, faultlab_target: Any, faultlab_fault: dict[str, Any], faultlab_check: Any
) -> None:
    start = mark(faultlab_pair)
    _apply(faultlab_pair, faultlab_fault)
    slow = faultlab_fault["latency"] >= 500
    _calls(faultlab_pair, faultlab_target, with_side_effects=False, limit=1 if slow else None)
    events = since(faultlab_pair, start)
    from faultlab.oracles import check_deadline, check_retry

    faultlab_check(check_retry(events, _policy(faultlab_target, "retry")))
    faultlab_check(check_deadline(events, _policy(faultlab_target, "deadline")))


@pytest.mark.faultlab(target=True, faults=DISCONNECTS)
def test_disconnects_never_duplicate_side_effects(
    faultlab_pair: Any, faultlab_target: Any, faultlab_fault: dict[str, Any], faultlab_check: Any
) -> None:
    if faultlab_target.effects is None and (
        not faultlab_target.effects_method or faultlab_target.connect is not None
    ):
        pytest.skip("the target exposes no side-effect record")
    start = mark(faultlab_pair)
    _apply(faultlab_pair, faultlab_fault)
    _calls(faultlab_pair, faultlab_target, with_side_effects=True)
    faultlab_pair.clear_faults()
    effects = faultlab_target.read_effects(faultlab_pair)
    events = since(faultlab_pair, start)
    from faultlab.oracles import check_idempotency, check_retry

    retry = _policy(faultlab_target, "retry")
    faultlab_check(check_idempotency(events, retry, effects=effects))
    faultlab_check(check_retry(events, retry))


@pytest.mark.faultlab(target=True, faults=BLACK_HOLES)
def test_black_holes_end_by_the_deadline(
    faultlab_pair: Any, faultlab_target: Any, faultlab_fault: dict[str, Any], faultlab_check: Any
) -> None:
    start = mark(faultlab_pair)
    _apply(faultlab_pair, faultlab_fault)
    _calls(faultlab_pair, faultlab_target, with_side_effects=False, limit=1)
    events = since(faultlab_pair, start)
    from faultlab.oracles import check_deadline, check_retry

    faultlab_check(check_deadline(events, _policy(faultlab_target, "deadline")))
    faultlab_check(check_retry(events, _policy(faultlab_target, "retry")))


@pytest.mark.faultlab(target=True)
def test_breaker_opens_isolates_and_recovers(
    faultlab_pair: Any, faultlab_target: Any, faultlab_check: Any
) -> None:
    import time

    breaker = _policy(faultlab_target, "breaker")
    start = mark(faultlab_pair)
    resilient = faultlab_target.resilient_for(faultlab_pair)
    probe = next(p for p in faultlab_target.probes if p.idempotent)
    faultlab_pair.proxy.add_toxic("reset_peer", stream="upstream", timeout=0)
    for _ in range(breaker.fail_max + 3):
        try:
            faultlab_pair.run(
                lambda _c: faultlab_target.invoke(resilient, probe), method=probe.method
            )
        except Exception as exc:
            assert faultlab_target.is_transient(exc), repr(exc)
    faultlab_pair.clear_faults()
    time.sleep(breaker.reset_timeout * 1.2)
    for _ in range(3):
        faultlab_pair.run(lambda _c: faultlab_target.invoke(resilient, probe), method=probe.method)
    from faultlab.oracles import check_breaker

    faultlab_check(check_breaker(since(faultlab_pair, start), breaker))
