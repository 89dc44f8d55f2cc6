"""Type-strict, NaN-aware, signed-zero-aware equality for round-trip checks.

Plain ``==`` hides exactly the changes codecs make: ``1 == 1.0 == True``,
``-0.0 == 0.0``, ``(1,) != [1]`` is the only one it sees, ``nan != nan`` fails
correct codecs, and aware datetimes compare by instant so a lost UTC offset
passes. ``same`` treats two values as equal only if a reader could not tell
them apart. The walk is iterative, so deep values do not hit the recursion
limit.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterator, Mapping, Set
from decimal import Decimal
from typing import Any

__all__ = ["explain_difference", "same"]

_Path = tuple[Any, ...]
_SEQUENCES = (list, tuple)
_MISSING: Any = object()


def same(a: object, b: object) -> bool:
    """True if ``a`` and ``b`` are indistinguishable: same types all the way down.

    Dict key order is ignored (as ``==`` does); dict keys are matched strictly,
    so ``{1: x}`` and ``{True: x}`` differ.
    """
    return explain_difference(a, b) is None


def explain_difference(a: object, b: object) -> str | None:
    """``None`` if ``same(a, b)``, else where and how the first difference shows.

    The path reads like an access expression, e.g. ``value['k'][2]: int 1 != float 1.0``.
    """
    stack: list[tuple[object, object, _Path]] = [(a, b, ())]
    while stack:
        x, y, path = stack.pop()
        reason = _leaf_difference(x, y)
        pairs: list[tuple[object, object, _Path]] = []
        if reason is None:
            for child in _children(x, y, path):
                if isinstance(child, str):
                    reason = child
                    break
                pairs.append(child)
        if reason is not None:
            return f"{_render(path)}: {reason}"
        stack.extend(reversed(pairs))
    return None


def _leaf_difference(x: object, y: object) -> str | None:
    """A reason ``x`` and ``y`` differ at this node, ignoring their children."""
    if type(x) is not type(y):
        return f"{type(x).__name__} {_short(x)} != {type(y).__name__} {_short(y)}"
    if isinstance(x, float):
        assert isinstance(y, float)
        if math.isnan(x) and math.isnan(y):
            return None
        if x == y and math.copysign(1.0, x) == math.copysign(1.0, y):
            return None
        return f"{x!r} != {y!r}"
    if isinstance(x, complex):
        assert isinstance(y, complex)
        reason = _leaf_difference(x.real, y.real) or _leaf_difference(x.imag, y.imag)
        return None if reason is None else f"{x!r} != {y!r}"
    if isinstance(x, Decimal):
        assert isinstance(y, Decimal)
        return None if x.as_tuple() == y.as_tuple() else f"{x!r} != {y!r}"
    if isinstance(x, _dt.datetime | _dt.time):
        assert isinstance(y, _dt.datetime | _dt.time)
        if x.replace(tzinfo=None) != y.replace(tzinfo=None) or x.utcoffset() != y.utcoffset():
            return f"{x!r} != {y!r}"
        if type(x.tzinfo) is not type(y.tzinfo):
            return f"tzinfo {x.tzinfo!r} != {y.tzinfo!r}"
        if x.fold != y.fold:
            return f"fold {x.fold} != {y.fold}"
        return None
    if _is_container(x) or _is_message(x):
        return None
    try:
        equal = bool(x == y)
    except Exception as exc:  # a broken __eq__ still must not crash a report
        return f"cannot compare: {exc!r}"
    return None if equal else f"{_short(x)} != {_short(y)}"


def _is_container(x: object) -> bool:
    return isinstance(x, list | tuple | Mapping | Set)


def _is_message(x: object) -> bool:
    """A protobuf message (duck-typed so protobuf stays optional)."""
    return hasattr(x, "ListFields") and hasattr(x, "DESCRIPTOR")


def _children(x: object, y: object, path: _Path) -> Iterator[tuple[object, object, _Path] | str]:
    """Pairs of children to compare next, or a single reason string."""
    if _is_message(x):
        yield from _children(_message_fields(x), _message_fields(y), path)
        return
    if isinstance(x, _SEQUENCES) and isinstance(y, _SEQUENCES):
        if len(x) != len(y):
            yield f"length {len(x)} != {len(y)}"
            return
        for i, (xi, yi) in enumerate(zip(x, y, strict=True)):
            yield (xi, yi, (*path, i))
        return
    if isinstance(x, Mapping) and isinstance(y, Mapping):
        yield from _mapping_children(x, y, path)
        return
    if isinstance(x, Set) and isinstance(y, Set):
        missing = _unmatched(list(x), list(y))
        if missing is not _MISSING:
            yield f"set element {_short(missing)} has no same counterpart"


def _mapping_children(
    x: Mapping[Any, Any], y: Mapping[Any, Any], path: _Path
) -> Iterator[tuple[object, object, _Path] | str]:
    if len(x) != len(y):
        extra = [k for k in x if k not in y] or [k for k in y if k not in x]
        yield f"{len(x)} keys != {len(y)} keys" + (f" (e.g. {_short(extra[0])})" if extra else "")
        return
    y_keys = {_hashable_id(k): k for k in y}
    used: set[int] = set()
    for kx, vx in x.items():
        ky = y_keys.get(_hashable_id(kx), _MISSING)
        if ky is _MISSING:
            # keys that never equal themselves (NaN): pair each with an unused same key,
            # preferring one whose value is the same too
            alike = [k for k in y if id(k) not in used and same(kx, k)]
            ky = next((k for k in alike if same(vx, y[k])), alike[0] if alike else _MISSING)
        if ky is not _MISSING:
            used.add(id(ky))
        if ky is _MISSING or not same(kx, ky):
            yield f"key {_short(kx)} ({type(kx).__name__}) has no same counterpart"
            return
        yield (vx, y[ky], (*path, kx))


def _unmatched(xs: list[object], ys: list[object]) -> object:
    """An element of ``xs`` with no ``same`` partner in ``ys``, else ``_MISSING``.

    Quadratic, but sets in messages are small and hashing cannot be trusted
    here (``{1} == {True}``).
    """
    if len(xs) != len(ys):
        return xs[0] if xs else ys[0]
    pool = list(ys)
    for item in xs:
        for i, other in enumerate(pool):
            if same(item, other):
                del pool[i]
                break
        else:
            return item
    return _MISSING


def _hashable_id(key: object) -> object:
    """A lookup key that separates 1, 1.0 and True (which hash alike in a dict)."""
    return (type(key), key)


def _message_fields(msg: Any) -> dict[str, object]:
    """The set fields of a protobuf message as plain containers, by field name."""
    fields: dict[str, object] = {}
    for descriptor, value in msg.ListFields():
        if _is_map_field(descriptor):
            fields[descriptor.name] = {k: value[k] for k in value}
        elif getattr(descriptor, "is_repeated", False):
            fields[descriptor.name] = list(value)
        else:
            fields[descriptor.name] = value
    return fields


def _is_map_field(descriptor: Any) -> bool:
    message_type = getattr(descriptor, "message_type", None)
    return bool(message_type is not None and message_type.GetOptions().map_entry)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render(path: _Path) -> str:
    return "value" + "".join(f"[{part!r}]" for part in path)
