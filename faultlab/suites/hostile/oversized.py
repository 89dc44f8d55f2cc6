"""Oversized input: a body (and, over HTTP, a header) far beyond any sane limit.

Three inputs, each on its own connection: a huge declared ``Content-Length`` (or length
prefix) followed by up to ``oversized_bytes`` of body; over HTTP also a chunked body that
never ends and a header line of ``oversized_header_bytes``. A server with a limit answers
(413, 431, 400, a protocol error) or closes early; one without reads it all into memory.
"""

from __future__ import annotations

import socket
import struct

from faultlab.suites.hostile._net import peer_gone, read_answer, send_all
from faultlab.suites.hostile.base import Attack, AttackContext, AttackReport

__all__ = ["OVERSIZED"]

CHUNK = 64 * 1024
HUGE = 2**31 - 1


def _inputs(ctx: AttackContext) -> list[tuple[str, bytes, bytes]]:
    """(description, head, the byte repeated as the body)."""
    wire = ctx.wire
    if wire.http:
        start = f"POST {wire.path} HTTP/1.1\r\nHost: {wire.host}\r\n"
        long_header = b"X-Big: " + b"a" * ctx.limits.oversized_header_bytes + b"\r\n\r\n"
        return [
            (f"Content-Length: {HUGE}", f"{start}Content-Length: {HUGE}\r\n\r\n".encode(), b"x"),
            (
                "chunked body without end",
                f"{start}Transfer-Encoding: chunked\r\n\r\n".encode(),
                b"c",
            ),
            (f"{ctx.limits.oversized_header_bytes}-byte header", start.encode() + long_header, b""),
        ]
    if wire.kind == "h2":
        return []  # the HTTP/2 attacks cover an h2 server's limits
    if wire.kind == "length-prefix":
        return [(f"length prefix {HUGE}", struct.pack(">I", HUGE), b"x")]
    if wire.kind == "msgpack-stream":  # bin 32 announcing HUGE bytes
        return [
            (
                f"msgpack bin32 of {HUGE}",
                b"\xdd\x00\x00\x00\x01\xc6" + struct.pack(">I", HUGE),
                b"x",
            )
        ]
    return [("a line that never ends", b"", b"x")]


def _body(fill: bytes) -> bytes:
    if fill == b"c":  # one 64 KiB chunk of a chunked body
        return b"%x\r\n" % (CHUNK - 16) + b"c" * (CHUNK - 16) + b"\r\n"
    return fill * CHUNK


def _send_one(ctx: AttackContext, sock: socket.socket, head: bytes, fill: bytes) -> str | None:
    """Send head then body until the server reacts or the bound is reached."""
    if (stopped := send_all(sock, head, ctx.limits.answer_timeout)) is not None:
        return stopped
    if not fill:
        return None
    chunk, sent = _body(fill), 0
    while sent < ctx.limits.oversized_bytes and not ctx.over():
        if (gone := peer_gone(sock)) is not None:
            return None if gone == "answered" else gone
        if (stopped := send_all(sock, chunk, ctx.limits.answer_timeout)) is not None:
            return stopped
        sent += len(chunk)
    return None


def run(ctx: AttackContext) -> AttackReport:
    report = AttackReport()
    for description, head, fill in _inputs(ctx):
        if ctx.over():
            break
        with ctx.sockets() as socks:
            try:
                sock = socks.connect()
            except OSError as exc:
                report.answer("refused", f"{description}: {type(exc).__name__}")
                continue
            stopped = _send_one(ctx, sock, head, fill)
            report.counts["inputs"] += 1
            if stopped is not None:
                # the server hung up or stopped reading; its answer may be in our buffer
                answer = read_answer(sock, 0.5, http=ctx.wire.http)
                report.answer(
                    answer if answer.startswith(("http_", "answered")) else stopped, description
                )
                continue
            try:
                sock.shutdown(socket.SHUT_WR)  # the body ends here: the server must decide
            except OSError:
                pass
            report.answer(
                read_answer(sock, ctx.limits.answer_timeout, http=ctx.wire.http), description
            )
    return report


OVERSIZED = Attack("oversized", True, run, __doc__ or "")
