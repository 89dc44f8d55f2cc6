"""The bundled target: the calc service with the reference resilient client."""

from __future__ import annotations

from typing import Any

from faultlab import transports
from faultlab.examples.resilient import ResilientCalc, ResilientConfig
from faultlab.suites.target import Probe, Target

__all__ = ["calc"]

PROTOCOLS = ("jsonrpc", "xmlrpc", "msgpackrpc", "binrpc", "rest", "grpc")


def _client(faultlab_client: Any, journal: Any) -> ResilientCalc:
    return ResilientCalc(faultlab_client, ResilientConfig(), journal=journal)


def _call(resilient: ResilientCalc, probe: Probe) -> Any:
    return resilient.call(probe.method, *probe.args, idempotent=probe.idempotent)


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
        policies={"resilient": config},
    )
