"""No fire-and-forget tasks: a proxy owns its clients still connecting upstream, the engine
owns the API's shielded handlers; each is awaited or cancelled when its owner closes."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from faultlab.proxy import engine as engine_module
from faultlab.proxy.engine import ProxyEngine
from faultlab.proxy.proxy import Proxy, SocketEndpoint

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")


def _wait_for(predicate: object, timeout: float = 5.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_disable_cancels_clients_still_connecting_upstream(
    engine: ProxyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def never(self: Proxy, uri: str) -> SocketEndpoint:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    monkeypatch.setattr(Proxy, "_open_socket", never)
    handle = engine.create("hang", upstream="127.0.0.1:9")
    proxy = engine.run(lambda: engine.get("hang"))
    host, port = handle.listen.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as client:
        _wait_for(lambda: engine.run(lambda: len(proxy._accepting)) == 1)
        handle.disable()
        assert engine.run(lambda: len(proxy._accepting)) == 0
        client.settimeout(5)
        assert client.recv(1) == b""  # the proxy closed the client it was connecting
    handle.delete()


def test_engine_close_waits_for_its_tasks() -> None:
    finished: list[str] = []

    async def work() -> None:
        await asyncio.sleep(0.2)
        finished.append("done")

    engine = ProxyEngine(seed=1)
    engine.run(lambda: engine.spawn(work()))
    engine.close()
    assert finished == ["done"]


def test_engine_close_cancels_tasks_that_do_not_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "TASK_DRAIN_TIMEOUT", 0.1)
    cancelled: list[bool] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    engine = ProxyEngine(seed=1)
    engine.run(lambda: engine.spawn(forever()))
    start = time.monotonic()
    engine.close()
    assert cancelled == [True]
    assert time.monotonic() - start < 5


def test_api_handlers_that_bind_run_in_engine_owned_tasks(
    engine: ProxyEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faultlab.proxy import api

    spawned: list[str] = []
    spawn = engine.spawn

    def recording_spawn(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        spawned.append(coro.__qualname__)
        return spawn(coro)

    monkeypatch.setattr(engine, "spawn", recording_spawn)
    body = b'{"name": "owned", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}'
    reply = engine.call(lambda: api.handle(engine, "POST", "/proxies", body, {}))
    assert reply.status == 201
    assert spawned == ["_run"]  # the shielded create: owned by the engine, awaited by close
    assert engine.call(lambda: api.handle(engine, "GET", "/proxies", b"", {})).status == 200
    assert spawned == ["_run"]  # a read binds nothing: no task at all
    engine.delete("owned")
