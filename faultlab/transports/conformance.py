"""Conformance checks for any transport, usable without pytest (like anyio's ``check_*``).

A third-party transport registered by entry point can prove itself with the
same checks faultlab's own transports pass. Each function raises
``AssertionError`` with a message naming what broke.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from faultlab.errors import ClosedResourceError, EndOfStream, TransportTimeout
from faultlab.streams import ByteStream, Listener, MessageStream, Stream, receive_exactly

__all__ = [
    "SIZES",
    "check_close_semantics",
    "check_ordering",
    "check_round_trip",
    "check_timeouts",
    "connected_pair",
    "round_trip",
]

SIZES = (0, 1, 64, 64 * 1024, 1024 * 1024)


def connected_pair(
    listener: Listener[ByteStream] | Listener[MessageStream],
    connect: Callable[[], Stream],
    timeout: float = 10,
) -> tuple[Stream, Stream]:
    """(client, server) streams: accept runs in a thread while the client connects."""
    box: dict[str, Stream | BaseException] = {}

    def accept() -> None:
        try:
            box["server"] = listener.accept(timeout=timeout)
        except BaseException as exc:  # handed to the caller below
            box["server"] = exc

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    client = connect()
    thread.join(timeout)
    server = box.get("server")
    if isinstance(server, BaseException):
        client.close()
        raise server
    assert server is not None, f"accept did not return within {timeout} s"
    return client, server


def round_trip(stream: Stream, payload: bytes, timeout: float = 10) -> bytes:
    """Send ``payload`` to an echo peer and read the echo back."""
    if isinstance(stream, MessageStream):
        stream.send(payload, timeout=timeout)
        return stream.receive(timeout=timeout)
    if not payload:
        stream.send(payload, timeout=timeout)
        return b""
    # Send and receive concurrently: a 1 MiB echo cannot sit in any one buffer.
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            stream.send(payload, timeout=timeout)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    try:
        echoed = receive_exactly(stream, len(payload), timeout=timeout)
    finally:
        thread.join(timeout)
    if errors:
        raise errors[0]
    return echoed


def check_round_trip(stream: Stream, sizes: tuple[int, ...] = SIZES) -> None:
    """Every size comes back byte for byte from an echo peer."""
    for size in sizes:
        payload = bytes((i * 7 + size) & 0xFF for i in range(min(size, 256))) * (size // 256 + 1)
        payload = payload[:size]
        echoed = round_trip(stream, payload)
        assert echoed == payload, f"{size}-byte round trip returned {len(echoed)} other bytes"


def check_ordering(stream: Stream, count: int = 200, *, strict: bool = True) -> None:
    """Pipelined messages come back in order (or, if not ``strict``, never invented)."""
    payloads = [f"msg-{i:05d}".encode() for i in range(count)]
    got: list[bytes] = []
    if isinstance(stream, MessageStream):
        reader_error: list[BaseException] = []

        def reader() -> None:
            try:
                while len(got) < count:
                    got.append(stream.receive(timeout=2 if not strict else 10))
            except TransportTimeout:
                if strict:
                    reader_error.append(TransportTimeout("ordering: echo stopped"))
            except BaseException as exc:
                reader_error.append(exc)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        for p in payloads:
            stream.send(p)
        thread.join(30)
        if reader_error:
            raise reader_error[0]
    else:
        stream.send(b"".join(payloads))
        data = receive_exactly(stream, sum(map(len, payloads)))
        got = [data[i : i + 9] for i in range(0, len(data), 9)]
    if strict:
        assert got == payloads, "messages were reordered or lost"
    else:
        assert set(got) <= set(payloads), "the transport invented messages"
        assert len(got) == len(set(got)), "the transport duplicated messages"


def check_close_semantics(client: Stream, server: Stream) -> None:
    """Clean close: the peer sees EndOfStream; our own use after close is ClosedResourceError."""
    client.close()
    client.close()  # idempotent
    started = time.monotonic()
    try:
        server.receive(timeout=5)
    except EndOfStream:
        pass
    else:
        raise AssertionError("peer received data after a clean close, expected EndOfStream")
    assert time.monotonic() - started < 5, "EOF took too long to arrive"
    for op in (lambda: client.send(b"x"), lambda: client.receive(timeout=1)):
        try:
            op()
        except ClosedResourceError:
            continue
        raise AssertionError("use after close did not raise ClosedResourceError")
    server.close()


def check_timeouts(stream: Stream, timeout: float = 0.2) -> float:
    """An idle receive times out after at least ``timeout``; returns the time it took."""
    started = time.monotonic()
    try:
        stream.receive(timeout=timeout)
    except TransportTimeout:
        elapsed = time.monotonic() - started
        assert elapsed >= timeout * 0.95, f"timed out early: {elapsed:.3f} s < {timeout} s"
        return elapsed
    raise AssertionError("an idle receive returned data instead of timing out")
