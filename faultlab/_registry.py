"""One shape for faultlab's extension points: a name -> object table filled lazily.

Transports, RPC protocols, toxics, backends, codecs and framers each keep one of
these, so a user adds any of them the same way (``register`` or an entry point)
and importing faultlab stays cheap:

- built-in *modules* register themselves when first imported (transports, protocols,
  toxics, backends), or built-ins are named ``"module:attribute"`` and imported only
  when asked for by name (codecs and framers: protobuf stays optional);
- third parties come from an entry-point group, adopted on the first lookup (``adopt``)
  or, by default, loaded only when asked for by name;
- ``FAULTLAB_NO_PLUGINS=1`` skips the entry points, to reproduce a run without whatever
  happens to be installed.

Codecs and framers store factories: :meth:`Registry.build` makes a fresh instance.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")
R = TypeVar("R")


class Registry(Generic[T]):
    """``get(name)`` after importing ``modules`` and looking at the entry points of ``group``."""

    def __init__(
        self,
        kind: str,
        group: str,
        modules: Iterable[str] = (),
        *,
        builtins: Mapping[str, str] | None = None,
        missing: Callable[[str], Exception] | None = None,
        adopt: Callable[[EntryPoint], object] | None = None,
    ) -> None:
        self.kind = kind
        self.group = group
        self.modules = tuple(modules)
        self._missing = missing
        self._adopt = adopt
        self._items: dict[str, T] = {}
        self._specs: dict[str, str | EntryPoint] = dict(builtins or {})
        """Known by name, imported on first ``get``: ``"module:attribute"`` or an entry point."""
        self._loaded = False

    def register(self, name: str, item: T, *, replace: bool = True) -> T:
        """Add ``item`` under ``name``; with ``replace=False``, refuse to shadow an entry."""
        if not replace and (name in self._items or name in self._specs):
            raise ValueError(f"{self.kind} {name!r} is already registered (pass replace=True)")
        self._specs.pop(name, None)
        self._items[name] = item
        return item

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self.modules:
            importlib.import_module(module)
        if os.environ.get("FAULTLAB_NO_PLUGINS"):
            return
        for ep in entry_points(group=self.group):
            if self._adopt is not None:
                self._adopt(ep)
            elif ep.name not in self._items and ep.name not in self._specs:
                self._specs[ep.name] = ep

    def get(self, name: str) -> T:
        """The entry called ``name`` (its module imported now if it was only named)."""
        self._load()
        if name in self._items:
            return self._items[name]
        spec = self._specs.get(name)
        if spec is None:
            raise self._not_found(name)
        if isinstance(spec, str):
            module, _, attribute = spec.partition(":")
            item: T = getattr(importlib.import_module(module), attribute)
        else:
            item = spec.load()
        del self._specs[name]
        self._items[name] = item
        return item

    def build(self: Registry[Callable[..., R]], name: str, **options: Any) -> R:
        """A new instance from the factory called ``name`` (codecs, framers)."""
        return self.get(name)(**options)

    def names(self) -> list[str]:
        """Every name, registered or only known (in registration order)."""
        self._load()
        return [*self._items, *(n for n in self._specs if n not in self._items)]

    def known(self) -> str:
        """The names, sorted, for error messages."""
        return ", ".join(sorted({*self._items, *self._specs}))

    def _not_found(self, name: str) -> Exception:
        if self._missing is not None:
            return self._missing(name)
        return LookupError(f"unknown {self.kind} {name!r}; known: {self.known()}")
