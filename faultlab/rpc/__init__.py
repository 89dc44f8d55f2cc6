"""RPC: declare a service once, serve it with any protocol over any transport.

Protocols: ``jsonrpc``, ``xmlrpc``, ``msgpackrpc``, ``binrpc``, ``rest`` (sans-IO
modules here) and ``grpc`` (grpcio, ``faultlab.rpc.grpc``).
"""

from __future__ import annotations

from faultlab.rpc.base import RpcProtocol, get_protocol, protocol_names, register_protocol
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
    "connect",
    "get_protocol",
    "non_idempotent",
    "protocol_names",
    "register_protocol",
    "serve",
    "service",
]
