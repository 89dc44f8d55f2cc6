"""Connection flood: open as many connections as allowed at once and hold them.

A server with a thread per connection and no bound grows with every one (threads, stacks,
buffers); a good one keeps answering the canary, and may refuse or close the excess.
Bounded by ``flood_connections`` and by this process's own file-descriptor limit.
"""

from __future__ import annotations

import resource

from faultlab.suites.hostile._net import HELD, peer_gone
from faultlab.suites.hostile.base import Attack, AttackContext, AttackReport

__all__ = ["FLOOD", "fd_room"]


def fd_room(reserve: int = 128) -> int:
    """How many more sockets this process may open, keeping ``reserve`` for everything else."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(0, soft - reserve) if soft != resource.RLIM_INFINITY else 65536


def run(ctx: AttackContext) -> AttackReport:
    report = AttackReport()
    wanted = min(ctx.limits.flood_connections, fd_room())
    report.counts["wanted"] = wanted
    with ctx.sockets() as socks:
        for _ in range(wanted):
            if ctx.over():
                break
            try:
                socks.connect()
            except TimeoutError:
                report.answer("timeout", "connect")
            except OSError as exc:
                report.answer("refused", type(exc).__name__)
            else:
                report.counts["connections"] += 1
        ctx.wait(ctx.limits.flood_hold)
        for sock in socks.open:
            report.answer(peer_gone(sock) or HELD)
    return report


FLOOD = Attack("flood", False, run, __doc__ or "")
