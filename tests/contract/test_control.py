"""One proxy-control interface, two backends: the in-process engine and RemoteToxiproxy.

Every scenario here runs unchanged against :class:`ProxyEngine` and against
:class:`RemoteToxiproxy` talking to faultlab's own API server; the typed errors
(``ProxyNotFound``...) are caught by the same ``except`` on both.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from faultlab.proxy.control import (
    InvalidProxyRequest,
    ListenFailed,
    ProxyControl,
    ProxyError,
    ProxyExists,
    ProxyNotFound,
    ProxyServer,
)
from faultlab.proxy.engine import ProxyEngine
from faultlab.proxy.remote import RemoteToxiproxy
from tests.contract.conftest import echo_through

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["engine", "remote"])
def server(request: pytest.FixtureRequest, engine: ProxyEngine) -> Iterator[ProxyServer]:
    if request.param == "engine":
        backend: ProxyServer = engine
    else:
        backend = RemoteToxiproxy(request.getfixturevalue("api_url"), timeout=5)
    try:
        yield backend
    finally:
        for name in backend.list_proxies():
            backend.delete(name)
        if backend is not engine:
            backend.close()


def test_both_backends_satisfy_the_interface(server: ProxyServer, echo: str) -> None:
    assert isinstance(server, ProxyServer)
    proxy = server.create("c1", upstream=echo)
    assert isinstance(proxy, ProxyControl)
    assert isinstance(server.proxy("c1"), ProxyControl)


def test_objects_missing_a_method_do_not_satisfy_it(engine: ProxyEngine) -> None:
    class Partial:
        def create(self, name: str) -> None: ...

    assert not isinstance(Partial(), ProxyServer)
    assert not isinstance(Partial(), ProxyControl)


def test_same_scenario_through_either_backend(server: ProxyServer, echo: str) -> None:
    proxy = server.create("c2", upstream=echo)
    assert proxy.name == "c2"
    assert proxy.address == f"tcp://{proxy.listen}"
    assert proxy.info()["upstream"] == echo
    assert echo_through(proxy.listen) == b"ping"
    assert server.list_proxies() == ["c2"]
    toxic = proxy.add_toxic("latency", name="slow", latency=5)
    assert (toxic["name"], toxic["attributes"]["latency"]) == ("slow", 5)
    assert proxy.update_toxic("slow", latency=7)["attributes"]["latency"] == 7
    assert [t["name"] for t in proxy.toxics()] == ["slow"]
    proxy.remove_toxic("slow")
    proxy.add_toxic("noop", stream="upstream")
    proxy.clear()
    assert proxy.toxics() == []
    listen = proxy.listen
    proxy.disable()
    with pytest.raises(ConnectionRefusedError):
        echo_through(listen)
    proxy.enable()
    assert echo_through(proxy.listen) == b"ping"
    proxy.add_toxic("latency", latency=1)
    proxy.disable()
    server.reset()
    assert proxy.toxics() == []
    assert echo_through(proxy.listen) == b"ping"
    assert server.supports("latency")
    assert server.unsupported_reason("latency") is None
    assert not server.supports("no_such_toxic")
    assert "no_such_toxic" in (server.unsupported_reason("no_such_toxic") or "")
    assert isinstance(server.seed, int)
    kinds = {e["kind"] for e in server.events(kinds=["proxy_created", "reset"])}
    assert kinds == {"proxy_created", "reset"}
    assert {e["kind"] for e in proxy.events(kinds=["toxic_added"])} == {"toxic_added"}
    proxy.delete()
    assert server.list_proxies() == []


def test_typed_errors_are_the_same_on_either_backend(server: ProxyServer, echo: str) -> None:
    proxy = server.create("c3", upstream=echo)
    with pytest.raises(ProxyExists):
        server.create("c3", upstream=echo)
    with pytest.raises(ProxyNotFound):
        server.proxy("nope")
    with pytest.raises(ProxyNotFound):
        server.delete("nope")
    with pytest.raises(ProxyNotFound):
        proxy.remove_toxic("nope")
    with pytest.raises(InvalidProxyRequest):
        proxy.add_toxic("nope")
    with pytest.raises(InvalidProxyRequest):
        server.create("bad/name", upstream=echo)
    proxy.add_toxic("noop", name="n")
    with pytest.raises(ProxyExists):
        proxy.add_toxic("noop", name="n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        with pytest.raises(ListenFailed) as failed:
            server.create("c4", listen=f"127.0.0.1:{taken.getsockname()[1]}", upstream=echo)
    assert "listen" in str(failed.value)
    assert isinstance(failed.value, ProxyError)
    assert server.list_proxies() == ["c3"]
