"""A service is declared once, as a Python class with typed methods.

``Service(obj)`` exposes the object's public methods by name, and the methods
of nested service objects under a dotted prefix (``counter.incr``). Any
protocol over any transport serves it, and ``dispatch`` turns a
:class:`Request` into a :class:`Response`, mapping bad calls to the right
error kind: unknown method, bad params (arity or simple types), or an
application error raised by the method itself.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from faultlab.rpc.errors import (
    ApplicationError,
    InternalError,
    InvalidParams,
    MethodNotFound,
    RpcError,
)
from faultlab.rpc.messages import ErrorInfo, Request, Response

__all__ = ["Method", "Service", "service"]

C = TypeVar("C", bound=type)
_SIMPLE = (int, float, str, bytes, bool, list, dict, tuple, type(None))


def service(cls: C) -> C:
    """Mark a class whose instances, as attributes of a service, become namespaces."""
    cls.__faultlab_service__ = True  # type: ignore[attr-defined]
    return cls


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    function: Callable[..., Any]
    signature: inspect.Signature
    hints: dict[str, Any]
    idempotent: bool

    def bind(self, params: list[Any] | dict[str, Any]) -> inspect.BoundArguments:
        try:
            if isinstance(params, dict):
                bound = self.signature.bind(**params)
            else:
                bound = self.signature.bind(*params)
        except TypeError as exc:
            raise InvalidParams(f"{self.name}: {exc}") from None
        for arg, value in bound.arguments.items():
            expected = self.hints.get(arg)
            if expected is None:
                continue
            kind = self.signature.parameters[arg].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                values = list(value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                values = list(value.values())
            else:
                values = [value]
            for item in values:
                if not _matches(item, expected):
                    raise InvalidParams(
                        f"{self.name}: parameter {arg!r} must be {_type_name(expected)}, "
                        f"got {type(item).__name__}"
                    )
        return bound


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp)


def _matches(value: Any, tp: Any) -> bool:
    """Cheap structural check for simple annotations; anything fancier is accepted."""
    if tp is Any or tp is object:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(tp))
    if origin is not None:
        tp = origin
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp in _SIMPLE:
        return isinstance(value, tp)
    return True


class Service:
    """The callable surface of one object, looked up by (dotted) method name."""

    def __init__(self, obj: object, *, name: str | None = None, version: int = 1) -> None:
        self.obj = obj
        self.name = name or type(obj).__name__.lower()
        self.version = version
        self.methods: dict[str, Method] = {}
        self._collect(obj, "")

    def _collect(self, obj: object, prefix: str) -> None:
        for attr in dir(type(obj)):
            if attr.startswith("_"):
                continue
            value = getattr(obj, attr)
            if inspect.ismethod(value) or inspect.isfunction(value):
                hints = typing.get_type_hints(value)
                hints.pop("return", None)
                self.methods[prefix + attr] = Method(
                    prefix + attr,
                    value,
                    inspect.signature(value),
                    hints,
                    getattr(value, "__faultlab_idempotent__", True),
                )
        for attr, value in vars(obj).items() if hasattr(obj, "__dict__") else ():
            if not attr.startswith("_") and getattr(type(value), "__faultlab_service__", False):
                self._collect(value, f"{prefix}{attr}.")

    def dispatch(self, request: Request) -> Response:
        """Run one call; every failure becomes an error reply, never an escape."""
        try:
            method = self.methods.get(request.method)
            if method is None:
                raise MethodNotFound(f"no method {request.method!r} in service {self.name!r}")
            bound = method.bind(request.params)
            _carry_key(method, bound, request)
            try:
                result = method.function(*bound.args, **bound.kwargs)
            except RpcError:
                raise
            except Exception as exc:
                raise ApplicationError(
                    f"{type(exc).__name__}: {exc}", data={"type": type(exc).__name__}
                ) from exc
        except RpcError as exc:
            return Response(request.id, error=ErrorInfo.from_exception(exc))
        except BaseException as exc:  # pragma: no cover - defensive: never kill the server
            return Response(request.id, error=ErrorInfo.from_exception(InternalError(repr(exc))))
        return Response(request.id, result=result)


KEY_PARAMETERS = ("idempotency_key", "key")
"""Parameter names through which a non-idempotent method receives its idempotency key."""


def _carry_key(method: Method, bound: inspect.BoundArguments, request: Request) -> None:
    """One idempotency key, whatever carried it: the request's metadata (an
    ``Idempotency-Key`` header, binrpc meta) fills a non-idempotent method's key
    parameter left unset, and a key given as a parameter is recorded in the
    metadata, so the method can dedup and the journal names the key either way."""
    if method.idempotent:
        return
    for name in KEY_PARAMETERS:
        if name not in method.signature.parameters:
            continue
        given = bound.arguments.get(name)
        carried = request.meta.get("idempotency_key")
        if given is None and isinstance(carried, str) and carried:
            bound.arguments[name] = carried
        elif isinstance(given, str) and given and not carried:
            request.meta["idempotency_key"] = given
        return


def non_idempotent(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a method whose repeats have visible side effects (oracles check its retries)."""
    fn.__faultlab_idempotent__ = False  # type: ignore[attr-defined]
    return fn
