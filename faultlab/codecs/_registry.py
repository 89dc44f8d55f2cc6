"""A name -> factory registry with lazy built-ins and entry points.

Built-ins are named by ``"module:attribute"`` so importing the registry does
not import every codec (protobuf stays optional). Third-party entries come from
an entry-point group and are loaded on first lookup; ``FAULTLAB_NO_PLUGINS=1``
skips them, for reproducing a run without whatever happens to be installed.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from faultlab.codecs.errors import UnknownCodec

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories by name; ``get(name, **options)`` builds a fresh instance."""

    def __init__(self, kind: str, group: str, builtins: dict[str, str]) -> None:
        self._kind = kind
        self._group = group
        self._builtins = dict(builtins)
        self._factories: dict[str, Callable[..., T]] = {}
        self._plugins_loaded = False

    def register(self, name: str, factory: Callable[..., T], *, replace: bool = False) -> None:
        """Add ``factory`` under ``name``; refuses to shadow an entry unless ``replace``."""
        if not replace and (name in self._factories or name in self._builtins):
            raise ValueError(f"{self._kind} {name!r} is already registered (pass replace=True)")
        self._builtins.pop(name, None)
        self._factories[name] = factory

    def get(self, name: str, **options: object) -> T:
        """A new instance of the entry called ``name`` (raises :class:`UnknownCodec`)."""
        return self.factory(name)(**options)

    def factory(self, name: str) -> Callable[..., T]:
        if name not in self._factories and name not in self._builtins:
            self._load_plugins()
        if name in self._factories:
            return self._factories[name]
        spec = self._builtins.get(name)
        if spec is None:
            known = ", ".join(self.names())
            raise UnknownCodec(f"unknown {self._kind} {name!r}; known: {known}")
        module, _, attribute = spec.partition(":")
        factory: Callable[..., T] = getattr(importlib.import_module(module), attribute)
        self._factories[name] = factory
        del self._builtins[name]
        return factory

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted({*self._builtins, *self._factories})

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        if os.environ.get("FAULTLAB_NO_PLUGINS"):
            return
        for ep in entry_points(group=self._group):
            if ep.name not in self._factories and ep.name not in self._builtins:
                self._factories[ep.name] = _lazy(ep.load)


def _lazy(load: Callable[[], Callable[..., T]]) -> Callable[..., T]:
    """Defer importing a plugin until someone asks for it by name."""

    def build(**options: object) -> T:
        return load()(**options)

    return build
