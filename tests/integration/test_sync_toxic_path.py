"""The synchronous toxic path (``Toxic.pass_now``): a chunk every active toxic passes at once
is written inside the read callback, with the same journal as the task path; a chunk that
one toxic must hold goes on from that toxic, and order is kept across both paths.

Real sockets through a real proxy; the processor task is counted by wrapping
``Link._process`` (the only way to see which path a chunk took).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from faultlab.proxy import link as link_module
from faultlab.proxy.engine import ProxyEngine, ProxyHandle
from tests.integration.toxic_helpers import EchoServer, connect, recv_exactly

SEED = 11


@pytest.fixture
def engine() -> Iterator[ProxyEngine]:
    with ProxyEngine(seed=SEED) as eng:
        yield eng


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer() as server:
        yield server


@pytest.fixture
def processed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """For each chunk the processor task took: the chain position it started at."""
    seen: list[int] = []
    entered: dict[int, Any] = {}  # holds each chunk, so no id is reused by a later one
    original = link_module.Link._emit_from

    async def counting(self: Any, chain: Any, position: int, chunk: Any) -> None:
        if id(chunk) not in entered:  # the processor's call, not a stage's emit
            entered[id(chunk)] = chunk
            seen.append(position)
        await original(self, chain, position, chunk)

    monkeypatch.setattr(link_module.Link, "_emit_from", counting)
    return seen


def round_trips(sock: socket.socket, count: int) -> list[bytes]:
    got = []
    for i in range(count):
        payload = b"%05d" % i
        sock.sendall(payload)
        got.append(recv_exactly(sock, len(payload)))
    return got


def delays(proxy: ProxyHandle) -> list[dict[str, Any]]:
    return [e for e in proxy.events(kinds=["fault"]) if e["decision"] == "delay"]


def test_zero_latency_passes_inside_the_read_callback_with_its_journal(
    engine: ProxyEngine, echo: EchoServer, processed: list[int]
) -> None:
    proxy = engine.create("p", upstream=echo.upstream)
    proxy.add_toxic("latency", stream="downstream", latency=0)
    with connect(proxy.listen) as sock:
        got = round_trips(sock, 50)
    assert got == [b"%05d" % i for i in range(50)]
    assert delays(proxy) == [], "a delay of 0 ms changed nothing: no fault is journaled"
    active = [e for e in proxy.events(kinds=["fault"]) if e["decision"] == "toxicity"]
    assert [e["active"] for e in active] == [True], "the toxic met the link (its draw is there)"
    assert processed == [], "a 0 ms latency should not send chunks through the processor task"


def test_jitter_keeps_the_task_path_and_its_draws(
    engine: ProxyEngine, echo: EchoServer, processed: list[int]
) -> None:
    proxy = engine.create("p", upstream=echo.upstream)
    proxy.add_toxic("latency", stream="downstream", latency=5, jitter=2)
    with connect(proxy.listen) as sock:
        round_trips(sock, 10)
    assert [3 <= e["delay_ms"] < 7 for e in delays(proxy)] == [True] * 10
    assert len(processed) >= 10, "a jittered latency draws in process(), never in pass_now"


def test_a_chunk_held_by_a_later_toxic_goes_on_from_it_in_order(
    engine: ProxyEngine, echo: EchoServer, processed: list[int]
) -> None:
    proxy = engine.create("p", upstream=echo.upstream)
    proxy.add_toxic("latency", name="first", stream="upstream", latency=0)
    proxy.add_toxic("latency", name="second", stream="upstream", latency=40)
    started = time.monotonic()
    with connect(proxy.listen) as sock:
        got = round_trips(sock, 5)
    assert time.monotonic() - started >= 5 * 0.04 - 0.01
    assert got == [b"%05d" % i for i in range(5)]
    by_toxic: dict[str, list[int]] = {}
    for event in delays(proxy):
        by_toxic.setdefault(event["toxic"], []).append(event["delay_ms"])
    assert by_toxic == {"second": [40] * 5}, "the 0 ms stage changed nothing; the second acted"
    assert processed, "the 40 ms stage must hold chunks in the processor task"
    assert set(processed) == {1}, "the 0 ms stage passed each chunk at once; resumed at the second"
