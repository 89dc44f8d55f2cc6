"""Calls a service accepts, drawn from its methods' type hints: ``(method, args)``.

The service declaration (faultlab.rpc.service) already knows every method's
signature and hints, so the strategy needs no extra schema: ``calls(Calc)``
draws ``("add", (3, -1.5))`` or ``("counter.incr", (2,))``. Ranges are kept
moderate (a ``sleep(ms)`` of a year helps nobody); ``overrides`` narrows or
replaces any parameter's strategy.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from hypothesis import strategies as st

__all__ = ["calls", "strategy_for"]

Call = tuple[str, tuple[Any, ...]]
INT_RANGE = (-1000, 1000)
FLOAT_RANGE = 1e6
MAX_SIZE = 4

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


def _any() -> st.SearchStrategy[Any]:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(*INT_RANGE)
        | st.floats(-FLOAT_RANGE, FLOAT_RANGE, allow_nan=False)
        | _text
    )
    return st.recursive(
        leaves,
        lambda kids: (
            st.lists(kids, max_size=MAX_SIZE) | st.dictionaries(_text, kids, max_size=MAX_SIZE)
        ),
        max_leaves=8,
    )


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """Values of an annotation: simple types, containers, unions, Literal; else any JSON-ish."""
    if tp is Any or tp is object or tp is inspect.Parameter.empty:
        return _any()
    if tp is None or tp is type(None):
        return st.none()
    simple: dict[Any, st.SearchStrategy[Any]] = {
        bool: st.booleans(),
        int: st.integers(*INT_RANGE),
        float: st.floats(-FLOAT_RANGE, FLOAT_RANGE, allow_nan=False),
        str: _text,
        bytes: st.binary(max_size=32),
    }
    if tp in simple:
        return simple[tp]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(a) for a in args))
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (list, Iterable) or tp is list:
        item = strategy_for(args[0]) if args else _any()
        return st.lists(item, max_size=MAX_SIZE)
    if origin in (dict, Mapping) or tp is dict:
        value = strategy_for(args[1]) if len(args) == 2 else _any()
        return st.dictionaries(_text, value, max_size=MAX_SIZE)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(strategy_for(args[0]), max_size=MAX_SIZE).map(tuple)
        return st.tuples(*(strategy_for(a) for a in args))
    try:
        return st.from_type(tp)
    except Exception:
        return _any()


def _service(service: Any) -> Any:
    from faultlab.rpc.service import Service

    if isinstance(service, Service):
        return service
    if isinstance(service, str):
        from faultlab.lab.backends.thread import load_factory

        service = load_factory(service)
    if isinstance(service, type):
        service = service()
    return Service(service)


def calls(
    service: Any,
    *,
    methods: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    overrides: Mapping[str, Mapping[str, st.SearchStrategy[Any]]] | None = None,
) -> st.SearchStrategy[Call]:
    """``(method, args)`` pairs the service accepts, from its type hints.

    ``service`` is an object, a class (instantiated), a ``"module:factory"``
    reference or a :class:`~faultlab.rpc.service.Service`. Optional
    parameters are passed positionally, a drawn number of them (shrinking
    toward none). ``overrides[method][param]`` replaces a parameter's strategy.
    """
    svc = _service(service)
    skip = set(exclude)
    wanted = set(methods) if methods is not None else None
    names = sorted(
        name
        for name in svc.methods
        if name not in skip and (wanted is None or name in wanted) and not name.startswith("_")
    )
    if not names:
        raise ValueError("no method left to call (check methods= and exclude=)")
    custom = {k: dict(v) for k, v in (overrides or {}).items()}
    plans: dict[str, tuple[list[st.SearchStrategy[Any]], list[st.SearchStrategy[Any]]]] = {}
    for name in names:
        method = svc.methods[name]
        required: list[st.SearchStrategy[Any]] = []
        optional: list[st.SearchStrategy[Any]] = []
        for param in method.signature.parameters.values():
            if param.kind not in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
                continue
            strategy = custom.get(name, {}).get(param.name)
            if strategy is None:
                strategy = strategy_for(method.hints.get(param.name, Any))
            (required if param.default is param.empty else optional).append(strategy)
        plans[name] = (required, optional)

    @st.composite
    def draw_call(draw: st.DrawFn) -> Call:
        name = draw(st.sampled_from(names))
        required, optional = plans[name]
        count = draw(st.integers(0, len(optional))) if optional else 0
        args = tuple(draw(s) for s in [*required, *optional[:count]])
        return name, args

    return draw_call()
