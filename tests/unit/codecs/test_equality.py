"""``same`` is the judge of every round trip, so it is tested first."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faultlab.codecs import explain_difference, same

from .helpers import FAST

NAN = float("nan")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, 1.0),
        (1, True),
        (1.0, True),
        (0, False),
        (-0.0, 0.0),
        ((1, 2), [1, 2]),
        ({1: "a"}, {True: "a"}),
        ({1: "a"}, {1.0: "a"}),
        ({"a": 1}, {"a": 1, "b": 2}),
        ({"a": 1}, {"b": 1}),
        (b"x", bytearray(b"x")),
        (b"x", "x"),
        ([1, [2, [3]]], [1, [2, [3.0]]]),
        ({"k": [0.0]}, {"k": [-0.0]}),
        (NAN, 0.0),
        ({1, 2}, {1, 3}),
        ({1}, {True}),
        (Decimal("1.0"), Decimal("1.00")),
        (Decimal("0"), Decimal("-0")),
        (
            dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=5))),
            dt.datetime(2024, 1, 1, 7, tzinfo=dt.UTC),
        ),
        (dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
        ("a", "b"),
        (None, 0),
    ],
)
def test_different(a: object, b: object) -> None:
    assert not same(a, b)
    assert not same(b, a)
    assert explain_difference(a, b) is not None


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (NAN, float("nan")),
        ([NAN], [NAN]),
        ({NAN: 1}, {float("nan"): 1}),
        (-0.0, -0.0),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        ({1, 2}, {2, 1}),
        (Decimal("NaN"), Decimal("NaN")),
        (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
        ((1, [2.5, {"x": None}]), (1, [2.5, {"x": None}])),
        (complex(NAN, 1), complex(NAN, 1)),
    ],
)
def test_same(a: object, b: object) -> None:
    assert same(a, b)
    assert explain_difference(a, b) is None


def test_explanation_gives_the_path() -> None:
    why = explain_difference({"a": [1, 2, {"b": 1.0}]}, {"a": [1, 2, {"b": 1}]})
    assert why == "value['a'][2]['b']: float 1.0 != int 1"


def test_deep_values_do_not_hit_the_recursion_limit() -> None:
    a: list[object] = []
    b: list[object] = []
    for _ in range(5000):
        a, b = [a], [b]
    assert same(a, b)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(), c, max_size=3),
    max_leaves=15,
)


@FAST
@given(json_like)
def test_reflexive(value: object) -> None:
    assert same(value, value)


@FAST
@given(json_like, json_like)
def test_implies_equality(a: object, b: object) -> None:
    if same(a, b):
        assert repr(a) == repr(b) or a == b or "nan" in repr(a)
