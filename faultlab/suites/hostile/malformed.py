"""Malformed input: well-formed requests drawn from the codec's strategy, then broken.

A few classic inputs first (nesting far past any recursion limit; XML entity expansion;
over HTTP, broken request heads). Then values from the protocol codec's Hypothesis
strategy (``faultlab.strategies.values``),
drawn with the run's seed; each is encoded as a real request, then one seeded mutation
breaks it (truncated, bytes flipped, garbage spliced in, a lying length prefix, a bad HTTP
head). Each goes on its own connection, the write side is closed, and the answer is read:
a protocol error or a close is right, a 5xx or silence is not.
"""

from __future__ import annotations

import random
import socket
import struct
from typing import Any

from faultlab.suites.hostile._net import read_answer, send_all
from faultlab.suites.hostile.base import Attack, AttackContext, AttackReport
from faultlab.suites.hostile.wire import Wire

__all__ = ["MALFORMED", "draw_values", "malformed_inputs"]


def draw_values(codec: str, count: int, seed: int) -> list[Any]:
    """``count`` values from ``codec``'s strategy, the same ones for the same seed."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    from faultlab.strategies.values import values

    drawn: list[Any] = []

    @hseed(seed)
    @settings(
        max_examples=max(1, count),
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(values(codec))
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    return drawn[:count]


def _mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    choice = rng.randrange(4)
    if choice == 0 and len(data) > 1:
        cut = rng.randrange(1, len(data))
        return f"truncated at {cut}/{len(data)}", data[:cut]
    if choice == 1 and data:
        out = bytearray(data)
        for _ in range(max(1, len(out) // 16)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        return "bits flipped", bytes(out)
    if choice == 2:
        at = rng.randrange(len(data) + 1)
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 32)))
        return f"{len(junk)} garbage bytes at {at}", data[:at] + junk + data[at:]
    return "replaced by garbage", bytes(rng.randrange(256) for _ in range(max(1, len(data))))


_BAD_HEADS = (
    ("request line without version", b"GET /\r\n\r\n"),
    ("NUL in the method", b"G\x00T / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("header without a colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\n"),
    (
        "two different Content-Lengths",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
    ),
    (
        "bad chunk size",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    ),
    ("negative Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n"),
    ("HTTP/9.9", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n"),
    ("obsolete line folding", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n"),
)


DEPTH = 100_000
"""How deep the nesting input goes: far past any recursive parser's stack."""


def classic_inputs(wire: Wire) -> list[tuple[str, bytes]]:
    """Inputs every parser of the codec has met in the wild: nesting far past the recursion
    limit, and (XML) entity expansion. Each is a well-framed request."""
    codec = wire.codec()
    if codec == "xmlrpc":
        entities = b"".join(
            b'<!ENTITY %c "%s">' % (98 + i, b"&%c;" % (97 + i) * 10) for i in range(9)
        )
        laughs = (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">' + entities + b"]>"
            b"<methodCall><methodName>echo</methodName><params><param><value><string>&j;"
            b"</string></value></param></params></methodCall>"
        )
        deep = (
            b"<methodCall><methodName>echo</methodName><params><param>"
            + b"<value><array><data>" * (DEPTH // 5)
            + b"</data></array></value>" * (DEPTH // 5)
            + b"</param></params></methodCall>"
        )
        payloads = [("entity expansion (billion laughs)", laughs), ("nested arrays", deep)]
    elif codec == "msgpack":
        body = wire.body([None])  # a real request whose one parameter becomes a deep array
        at = body.rfind(b"\x91\xc0")
        nested = b"\x91" * DEPTH + b"\xc0"
        payloads = (
            [("nested arrays", body[:at] + b"\x91" + nested + body[at + 2 :])] if at >= 0 else []
        )
    else:
        payloads = [("nested arrays", b"[" * DEPTH + b"]" * DEPTH)]
        if wire.protocol != "rest" and wire.protocol not in ("http", "https"):
            head = b'{"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ['
            payloads = [("nested arrays", head + b"[" * DEPTH + b"]" * DEPTH + b"]}")]
    return [
        (f"{what}, {len(data)} bytes", wire.http_request(data) if wire.http else wire.frame(data))
        for what, data in payloads
    ]


def malformed_inputs(wire: Wire, count: int, seed: int) -> list[tuple[str, bytes]]:
    """``count`` broken inputs for ``wire`` (description, bytes), the same for one seed: a
    few classic ones (:func:`classic_inputs`, bad HTTP heads), the rest drawn and broken."""
    from faultlab import _seed

    rng = _seed.derive(seed, "hostile", "malformed", wire.protocol)
    out: list[tuple[str, bytes]] = classic_inputs(wire)[: max(0, count // 4)]
    if wire.http:
        out.extend(_BAD_HEADS[: max(0, count // 3)])
    for value in draw_values(wire.codec(), count - len(out), seed):
        body = wire.body(value)
        how, broken = _mutate(body, rng)
        if wire.http:  # a broken body in a well-framed request: the protocol must answer
            out.append((f"body {how}", wire.http_request(broken)))
        elif wire.kind == "length-prefix" and rng.random() < 0.3:
            lie = len(body) + rng.randrange(1, 64)
            out.append(
                (f"length prefix says {lie}, {len(body)} sent", struct.pack(">I", lie) + body)
            )
        else:
            out.append((how, wire.frame(broken)))
    return out


def run(ctx: AttackContext) -> AttackReport:
    report = AttackReport()
    if ctx.wire.kind == "h2":
        report.counts["skipped_h2"] += 1
        return report
    for description, data in malformed_inputs(ctx.wire, ctx.limits.malformed_frames, ctx.seed):
        if ctx.over():
            break
        with ctx.sockets() as socks:
            try:
                sock = socks.connect()
            except OSError as exc:
                report.answer("refused", f"{description}: {type(exc).__name__}")
                continue
            report.counts["inputs"] += 1
            stopped = send_all(sock, data, ctx.limits.answer_timeout)
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            answer = read_answer(sock, ctx.limits.answer_timeout, http=ctx.wire.http)
            report.answer(stopped if answer == "timeout" and stopped else answer, description)
    return report


MALFORMED = Attack("malformed", True, run, __doc__ or "")
