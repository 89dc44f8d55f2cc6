"""Lossless-domain checks: does a value stay the same through a codec?

Each serialization codec declares its domain as ``ValueRules`` (exact leaf
types, key types, int range, finite floats, characters it cannot carry, a
nesting limit). The same check runs before encoding (``EncodeError``: never a
silent change) and after decoding (``DecodeError``: a peer cannot hand us a
value we could not send back).

It runs on every message, so the rules are compiled into a table from exact
type to check (``None`` meaning "any value of this type is fine"), the walk is
iterative, leaves are checked in place, and a path is built only on failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ValueRules", "find_violation", "nested_list"]

Check = Callable[[Any], str | None]
_Link = tuple[Any, Any] | None  # (parent link, key)
_UNKNOWN: Any = object()


class ValueRules:
    """What a codec carries unchanged. Types are matched exactly (no subclasses)."""

    __slots__ = ("hints", "key_checks", "leaf_checks", "max_depth")

    def __init__(
        self,
        *,
        leaf_types: frozenset[type],
        key_types: frozenset[type],
        max_depth: int,
        int_range: tuple[int, int] | None = None,
        finite_floats: bool = False,
        bad_text: re.Pattern[str] | None = None,
        extra: Mapping[type, Check] | None = None,
        hints: Mapping[type, str] | None = None,
    ) -> None:
        builtin: dict[type, Check | None] = {
            int: None if int_range is None else _int_check(*int_range),
            float: _finite if finite_floats else None,
            str: None if bad_text is None else _text_check(bad_text),
        }
        extra = extra or {}
        self.leaf_checks: dict[type, Check | None] = {
            kind: extra.get(kind, builtin.get(kind)) for kind in leaf_types
        }
        self.key_checks = {kind: self.leaf_checks.get(kind) for kind in key_types}
        self.max_depth = max_depth
        self.hints = dict(hints or {})

    def leaf_problem(self, value: object) -> str | None:
        """Why ``value`` (not a list or dict) would not survive, or ``None``."""
        check = self.leaf_checks.get(type(value), _UNKNOWN)
        if check is _UNKNOWN:
            return self.type_problem(value)
        return None if check is None else check(value)

    def key_problem(self, key: object) -> str | None:
        check = self.key_checks.get(type(key), _UNKNOWN)
        if check is _UNKNOWN:
            return f"key type {type(key).__name__} not allowed"
        return None if check is None else check(key)

    def type_problem(self, value: object) -> str:
        kind = type(value)
        return f"type {kind.__name__}: {self.hints.get(kind, 'not supported')}"


def _int_check(low: int, high: int) -> Check:
    def check(value: int) -> str | None:
        return None if low <= value <= high else f"int {value} outside [{low}, {high}]"

    return check


def _finite(value: float) -> str | None:
    return None if value - value == 0.0 else f"float {value!r} is not finite"


def _text_check(bad: re.Pattern[str]) -> Check:
    def check(text: str) -> str | None:
        if text.isascii() and text.isprintable():  # printable ASCII: every codec carries it
            return None
        match = bad.search(text)
        return None if match is None else f"str contains {match.group()!r} at {match.start()}"

    return check


def find_violation(value: object, rules: ValueRules) -> str | None:
    """``None`` if ``value`` is in the domain, else the path and reason of the first problem."""
    kind = type(value)
    if kind is not list and kind is not dict:
        why = rules.leaf_problem(value)
        return None if why is None else f"value: {why}"
    leaf_checks = rules.leaf_checks
    max_depth = rules.max_depth
    stack: list[tuple[Any, int, _Link]] = [(value, 1, None)]
    while stack:
        node, depth, link = stack.pop()
        if depth > max_depth:
            return f"{_render(link)}: nesting deeper than {max_depth}"
        if type(node) is dict:
            for key in node:
                why = rules.key_problem(key)
                if why is not None:
                    return f"{_render(link)}: key {key!r}: {why}"
            items: Any = node.items()
        else:
            items = enumerate(node)
        for key, item in items:
            item_kind = type(item)
            if item_kind is list or item_kind is dict:
                stack.append((item, depth + 1, (link, key)))
                continue
            check = leaf_checks.get(item_kind, _UNKNOWN)
            if check is None:
                continue
            why = rules.type_problem(item) if check is _UNKNOWN else check(item)
            if why is not None:
                return f"{_render((link, key))}: {why}"
    return None


def _render(link: _Link) -> str:
    keys: list[Any] = []
    while link is not None:
        link, key = link
        keys.append(key)
    return "value" + "".join(f"[{key!r}]" for key in reversed(keys))


def nested_list(depth: int) -> list[Any]:
    """A list nested ``depth`` levels deep (``[[[]]]`` is 3): the depth-limit probe."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value
