"""gRPC: serve a :class:`Service` through a ``.proto`` service, and call one.

grpcio owns the HTTP/2 connection, so gRPC runs over ``tcp://``, ``unix://``
and ``tls://`` only, and faults are injected below it by the byte proxy. Both
ends are built from the proto's descriptors, never by hand per method: rpc
``CounterIncr`` is service method ``counter.incr``, request fields are
keyword params (positional args fill them in declaration order), and a reply
with a single field carries a bare value. Every call goes through
:meth:`Service.dispatch`, so error kinds are the same as with every other
protocol; the kind rides in trailing metadata (``faultlab-kind``) beside a
standard gRPC status that any third-party client understands.

Version skew: a server also answers its service under the sibling version
packages (a ``faultlab.calc.v2`` server answers ``/faultlab.calc.v1.Calc/...``)
with its own message types. Field numbers never change between versions, so
each side skips the fields it does not know; a method only one side knows
fails with UNIMPLEMENTED (:class:`MethodNotFound`), never with a wrong answer.

``python -m faultlab.rpc.grpc serve --proto v1 --address URI`` serves the calc
example and prints ``READY <address>`` (for cross-process tests).

The package: ``protocol`` (the registered :class:`Grpc`, no grpcio needed), ``schema``
(descriptors), ``convert`` (values <-> messages), ``status`` (status codes <-> kinds),
``address`` (targets, TLS), ``server``, ``client`` and ``cli``. The names below are
imported lazily, so registering the protocol never imports grpcio.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from faultlab.rpc.base import register_protocol
from faultlab.rpc.grpc.protocol import SCHEMES, Grpc

if TYPE_CHECKING:
    from faultlab.rpc.grpc.cli import main
    from faultlab.rpc.grpc.client import GrpcClient
    from faultlab.rpc.grpc.convert import (
        CONVERSION_ERRORS,
        params_to_request,
        reply_to_python,
        request_to_params,
        result_to_reply,
    )
    from faultlab.rpc.grpc.schema import PROTOS, RpcMethod, Schema, load_schema, rpc_name
    from faultlab.rpc.grpc.server import GrpcServer
    from faultlab.rpc.grpc.status import IDEMPOTENCY_KEY, KIND_KEY

__all__ = [
    "CONVERSION_ERRORS",
    "IDEMPOTENCY_KEY",
    "KIND_KEY",
    "PROTOS",
    "SCHEMES",
    "Grpc",
    "GrpcClient",
    "GrpcServer",
    "RpcMethod",
    "Schema",
    "load_schema",
    "main",
    "params_to_request",
    "reply_to_python",
    "request_to_params",
    "result_to_reply",
    "rpc_name",
]

_LAZY = {
    "CONVERSION_ERRORS": "convert",
    "_CONVERSION_ERRORS": "convert",
    "params_to_request": "convert",
    "reply_to_python": "convert",
    "request_to_params": "convert",
    "result_to_reply": "convert",
    "IDEMPOTENCY_KEY": "status",
    "KIND_KEY": "status",
    "PROTOS": "schema",
    "RpcMethod": "schema",
    "Schema": "schema",
    "load_schema": "schema",
    "rpc_name": "schema",
    "GrpcClient": "client",
    "GrpcServer": "server",
    "main": "cli",
}


def __getattr__(name: str) -> Any:
    """The grpcio-backed names, imported on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    attribute = "CONVERSION_ERRORS" if name == "_CONVERSION_ERRORS" else name
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value
    return value


register_protocol(Grpc())
