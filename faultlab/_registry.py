"""One shape for faultlab's extension points: a name -> object table filled lazily.

Transports, RPC protocols, toxics and backends each keep one of these: the
built-in modules register themselves when first imported, third parties come
from an entry-point group, and both are loaded on the first lookup, so
importing faultlab stays cheap. (Codecs build a fresh instance per lookup and
keep their own factory registry, ``faultlab.codecs._registry``.)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """``get(name)`` after importing ``modules`` and adopting the entry points of ``group``."""

    def __init__(
        self,
        kind: str,
        group: str,
        modules: Iterable[str],
        *,
        missing: Callable[[str], Exception],
        adopt: Callable[[EntryPoint], object],
    ) -> None:
        self.kind = kind
        self.group = group
        self.modules = tuple(modules)
        self._missing = missing
        self._adopt = adopt
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, item: T) -> T:
        """Add (or replace) ``item`` under ``name``."""
        self._items[name] = item
        return item

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self.modules:
            importlib.import_module(module)
        for ep in entry_points(group=self.group):
            self._adopt(ep)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            raise self._missing(name) from None

    def names(self) -> list[str]:
        self._load()
        return list(self._items)

    def known(self) -> str:
        """The registered names, for error messages."""
        return ", ".join(sorted(self._items))
