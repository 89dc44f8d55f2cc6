"""RemoteToxiproxy against faultlab's own server (a real Toxiproxy cannot be installed here).

With ``extensions=False`` the server is a strict Toxiproxy double, which is how
the "plain Toxiproxy" paths (faultlab-only toxics, events) are exercised.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from faultlab.errors import FaultlabError
from faultlab.proxy.engine import ProxyEngine
from faultlab.proxy.proxy import ProxyError
from faultlab.proxy.remote import (
    NotSupportedByServer,
    RemoteToxiproxy,
    ToxiproxyApiError,
    ToxiproxyBadRequest,
    ToxiproxyConflict,
    ToxiproxyNotFound,
    ToxiproxyServerError,
    ToxiproxyUnavailable,
)
from faultlab.proxy.server import ApiServer
from tests.contract.conftest import echo_through

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def remote(api_url: str) -> Iterator[RemoteToxiproxy]:
    with RemoteToxiproxy(api_url, timeout=5) as client:
        yield client


@pytest.fixture
def plain(engine: ProxyEngine) -> Iterator[RemoteToxiproxy]:
    """A client of a server without faultlab's extensions (like a real Toxiproxy)."""
    server = ApiServer(engine, port=0, extensions=False).start()
    client = RemoteToxiproxy(server.url, timeout=5)
    try:
        yield client
    finally:
        for name in client.list_proxies():
            client.delete(name)
        client.close()
        server.close()


def test_create_and_handle(remote: RemoteToxiproxy, echo: str) -> None:
    proxy = remote.create("r1", upstream=echo)
    assert proxy.listen.startswith("127.0.0.1:")
    assert proxy.address == f"tcp://{proxy.listen}"
    assert (proxy.upstream, proxy.enabled) == (echo, True)
    assert echo_through(proxy.listen) == b"ping"
    assert remote.list_proxies() == ["r1"]
    assert remote.proxy("r1").info()["name"] == "r1"
    assert remote.version() == "2.12.0"


