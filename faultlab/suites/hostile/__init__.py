"""The hostile-client suite: attack a server while a well-behaved canary keeps calling.

``run_hostile(target, protocol=..., canary=...)`` runs slowloris, slow read, oversized and
malformed input, a connection flood, half-open connections and (test-scale) HTTP/2 rapid
reset and CONTINUATION floods against a loopback server, journaling every canary call,
attack phase and RSS sample; ``check_hostile(result)`` judges H1-H5 against a
:class:`HostileBudget`. See ``docs/hostile.md``.
"""

from __future__ import annotations

from faultlab.suites.hostile._net import HostileError, NotLoopback
from faultlab.suites.hostile.canary import http_canary, rpc_canary
from faultlab.suites.hostile.config import HostileBudget, HostileLimits
from faultlab.suites.hostile.oracle import H1, H2, H3, H4, H5, check_hostile, hostile_runs
from faultlab.suites.hostile.run import ATTACKS, HostileResult, run_hostile

__all__ = [
    "ATTACKS",
    "H1",
    "H2",
    "H3",
    "H4",
    "H5",
    "HostileBudget",
    "HostileError",
    "HostileLimits",
    "HostileResult",
    "NotLoopback",
    "check_hostile",
    "hostile_runs",
    "http_canary",
    "rpc_canary",
    "run_hostile",
]
