"""Hostile clients: the target's server, attacked while a canary keeps calling it, stays up,
answers bad input with a protocol error or a close, keeps the canary within its budget and
its memory bounded (H1-H5, :mod:`faultlab.suites.hostile`).

The attacks go straight to the server (not through the proxy), over tcp on loopback. A
Python factory is served in a subprocess so its RSS can be measured; a Command's process
is measured too; an Address's RSS is not (H5 vacuous). The budget and bounds come from the
target's ``policies["hostile"]`` (a ``HostileBudget``) and ``policies["hostile_limits"]``
(a ``HostileLimits``), else the defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest


def _canary(pair: Any, target: Any, protocol: str) -> Callable[[], object]:
    """One deterministic probe, made straight to the server with the target's own client
    (``connect``) or faultlab's."""
    from faultlab.suites.hostile import rpc_canary

    probes = [p for p in target.probes if p.idempotent] or list(target.probes)
    if not probes:
        pytest.skip("the target declares no probe for the canary to call")
    probe = probes[0]
    if target.connect is not None:
        client = target.connect(pair.server_url)
        return lambda: target.invoke(client, probe)
    expected = probe.expected if probe.check_result else None
    return rpc_canary(pair.server.address, protocol, probe.method, *probe.args, expected=expected)


@pytest.fixture
def hostile_pair(
    faultlab_lab: Any, faultlab_target: Any, faultlab_protocol: str, faultlab_transport: str
) -> Iterator[Any]:
    """A pair of its own (attacks may leave the server changed), a factory in a subprocess."""
    service = faultlab_target.service
    backend = "subprocess" if isinstance(service, str) else None
    pair = faultlab_lab.pair(
        service, protocol=faultlab_protocol, transport=faultlab_transport, backend=backend
    )
    yield pair
    pair.close()


@pytest.mark.faultlab(target=True, transports=["tcp"])
def test_server_survives_hostile_clients(
    hostile_pair: Any,
    faultlab_target: Any,
    faultlab_protocol: str,
    faultlab_seed: int,
    faultlab_lab: Any,
    faultlab_check: Any,
) -> None:
    from faultlab.suites.hostile import HostileBudget, HostileLimits, check_hostile, run_hostile

    budget = faultlab_target.policies.get("hostile")
    limits = faultlab_target.policies.get("hostile_limits")
    result = run_hostile(
        hostile_pair.server.address,
        protocol=faultlab_protocol,
        canary=_canary(hostile_pair, faultlab_target, faultlab_protocol),
        budget=budget if isinstance(budget, HostileBudget) else None,
        limits=limits if isinstance(limits, HostileLimits) else None,
        pid=getattr(hostile_pair.server, "pid", None),
        seed=faultlab_seed,
        journal=faultlab_lab.journal,
    )
    faultlab_check(check_hostile(result))
