"""A proto service and its methods, from descriptors: never built by hand per method."""

from __future__ import annotations

import importlib
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from google.protobuf import message_factory  # type: ignore[import-untyped]

from faultlab.errors import LocalProtocolError

__all__ = ["PROTOS", "RpcMethod", "Schema", "load_schema", "rpc_name", "service_method"]

PROTOS = {
    "v1": "faultlab.examples.protos.calc_v1_pb2",
    "v2": "faultlab.examples.protos.calc_v2_pb2",
}
"""Short names for the calc example's generated modules."""


_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class RpcMethod:
    """One rpc: its name, path, message classes and which sides stream.

    The streaming flags come from the descriptor (``stream`` in the .proto), so
    the server picks grpcio's handler kind per method with no per-method code.
    """

    name: str
    path: str
    request: Any
    reply: Any
    client_streaming: bool = False
    server_streaming: bool = False

    @property
    def streaming(self) -> bool:
        """True when either side streams (the call is not one request, one reply)."""
        return self.client_streaming or self.server_streaming


class Schema:
    """A proto service, its rpcs by name, and the version its package names (``...v2``)."""

    def __init__(self, descriptor: Any) -> None:
        self.descriptor = descriptor
        self.full_name: str = descriptor.full_name
        package, _, self.short_name = self.full_name.rpartition(".")
        match = re.fullmatch(r"(.*\.)?v(\d+)", package)
        self.version: int | None = int(match.group(2)) if match else None
        # Sibling versions of this service: same package but for the version component.
        prefix = re.escape(match.group(1) or "") if match else None
        self._siblings = (
            re.compile(rf"{prefix}v\d+\.{re.escape(self.short_name)}")
            if prefix is not None
            else None
        )
        self.methods: dict[str, RpcMethod] = {
            m.name: RpcMethod(
                m.name,
                f"/{self.full_name}/{m.name}",
                message_factory.GetMessageClass(m.input_type),
                message_factory.GetMessageClass(m.output_type),
                bool(m.client_streaming),
                bool(m.server_streaming),
            )
            for m in descriptor.methods
        }

    def answers(self, service_name: str) -> bool:
        """True for this service and its sibling versions (what version skew needs)."""
        if service_name == self.full_name:
            return True
        return self._siblings is not None and self._siblings.fullmatch(service_name) is not None

    def __repr__(self) -> str:
        return f"Schema({self.full_name!r}, methods={sorted(self.methods)})"


_schemas: dict[int, Schema] = {}


def load_schema(proto: str | ModuleType | Any, service: str | None = None) -> Schema:
    """The schema for ``"v1"``/``"v2"``, a ``*_pb2`` module (or its name) or a ServiceDescriptor.

    A module with several services needs ``service`` (the short name).
    """
    if isinstance(proto, Schema):
        return proto
    if isinstance(proto, str):
        try:
            proto = importlib.import_module(PROTOS.get(proto, proto))
        except ImportError as exc:
            raise LocalProtocolError(
                f"unknown proto {proto!r}: use {sorted(PROTOS)} or a *_pb2 module ({exc})"
            ) from exc
    descriptor = proto
    if isinstance(proto, ModuleType):
        file = getattr(proto, "DESCRIPTOR", None)
        services = dict(getattr(file, "services_by_name", {}))
        if service is not None:
            descriptor = services.get(service)
        elif len(services) == 1:
            descriptor = next(iter(services.values()))
        else:
            descriptor = None
        if descriptor is None:
            raise LocalProtocolError(
                f"{proto.__name__} has services {sorted(services)}; name one with service="
            )
    if not hasattr(descriptor, "methods_by_name"):
        raise LocalProtocolError(f"not a proto service or *_pb2 module: {proto!r}")
    key = id(descriptor)
    if key not in _schemas:
        _schemas[key] = Schema(descriptor)
    return _schemas[key]


def rpc_name(method: str) -> str:
    """``counter.incr`` -> ``CounterIncr``; ``get_value`` -> ``GetValue``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._]", method))


def service_method(rpc: str, known: Iterable[str]) -> str:
    """The Service method an rpc names: ``CounterIncr`` is ``counter.incr`` or ``counter_incr``.

    CamelCase cannot say where a namespace ends, so every split is tried
    against the methods the service has; dotted ones first.
    """
    words = [str(w).lower() for w in _WORD.findall(rpc)] or [rpc.lower()]
    known = set(known)
    joins: Iterable[tuple[str, ...]]
    if len(words) <= 8:
        joins = itertools.product((".", "_"), repeat=len(words) - 1)
    else:
        joins = [(".",) * (len(words) - 1), ("_",) * (len(words) - 1)]
    for seps in joins:
        name = words[0] + "".join(s + w for s, w in zip(seps, words[1:], strict=True))
        if name in known:
            return name
    return ".".join(words)
