"""Toxics that pass everything at once (``Toxic.passes_everything``: noop, a 0 ms latency)
are left out of the data path: chunks take the no-toxic fast path, the toxic's draw is still
journaled, and an update that makes it act puts it back in the chain.

Real sockets through a real proxy; which path a chunk took is seen by wrapping
``Link._emit_from`` (the processor's entry into the chain).
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
    """For each chunk the processor task took: the chain position it started at (always 0)."""
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


def test_zero_latency_takes_the_fast_path_and_its_draw_is_journaled(
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


@pytest.mark.parametrize("toxic", [("noop", {}), ("latency", {"latency": -5, "jitter": 0})])
def test_toxics_that_cannot_act_stay_out_of_the_path(
    engine: ProxyEngine, echo: EchoServer, processed: list[int], toxic: tuple[str, Any]
) -> None:
    proxy = engine.create("p", upstream=echo.upstream)
    proxy.add_toxic(toxic[0], stream="upstream", **toxic[1])
    with connect(proxy.listen) as sock:
        assert round_trips(sock, 20) == [b"%05d" % i for i in range(20)]
    assert processed == []


def test_an_update_that_makes_it_act_puts_it_back_in_the_chain(
    engine: ProxyEngine, echo: EchoServer, processed: list[int]
) -> None:
    proxy = engine.create("p", upstream=echo.upstream)
    proxy.add_toxic("latency", name="lag", stream="downstream", latency=0)
    with connect(proxy.listen) as sock:
        round_trips(sock, 3)
        assert processed == []
        proxy.update_toxic("lag", latency=30)
        started = time.monotonic()
        round_trips(sock, 3)
        assert time.monotonic() - started >= 3 * 0.03 - 0.01
        proxy.update_toxic("lag", latency=0)
        round_trips(sock, 3)
    assert len(processed) == 3, "only the chunks met while the latency was 30 ms were held"
    assert [e["delay_ms"] for e in delays(proxy)] == [30, 30, 30]


def test_jitter_keeps_the_task_path_and_its_draws(
    engine: ProxyEngine, echo: EchoServer, processed: list[int]
) -> None:
    proxy = engine.create("p", upstream=echo.upstream)
    proxy.add_toxic("latency", stream="downstream", latency=5, jitter=2)
    with connect(proxy.listen) as sock:
        round_trips(sock, 10)
    assert [3 <= e["delay_ms"] < 7 for e in delays(proxy)] == [True] * 10
    assert len(processed) == 10, "a jittered latency draws per chunk in the processor"


def test_a_zero_stage_beside_an_acting_one_is_skipped_in_order(
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
    assert processed == [0] * 5, "each chunk entered the chain once, at the acting stage"
