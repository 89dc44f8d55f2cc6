"""Half-open connections: clients that start a request and then go quiet.

Half the connections send part of a request and close their write side (FIN) without ever
reading; the other half connect and send nothing. A server should close them (a read
timeout, or the EOF mid-request) rather than hold a worker for each until it runs out.
"""

from __future__ import annotations

import socket

from faultlab.suites.hostile._net import HELD, peer_gone, send_all
from faultlab.suites.hostile.base import Attack, AttackContext, AttackReport

__all__ = ["HALF_OPEN"]


def _partial(ctx: AttackContext) -> bytes:
    wire = ctx.wire
    if wire.http:
        head = f"POST {wire.path} HTTP/1.1\r\nHost: {wire.host}\r\nContent-Length: 100\r\n\r\n"
        return head.encode() + b"{"
    if wire.kind == "h2":
        return b"PRI * HTTP/2.0\r\n"
    frame = wire.frame(wire.body("half-open"))
    return frame[: max(1, len(frame) // 2)]


def run(ctx: AttackContext) -> AttackReport:
    report = AttackReport()
    partial = _partial(ctx)
    with ctx.sockets() as socks:
        kinds: list[tuple[socket.socket, str]] = []
        for i in range(ctx.limits.half_open_connections):
            if ctx.over():
                break
            try:
                sock = socks.connect()
            except OSError as exc:
                report.answer("refused", type(exc).__name__)
                continue
            if i % 2 == 0:
                send_all(sock, partial, ctx.limits.connect_timeout)
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                kinds.append((sock, "partial request, then FIN"))
            else:
                kinds.append((sock, "silent"))
            report.counts["connections"] += 1
        ctx.wait(ctx.limits.half_open_duration)
        for sock, kind in kinds:
            answer = peer_gone(sock) or HELD
            report.answer(answer, kind)
            report.counts[f"{kind}: {answer}"] += 1
    return report


HALF_OPEN = Attack("half_open", False, run, __doc__ or "")
