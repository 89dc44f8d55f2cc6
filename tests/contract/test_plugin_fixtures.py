"""The plugin's ``faultlab_proxy`` fixture: the same ProxyServer interface whether it is the
lab's engine or a Toxiproxy server given ``--toxiproxy-url``, cleaned up after each test."""

from __future__ import annotations

import pytest

from faultlab.proxy.engine import ProxyEngine

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(120)

INNER = """
from faultlab.proxy.control import ProxyControl, ProxyServer

def test_make(faultlab_proxy):
    assert isinstance(faultlab_proxy, ProxyServer)
    made = faultlab_proxy.create("made", upstream="127.0.0.1:9", enabled=False)
    assert isinstance(made, ProxyControl)
    made.add_toxic("latency", latency=1)
    for name in faultlab_proxy.list_proxies():
        faultlab_proxy.proxy(name).add_toxic("noop", name="left")

def test_after(faultlab_proxy):
    assert "made" not in faultlab_proxy.list_proxies()
    for name in faultlab_proxy.list_proxies():
        assert faultlab_proxy.proxy(name).toxics() == []
    print("PROXIES", sorted(faultlab_proxy.list_proxies()))
"""


def test_faultlab_proxy_is_the_lab_engine_and_is_cleaned(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INNER)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-s")
    result.assert_outcomes(passed=2)


def test_faultlab_proxy_drives_a_toxiproxy_url(
    pytester: pytest.Pytester, api_url: str, engine: ProxyEngine
) -> None:
    engine.create("pre", upstream="127.0.0.1:9", enabled=False)
    pytester.makepyfile(INNER)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-s", f"--toxiproxy-url={api_url}")
    result.assert_outcomes(passed=2)
    assert "PROXIES ['pre']" in result.stdout.str()
    assert engine.list_proxies() == ["pre"]
    assert engine.proxy("pre").toxics() == []