def test_toxics_round_trip(remote: RemoteToxiproxy, echo: str) -> None:
    proxy = remote.create("r2", upstream=echo)
    toxic = proxy.add_toxic("latency", latency=120.0, jitter=0)
    assert toxic == {
        "attributes": {"latency": 120, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
    }
    start = time.monotonic()
    assert echo_through(proxy.listen) == b"ping"
    assert time.monotonic() - start >= 0.11
    updated = proxy.update_toxic("latency_downstream", latency=5)
    assert updated["attributes"] == {"latency": 5, "jitter": 0}
    updated = proxy.update_toxic("latency_downstream", toxicity=0.5)
    assert (updated["toxicity"], updated["attributes"]["latency"]) == (0.5, 5)
    proxy.add_toxic("noop", name="n", stream="upstream")
    assert [t["name"] for t in proxy.toxics()] == ["n", "latency_downstream"]
    assert proxy.toxic("n")["stream"] == "upstream"
    proxy.remove_toxic("n")
    proxy.clear()
    assert proxy.toxics() == []


def test_enable_disable_keep_the_port(remote: RemoteToxiproxy, echo: str) -> None:
    proxy = remote.create("r3", upstream=echo)
    listen = proxy.listen
    proxy.disable()
    assert proxy.enabled is False
    with pytest.raises(ConnectionRefusedError):
        echo_through(listen)
    proxy.enable()
    assert proxy.listen == listen
    assert echo_through(listen) == b"ping"


def test_update_and_reset_and_delete(remote: RemoteToxiproxy, echo: str) -> None:
    proxy = remote.create("r4", upstream="127.0.0.1:9")
    assert proxy.update(upstream=echo)["upstream"] == echo
    proxy.add_toxic("latency", latency=1)
    proxy.disable()
    remote.reset()
    assert (proxy.enabled, proxy.toxics()) == (True, [])
    proxy.delete()
    with pytest.raises(ToxiproxyNotFound):
        remote.proxy("r4")


def test_populate(remote: RemoteToxiproxy, echo: str) -> None:
    handles = remote.populate(
        [{"name": "a", "upstream": echo, "listen": "127.0.0.1:0"}, {"name": "b", "upstream": echo}]
    )
    assert [h.name for h in handles] == ["a", "b"]
    assert remote.populate([]) == []


def test_errors_are_typed(remote: RemoteToxiproxy, echo: str) -> None:
    proxy = remote.create("r5", upstream=echo)
    with pytest.raises(ToxiproxyConflict) as conflict:
        remote.create("r5", upstream=echo)
    assert (conflict.value.status, conflict.value.message) == (409, "proxy already exists")
    assert str(conflict.value) == "HTTP 409: proxy already exists"
    with pytest.raises(ToxiproxyBadRequest, match="invalid toxic type"):
        proxy.add_toxic("nope")
    with pytest.raises(ToxiproxyBadRequest, match=r"cannot unmarshal number 1\.5"):
        proxy.add_toxic("latency", latency=1.5)
    with pytest.raises(ToxiproxyNotFound, match="toxic not found"):
        proxy.remove_toxic("nope")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(ToxiproxyServerError) as bind:
            remote.create("r6", listen=f"127.0.0.1:{taken.getsockname()[1]}", upstream=echo)
    assert bind.value.status == 500
    # one except clause catches the engine's and the remote's errors alike
    assert issubclass(ToxiproxyApiError, ProxyError)
    assert issubclass(ToxiproxyApiError, FaultlabError)


def test_supports_and_extensions_on_faultlab(
    remote: RemoteToxiproxy, engine: ProxyEngine, echo: str
) -> None:
    assert remote.is_faultlab
    assert remote.supports("latency")
    assert remote.supports("drop")
    assert not remote.supports("no_such_toxic")
    assert "no toxic 'no_such_toxic'" in (remote.unsupported_reason("no_such_toxic") or "")
    assert remote.seed == engine.seed
    proxy = remote.create("r7", upstream=echo)
    proxy.add_toxic("latency", latency=1)
    kinds = [e["kind"] for e in proxy.events()]
    assert "toxic_added" in kinds
    assert all(e["proxy"] == "r7" for e in proxy.events())
    assert remote.events(kinds=["toxic_added"])[-1]["proxy"] == "r7"
    assert "latency" in remote.toxic_catalogue()


def test_plain_toxiproxy_paths(plain: RemoteToxiproxy, echo: str) -> None:
    assert not plain.is_faultlab
    assert plain.supports("latency")
    assert plain.supports("limit_data")
    assert not plain.supports("drop")
    reason = plain.unsupported_reason("drop") or ""
    assert "faultlab-only" in reason
    with pytest.raises(NotSupportedByServer, match="plain Toxiproxy"):
        plain.events()
    proxy = plain.create("p1", upstream=echo)
    with pytest.raises(NotSupportedByServer):
        proxy.events()
    with pytest.raises(NotSupportedByServer):
        proxy.connections()
    assert sorted(plain.toxic_catalogue()) == sorted(
        [
            "noop",
            "latency",
            "bandwidth",
            "slow_close",
            "timeout",
            "reset_peer",
            "slicer",
            "limit_data",
        ]
    )


def test_unreachable_server_is_typed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = RemoteToxiproxy(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(ToxiproxyUnavailable):
        client.list_proxies()


def test_silent_server_times_out() -> None:
    """A server that accepts and never answers: the request gives up at the timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        accepted: list[socket.socket] = []
        thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]))
        thread.start()
        client = RemoteToxiproxy(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5)
        start = time.monotonic()
        with pytest.raises(ToxiproxyUnavailable, match=r"no answer within 0\.5 s"):
            client.version()
        assert time.monotonic() - start < 3
        thread.join(5)
        for sock in accepted:
            sock.close()


def test_reconnects_after_the_server_drops_keep_alive(engine: ProxyEngine) -> None:
    server = ApiServer(engine, port=0, idle_timeout=0.2).start()
    try:
        client = RemoteToxiproxy(server.url, timeout=5)
        assert client.version() == "2.12.0"
        time.sleep(0.5)  # the server closed our idle connection
        assert client.version() == "2.12.0"
        client.close()
    finally:
        server.close()


def test_bad_url() -> None:
    with pytest.raises(ValueError, match="not a Toxiproxy API URL"):
        RemoteToxiproxy("ftp://x")
