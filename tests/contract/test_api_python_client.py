"""The real ``toxiproxy-python`` client (PyPI 0.1.1) against faultlab's server, unchanged.

The client keeps its endpoint in class attributes of ``APIConsumer``;
``update_api_consumer`` points it at our free port and the fixture restores it.
It sends no timeouts of its own, so the module runs under pytest-timeout.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract.conftest import echo_through

toxiproxy = pytest.importorskip("toxiproxy", reason="toxiproxy-python is not installed")
from toxiproxy.api import APIConsumer  # noqa: E402
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server(api_url: str) -> Iterator[Any]:
    host, _, port = api_url.removeprefix("http://").rpartition(":")
    saved = (APIConsumer.host, APIConsumer.port)
    client = toxiproxy.Toxiproxy()
    client.update_api_consumer(host, int(port))
    try:
        yield client
    finally:
        APIConsumer.host, APIConsumer.port = saved


def test_running_and_version(server: Any) -> None:
    assert server.running() is True
    assert server.version() == b'{"version": "2.12.0"}\n'


def test_create_list_get_destroy(server: Any, echo: str) -> None:
    proxy = server.create(upstream=echo, name="py")
    assert proxy.listen.startswith("127.0.0.1:")
    assert not proxy.listen.endswith(":0")  # the real port comes back
    assert proxy.enabled is True
    assert echo_through(proxy.listen) == b"ping"
    assert set(server.proxies()) == {"py"}
    got = server.get_proxy("py")
    assert (got.name, got.upstream, got.listen) == ("py", echo, proxy.listen)
    assert server.destroy(proxy) is True
    assert server.get_proxy("py") is None
    with pytest.raises(NotFound):
        proxy.destroy()


def test_duplicates_map_to_proxy_exists(server: Any, echo: str) -> None:
    server.create(upstream=echo, name="dup")
    with pytest.raises(ProxyExists):  # the client's own check
        server.create(upstream=echo, name="dup")
    with pytest.raises(ProxyExists, match="proxy already exists"):  # the server's 409
        APIConsumer.post("/proxies", json={"name": "dup", "upstream": echo})


def test_toxics_add_list_remove(server: Any, echo: str) -> None:
    proxy = server.create(upstream=echo, name="tox")
    proxy.add_toxic(type="latency", attributes={"latency": 150, "jitter": 0})
    proxy.add_toxic(type="bandwidth", stream="upstream", name="bw", attributes={"rate": 100000})
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "bw"}
    lat = proxy.get_toxic("latency_downstream")
    assert (lat.type, lat.stream, lat.toxicity) == ("latency", "downstream", 1)
    assert lat.attributes == {"latency": 150, "jitter": 0}
    start = time.monotonic()
    assert echo_through(proxy.listen) == b"ping"
    assert time.monotonic() - start >= 0.14
    assert proxy.destroy_toxic("latency_downstream") is True
    assert proxy.get_toxic("latency_downstream") is None
    with pytest.raises(NotFound):
        proxy.destroy_toxic("latency_downstream")


def test_float_attributes_from_python_are_accepted(server: Any, echo: str) -> None:
    proxy = server.create(upstream=echo, name="floats")
    proxy.add_toxic(type="latency", attributes={"latency": 20.0})
    assert proxy.get_toxic("latency_downstream").attributes["latency"] == 20


def test_bad_toxics_map_to_invalid_toxic(server: Any, echo: str) -> None:
    proxy = server.create(upstream=echo, name="bad")
    with pytest.raises(InvalidToxic, match="invalid toxic type"):
        proxy.add_toxic(type="nope")
    with pytest.raises(InvalidToxic, match="stream was invalid"):
        proxy.add_toxic(type="latency", stream="sideways")
    with pytest.raises(InvalidToxic, match=r"string into Go struct field LatencyToxic"):
        proxy.add_toxic(type="latency", attributes={"latency": "5"})  # Go cannot store it
    assert proxy.toxics() == {}


def test_values_toxiproxy_accepts_are_accepted(server: Any, echo: str) -> None:
    """Toxiproxy 2.12 takes these (some crash it on the first data); faultlab gives each a safe
    meaning (tests/contract/test_toxiproxy_parity.py)."""
    proxy = server.create(upstream=echo, name="parity")
    proxy.add_toxic(type="slicer", attributes={"average_size": 10, "size_variation": 10})
    proxy.add_toxic(type="bandwidth", stream="upstream", attributes={"rate": 10**12})
    proxy.add_toxic(type="slow_close", attributes={"delay": -1})
    proxy.add_toxic(type="limit_data", stream="upstream", toxicity=-1, attributes={"bytes": -1})
    toxics = proxy.toxics()
    assert toxics["slicer_downstream"].attributes["size_variation"] == 10
    assert toxics["limit_data_upstream"].toxicity == -1  # never acts
    payload = bytes(range(256)) * 4
    assert echo_through(proxy.listen, payload) == payload


def _shown(api_url: str, name: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{api_url}/proxies/{name}", timeout=5) as reply:
        shown: dict[str, Any] = json.loads(reply.read())
    return shown


def test_faultlab_options_through_the_settings_toxic(server: Any, echo: str, api_url: str) -> None:
    """toxiproxy-python's create() sends four keys; a ``faultlab`` toxic sets the rest."""
    proxy = server.create(upstream=echo, name="framed")
    with pytest.raises(InvalidToxic, match="acts on whole messages"):
        proxy.add_toxic(type="drop", attributes={"probability": 1.0})
    proxy.add_toxic(type="faultlab", attributes={"framing": "lines"})
    shown = _shown(api_url, "framed")
    assert (shown["framing"], shown["listen"], shown["toxics"]) == ("lines", proxy.listen, [])
    assert echo_through(proxy.listen, b"one\n") == b"one\n"
    proxy.add_toxic(type="drop", stream="upstream", attributes={"probability": 1.0})
    host, _, port = proxy.listen.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"dropped\n")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):  # the whole line was dropped
            sock.recv(100)
    with pytest.raises(InvalidToxic, match="before adding toxics"):
        proxy.add_toxic(type="faultlab", attributes={"framing": "length-prefix"})
    with pytest.raises(InvalidToxic, match="unknown framing"):
        server.create(upstream=echo, name="f2").add_toxic(
            type="faultlab", attributes={"framing": "nope"}
        )
    assert "framing" not in _shown(api_url, "f2")


