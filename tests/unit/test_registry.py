"""The one Registry behind every extension point (codecs, framers, transports, protocols,
toxics, backends): lazy built-ins, entry points, FAULTLAB_NO_PLUGINS."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from faultlab import _registry
from faultlab.codecs.base import Codec
from faultlab.codecs.errors import UnknownCodec
from faultlab.codecs.framing import get_framer
from faultlab.codecs.json import JsonCodec


def test_entry_points_are_loaded_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    """Moved from tests/unit/codecs/test_codecs.py (the codecs' own registry is folded in)."""
    loaded: list[str] = []

    class FakeEntryPoint:
        name = "fake-codec"

        def load(self) -> type[JsonCodec]:
            loaded.append(self.name)
            return JsonCodec

    monkeypatch.setattr(_registry, "entry_points", lambda group: [FakeEntryPoint()])
    registry: _registry.Registry[Callable[..., Codec]] = _registry.Registry(
        "codec", "faultlab.codecs"
    )
    assert registry.names() == ["fake-codec"]
    assert loaded == []
    assert isinstance(registry.build("fake-codec"), JsonCodec)
    monkeypatch.setenv("FAULTLAB_NO_PLUGINS", "1")
    assert _registry.Registry("codec", "faultlab.codecs").names() == []


def test_adopted_entry_points_are_skipped_with_no_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    adopted: list[str] = []

    class FakeEntryPoint:
        name = "fake-transport"

    monkeypatch.setattr(_registry, "entry_points", lambda group: [FakeEntryPoint()])
    monkeypatch.setenv("FAULTLAB_NO_PLUGINS", "1")
    registry: _registry.Registry[int] = _registry.Registry(
        "transport", "g", adopt=lambda ep: adopted.append(ep.name)
    )
    assert registry.names() == []
    monkeypatch.delenv("FAULTLAB_NO_PLUGINS")
    registry = _registry.Registry("transport", "g", adopt=lambda ep: adopted.append(ep.name))
    registry.names()
    assert adopted == ["fake-transport"]


def test_builtins_are_imported_only_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "entry_points", lambda group: [])
    monkeypatch.delitem(sys.modules, "faultlab.codecs.xml", raising=False)
    registry: _registry.Registry[Callable[..., Codec]] = _registry.Registry(
        "codec", "g", builtins={"xmlrpc": "faultlab.codecs.xml:XmlRpcCodec"}
    )
    assert registry.names() == ["xmlrpc"]
    assert "faultlab.codecs.xml" not in sys.modules
    assert registry.build("xmlrpc").name == "xmlrpc"
    assert "faultlab.codecs.xml" in sys.modules


def test_register_replace_and_missing() -> None:
    registry: _registry.Registry[int] = _registry.Registry("thing", "faultlab.no-such-group")
    assert registry.register("a", 1) == 1
    assert registry.register("a", 2) == 2  # replaces by default (transports, toxics...)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", 3, replace=False)  # codecs and framers refuse to shadow
    assert registry.get("a") == 2
    with pytest.raises(LookupError, match="unknown thing 'b'; known: a"):
        registry.get("b")
    custom: _registry.Registry[int] = _registry.Registry(
        "thing", "faultlab.no-such-group", missing=lambda name: KeyError(name)
    )
    with pytest.raises(KeyError):
        custom.get("b")


def test_codecs_and_framers_still_raise_unknown_codec() -> None:
    with pytest.raises(UnknownCodec, match=r"unknown framing 'nope'; known: .*length-prefix"):
        get_framer("nope")
