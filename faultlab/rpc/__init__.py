"""RPC: declare a service once, serve it with any protocol over any transport.

Protocols, each registered by name: ``jsonrpc``, ``xmlrpc``, ``msgpackrpc``, ``binrpc``,
``rest`` (sans-IO modules here, :class:`RpcProtocol`) and ``grpc`` (grpcio, the package
``faultlab.rpc.grpc``). Every one is a :class:`WireProtocol`: the one interface the lab,
the proxy and the bench ask (docs/rpc.md, "Adding a protocol").
"""

from __future__ import annotations

from faultlab.rpc.base import (
    RpcProtocol,
    WireProtocol,
    get_protocol,
    get_rpc_protocol,
    protocol_names,
    register_protocol,
)
from faultlab.rpc.client import AsyncClient, Client, connect
from faultlab.rpc.errors import (
    ApplicationError,
    DeadlineExceeded,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    RpcError,
    ServiceUnavailable,
    VersionMismatch,
)
from faultlab.rpc.messages import ErrorInfo, Request, Response
from faultlab.rpc.server import RpcServer, serve
from faultlab.rpc.service import Service, non_idempotent, service

__all__ = [
    "ApplicationError",
    "AsyncClient",
    "Client",
    "DeadlineExceeded",
    "ErrorInfo",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "ParseError",
    "Request",
    "Response",
    "RpcError",
    "RpcProtocol",
    "RpcServer",
    "Service",
    "ServiceUnavailable",
    "VersionMismatch",
    "WireProtocol",
    "connect",
    "get_protocol",
    "get_rpc_protocol",
    "non_idempotent",
    "protocol_names",
    "register_protocol",
    "serve",
    "service",
]