def test_disable_enable_round_trip_keeps_the_port(server: Any, echo: str) -> None:
    proxy = server.create(upstream=echo, name="updown")
    listen = proxy.listen
    proxy.disable()
    assert server.get_proxy("updown").enabled is False
    with pytest.raises(ConnectionRefusedError):
        echo_through(listen)
    proxy.enable()
    again = server.get_proxy("updown")
    assert (again.enabled, again.listen) == (True, listen)
    assert echo_through(listen, b"flows again") == b"flows again"
    with proxy.down():
        with pytest.raises(ConnectionRefusedError):
            echo_through(listen)
    assert echo_through(listen) == b"ping"


def test_reset_clears_toxics_and_enables(server: Any, echo: str) -> None:
    proxy = server.create(upstream=echo, name="reset")
    proxy.add_toxic(type="latency", attributes={"latency": 1000})
    proxy.disable()
    assert server.reset() is True
    again = server.get_proxy("reset")
    assert again.enabled is True
    assert again.toxics() == {}
    assert echo_through(proxy.listen) == b"ping"


def test_populate_client_side(server: Any, echo: str) -> None:
    first = server.populate([{"name": "pop", "upstream": echo, "listen": "127.0.0.1:0"}])
    assert [p.name for p in first] == ["pop"]
    listen = first[0].listen
    first[0].add_toxic(type="latency", attributes={"latency": 1})
    # same listen and upstream: the client keeps the existing proxy (and its toxic)
    assert server.populate([{"name": "pop", "upstream": echo, "listen": listen}]) == []
    assert set(server.get_proxy("pop").toxics()) == {"latency_downstream"}


def test_destroy_all(server: Any, echo: str) -> None:
    for name in ("x1", "x2"):
        server.create(upstream=echo, name=name)
    server.destroy_all()
    assert server.proxies() == {}


def test_unknown_proxy_maps_to_not_found(server: Any) -> None:
    with pytest.raises(NotFound, match="proxy not found"):
        APIConsumer.get("/proxies/ghost")
