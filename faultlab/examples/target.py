"""The bundled target: the calc service with the reference resilient client."""

from __future__ import annotations

from typing import Any

from faultlab import transports
from faultlab.examples.resilient import CarelessCalc, ResilientCalc, ResilientConfig
from faultlab.suites.target import Probe, Target

__all__ = ["calc", "careless_calc"]

PROTOCOLS = ("jsonrpc", "xmlrpc", "msgpackrpc", "binrpc", "rest", "grpc")


def _client(faultlab_client: Any, journal: Any) -> ResilientCalc:
    return ResilientCalc(faultlab_client, ResilientConfig(), journal=journal)


def _call(resilient: ResilientCalc, probe: Probe) -> Any:
    return resilient.call(probe.method, *probe.args, idempotent=probe.idempotent)


def _ceiling(config: ResilientConfig, k: int) -> float:
    return min(config.max_backoff, config.initial_backoff * config.multiplier ** (k - 1))


def policies(config: ResilientConfig) -> dict[str, Any]:
    """What :class:`ResilientCalc` declares, in the oracles' terms."""
    from faultlab.oracles import Bounds, BreakerPolicy, DeadlinePolicy, RetryPolicy

    wait = Bounds(
        lower=lambda k: (1 - config.jitter) * _ceiling(config, k),
        upper=lambda k: _ceiling(config, k),
        text=f"exponential {config.initial_backoff:g} s x{config.multiplier:g} up to "
        f"{config.max_backoff:g} s, {config.jitter:.0%} jitter",
    )
    return {
        "retry": RetryPolicy(
            max_attempts=config.max_attempts,
            wait=wait,
            deadline=config.deadline,
            deadline_mode="before",
            non_idempotent=frozenset({"counter.incr"}),
            name="resilient-calc retry",
        ),
        "breaker": BreakerPolicy(
            fail_max=config.breaker_fail_max,
            reset_timeout=config.breaker_reset_timeout,
            half_open_max=1,
            name="resilient-calc breaker",
        ),
        "deadline": DeadlinePolicy(deadline=config.deadline, name="resilient-calc deadline"),
    }


def calc() -> Target:
    available = tuple(
        t.scheme for t in transports.all_transports() if t.unavailable_reason() is None
    )
    config = ResilientConfig()
    return Target(
        name="calc",
        service="faultlab.examples.calc:Calc",
        service_v2="faultlab.examples.calc:CalcV2",
        protocols=PROTOCOLS,
        transports=available,
        probes=(
            Probe("add", (2, 3), 5),
            Probe("add", (0.5, 0.25), 0.75),
            Probe("echo", (["a", 1, None],), ["a", 1, None]),
            Probe("about", (), {"service": "calc", "version": 1}),
            Probe("counter.incr", (1,), None, idempotent=False, check_result=False),
        ),
        client=_client,
        call=_call,
        policies=policies(config),
    )


def careless_calc() -> Target:
    """The calc target with :class:`CarelessCalc`: declares the same policies, breaks them."""
    import dataclasses

    def client(faultlab_client: Any, journal: Any) -> CarelessCalc:
        return CarelessCalc(faultlab_client, ResilientConfig(), journal=journal)

    return dataclasses.replace(calc(), name="careless-calc", client=client)
