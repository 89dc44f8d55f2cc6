"""JSON (RFC 8259) over the stdlib ``json`` module.

Domain: ``None``, ``bool``, ``int`` (up to CPython's int/str digit limit,
4300 digits by default), finite ``float``, ``str`` without lone surrogates,
``list``, and ``dict`` with ``str`` keys. What JSON would silently change is
refused instead: tuples (would come back as lists), non-str keys (would come
back as str), NaN/Infinity (non-standard tokens). The wire is compact UTF-8.

orjson was considered: it is not a dependency here, and it turns NaN into
``null`` and out-of-range ints into floats, so the stdlib is the safe default.
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any, ClassVar

from faultlab.codecs._rules import ValueRules, nested_list
from faultlab.codecs.base import OutsideExample, ValueCodec
from faultlab.codecs.errors import EncodeError

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["JsonCodec"]

SURROGATES = re.compile("[\ud800-\udfff]")
"""Lone surrogates are not Unicode scalar values: UTF-8 (and other parsers) refuse them."""


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


class JsonCodec(ValueCodec):
    """Compact UTF-8 JSON; ``sort_keys`` gives a canonical form for byte comparison."""

    name: ClassVar[str] = "json"

    def __init__(self, *, sort_keys: bool = False, **options: Any) -> None:
        self.sort_keys = sort_keys
        super().__init__(**options)

    def make_rules(self) -> ValueRules:
        return ValueRules(
            leaf_types=frozenset({type(None), bool, int, float, str}),
            key_types=frozenset({str}),
            max_depth=self.max_depth,
            finite_floats=True,
            bad_text=SURROGATES,
            hints={
                tuple: "JSON arrays come back as list",
                bytes: "JSON has no bytes type",
                set: "JSON has no set type",
                frozenset: "JSON has no set type",
            },
        )

    def _encode(self, value: Any) -> bytes:
        text = json.dumps(
            value,
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
            sort_keys=self.sort_keys,
        )
        return text.encode("utf-8")

    def _decode(self, data: bytes) -> Any:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)

    def domain(self) -> SearchStrategy[Any]:
        from hypothesis import strategies as st

        limit = sys.get_int_max_str_digits()
        ints = st.integers() if limit == 0 else st.integers(-(10**limit) + 1, 10**limit - 1)
        text = st.text(st.characters(exclude_categories=["Cs"]))
        leaves = (
            st.none()
            | st.booleans()
            | ints
            | st.floats(allow_nan=False, allow_infinity=False)
            | text
        )
        return st.recursive(
            leaves,
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4)
            ),
            max_leaves=12,
        )

    def outside_domain_examples(self) -> list[OutsideExample]:
        return [
            OutsideExample(float("nan"), EncodeError, "NaN is not JSON"),
            OutsideExample(float("inf"), EncodeError, "Infinity is not JSON"),
            OutsideExample(b"", EncodeError, "JSON has no bytes"),
            OutsideExample((1, 2), EncodeError, "would come back as [1, 2]"),
            OutsideExample({1: 2}, EncodeError, "key would come back as '1'"),
            OutsideExample({1: "a", "1": "b"}, EncodeError, "keys would collide as '1'"),
            OutsideExample("\ud800", EncodeError, "lone surrogate is not valid UTF-8"),
            OutsideExample(10**5000, EncodeError, "beyond the int/str digit limit"),
            OutsideExample({1, 2}, EncodeError, "JSON has no set"),
            OutsideExample(nested_list(self.max_depth + 1), EncodeError, "deeper than max_depth"),
        ]
