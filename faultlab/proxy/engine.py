"""The fault engine: proxies on an asyncio loop in a background thread, with a sync facade.

Plain synchronous tests and clients use :class:`ProxyEngine` and
:class:`ProxyHandle`; every call crosses into the loop thread and waits with a
timeout. Async code inside the loop can use :class:`~faultlab.proxy.proxy.Proxy`
directly. One seed drives every random decision; one journal records them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from faultlab._seed import new_seed
from faultlab._timers import start_precise_timers
from faultlab.errors import FaultlabError
from faultlab.journal import Journal
from faultlab.proxy.endpoints import settle_bridges
from faultlab.proxy.proxy import (
    ListenFailed,
    Proxy,
    ProxyError,
    ProxyExists,
    ProxyNotFound,
    ToxicEntry,
)
from faultlab.proxy.validate import (
    check_address,
    check_framing,
    check_name,
    check_protocol,
)

__all__ = ["ProxyEngine", "ProxyHandle", "start_proxy"]

T = TypeVar("T")
CALL_TIMEOUT = 30.0
TASK_DRAIN_TIMEOUT = 5.0


async def start_proxy(proxy: Proxy) -> None:
    """``proxy.start()``, with every way a listen can fail turned into one
    :class:`ListenFailed` that names the address, never a bare crash."""
    try:
        await proxy.start()
    except ProxyError:
        raise
    except (FaultlabError, OSError, ValueError) as exc:  # ValueError: bad IDNA, NUL, ...
        raise ListenFailed(f"listen {proxy.listen}: {exc}") from exc


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    return loop


class ProxyEngine:
    """Owns the loop thread and every proxy; close it (or use ``with``) to free all."""

    def __init__(self, *, seed: int | None = None, journal: Journal | None = None) -> None:
        self.seed = new_seed() if seed is None else seed
        self.journal = journal if journal is not None else Journal()
        self.proxies: dict[str, Proxy] = {}
        self.loop = _new_loop()
        self._thread = threading.Thread(target=self._run, daemon=True, name="faultlab-engine")
        self._ready = threading.Event()
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._thread.start()
        if not self._ready.wait(10):
            raise FaultlabError("proxy engine loop did not start within 10 s")
        self.journal.record("engine_started", seed=self.seed)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        # toxics' sleeps end at their deadline, not a millisecond early (faultlab._timers)
        timers = start_precise_timers(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            if timers is not None:
                timers.close()

    # crossing into the loop
    def call(self, fn: Callable[[], Awaitable[T]], timeout: float = CALL_TIMEOUT) -> T:
        """Run ``fn()`` (a coroutine factory) on the loop and wait for its result."""
        if self._closed:
            raise FaultlabError("proxy engine is closed")
        if threading.current_thread() is self._thread:
            raise FaultlabError("sync engine call from inside the loop: use the async API")

        async def runner() -> T:
            return await fn()

        future = asyncio.run_coroutine_threadsafe(runner(), self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise FaultlabError(f"proxy engine call timed out after {timeout:g} s") from None

    def run(self, fn: Callable[[], T], timeout: float = CALL_TIMEOUT) -> T:
        """Run a plain function on the loop thread (all proxy state lives there)."""

        async def wrapper() -> T:
            return fn()

        return self.call(wrapper, timeout)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``coro`` in a task the engine owns (on the loop): ``close`` waits for it, then
        cancels it. For work that must finish even if its caller stops waiting (a shielded
        API handler that binds or closes sockets)."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: its awaiter, if still waiting, sees it too

    # proxies (async API, on the loop)
    async def create_async(
        self,
        name: str,
        listen: str,
        upstream: str,
        *,
        enabled: bool = True,
        framing: str | None = None,
        record_chunks: bool = False,
        protocol: str | None = None,
        wire_headers: tuple[str, ...] | None = None,
        tls: Any = None,
    ) -> Proxy:
        """Add a proxy, listening unless ``enabled`` is False.

        Everything is checked before anything binds (name, addresses, framing, protocol:
        :class:`InvalidProxyRequest`; a taken name: :class:`ProxyExists`), and a
        :class:`ListenFailed` adds nothing, so a refused create leaves no state behind.
        """
        check_name(name)
        check_address(listen, "listen")
        check_address(upstream, "upstream")
        check_framing(framing)
        check_protocol(protocol)
        if name in self.proxies:
            raise ProxyExists("proxy already exists")
        proxy = Proxy(
            name,
            listen,
            upstream,
            journal=self.journal,
            seed=self.seed,
            framing=framing,
            record_chunks=record_chunks,
            protocol=protocol,
            wire_headers=wire_headers,
            tls=tls,
        )
        if enabled:
            await start_proxy(proxy)
        self.proxies[name] = proxy
        self.journal.record("proxy_created", proxy=name, listen=proxy.listen, upstream=upstream)
        return proxy

    async def delete_async(self, name: str) -> None:
        proxy = self.proxies.pop(name, None)
        if proxy is None:
            raise ProxyNotFound("proxy not found")
        await proxy.stop()
        self.journal.record("proxy_deleted", proxy=name)

    async def reset_async(self) -> None:
        """Toxiproxy's /reset: enable every proxy, remove every toxic.

        A proxy that cannot listen does not stop the others (Toxiproxy stops at it, leaving
        the rest with their toxics): every proxy is reset as far as it can be, then the first
        :class:`ListenFailed` is raised.
        """
        failure: ProxyError | None = None
        for proxy in list(self.proxies.values()):
            try:
                await start_proxy(proxy)
            except ProxyError as exc:
                failure = failure or exc
            proxy.remove_all_toxics()
        self.journal.record("reset")
        if failure is not None:
            raise failure

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ProxyNotFound("proxy not found")
        return proxy

    # sync facade
    def create(
        self,
        name: str,
        *,
        listen: str = "127.0.0.1:0",
        upstream: str,
        enabled: bool = True,
        framing: str | None = None,
        record_chunks: bool = False,
        protocol: str | None = None,
        wire_headers: tuple[str, ...] | None = None,
        tls: Any = None,
    ) -> ProxyHandle:
        """``protocol`` (jsonrpc, binrpc...) lets rpc_error and version_skew speak it;
        with ``framing="http"`` each exchange is journaled, with the headers resilience
        depends on plus ``wire_headers``. ``tls={"mode": "intercept"}`` ends the client's
        TLS with a lab certificate and opens the proxy's own upstream (see
        :class:`~faultlab.proxy.tlsintercept.TlsSettings`). ``record_chunks`` journals
        every read or frame as a ``chunk`` event (off: it costs as much as the forwarding)."""
        self.call(
            lambda: self.create_async(
                name,
                listen,
                upstream,
                enabled=enabled,
                framing=framing,
                record_chunks=record_chunks,
                protocol=protocol,
                wire_headers=wire_headers,
                tls=tls,
            )
        )
        return ProxyHandle(self, name)

    def proxy(self, name: str) -> ProxyHandle:
        self.run(lambda: self.get(name))
        return ProxyHandle(self, name)

    def list_proxies(self) -> list[str]:
        """The names of every proxy, sorted."""
        return sorted(self.run(lambda: list(self.proxies)))

    def delete(self, name: str) -> None:
        self.call(lambda: self.delete_async(name))

    def reset(self) -> None:
        self.call(self.reset_async)

    def unsupported_reason(self, toxic_type: str) -> str | None:
        """Why ``toxic_type`` cannot be used here (a skip reason), or None."""
        from faultlab.toxics.base import toxic_types

        if toxic_type in toxic_types():
            return None
        return f"faultlab has no toxic {toxic_type!r}"

    def supports(self, toxic_type: str) -> bool:
        """Whether ``toxic_type`` is a registered toxic (``RemoteToxiproxy`` asks its server)."""
        return self.unsupported_reason(toxic_type) is None

    def events(self, **filters: Any) -> list[dict[str, Any]]:
        return self.journal.events(**filters)

    def close(self) -> None:
        """Stop every proxy (closing their connections) and the loop thread."""
        if self._closed:
            return

        async def shutdown() -> None:
            pending = list(self._tasks)
            if pending:  # let state-changing work finish before the proxies go
                _, late = await asyncio.wait(pending, timeout=TASK_DRAIN_TIMEOUT)
                for task in late:
                    task.cancel()
                if late:
                    await asyncio.wait(late, timeout=TASK_DRAIN_TIMEOUT)
            for name in list(self.proxies):
                await self.delete_async(name)
            await settle_bridges()  # closing FIFO/queue bridges flush, then are closed

        try:
            self.call(shutdown, timeout=10)
        finally:
            self._closed = True
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            if not self.loop.is_running():
                self.loop.close()

    def __enter__(self) -> ProxyEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ProxyHandle:
    """Synchronous view of one proxy; every call runs on the engine's loop."""

    def __init__(self, engine: ProxyEngine, name: str) -> None:
        self.engine = engine
        self.name = name

    def _proxy(self) -> Proxy:
        return self.engine.get(self.name)

    @property
    def listen(self) -> str:
        """The real listen address (port 0 resolved), as Toxiproxy shows it."""
        return str(self.engine.run(lambda: self._proxy().to_json()["listen"]))

    @property
    def address(self) -> str:
        """The listen address as a faultlab URI (``tcp://host:port`` for bare host:port)."""
        from faultlab.proxy.proxy import to_uri

        return to_uri(self.listen)

    def info(self) -> dict[str, Any]:
        return self.engine.run(lambda: self._proxy().to_json())

    def add_toxic(
        self,
        type_name: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: Any,
    ) -> dict[str, Any]:
        if name is not None:
            check_name(name, "toxic")
        entry: ToxicEntry = self.engine.run(
            lambda: self._proxy().add_toxic(
                type_name, name=name, stream=stream, toxicity=toxicity, attributes=attributes
            )
        )
        return entry.to_json()

    def update_toxic(
        self, name: str, *, toxicity: float | None = None, **attributes: Any
    ) -> dict[str, Any]:
        entry: ToxicEntry = self.engine.run(
            lambda: self._proxy().update_toxic(name, toxicity=toxicity, attributes=attributes)
        )
        return entry.to_json()

    def remove_toxic(self, name: str) -> None:
        self.engine.run(lambda: self._proxy().remove_toxic(name))

    def toxics(self) -> list[dict[str, Any]]:
        return self.engine.run(lambda: [e.to_json() for e in self._proxy().toxic_list()])

    def clear(self) -> None:
        """Remove every toxic (between Hypothesis examples: no restart needed)."""
        self.engine.run(lambda: self._proxy().remove_all_toxics())

    def enable(self) -> None:
        self.engine.call(lambda: start_proxy(self._proxy()))

    def disable(self) -> None:
        self.engine.call(lambda: self._proxy().stop())

    def connections(self) -> int:
        return self.engine.run(lambda: len(self._proxy().connections))

    def events(self, **filters: Any) -> list[dict[str, Any]]:
        return [e for e in self.engine.journal.events(**filters) if e.get("proxy") == self.name]

    def delete(self) -> None:
        self.engine.delete(self.name)
