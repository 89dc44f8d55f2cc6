"""GrpcServer: serves a Python service through a proto service (and its sibling versions)."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.protobuf import message  # type: ignore[import-untyped]

from faultlab._cleanup import Owner
from faultlab.errors import AddressError
from faultlab.rpc.channel import MAX_MESSAGE
from faultlab.rpc.errors import InternalError, InvalidParams, MethodNotFound, ParseError
from faultlab.rpc.grpc.address import (
    host_target,
    parse_address,
    refuse_live_socket,
    server_credentials,
    unix_target,
)
from faultlab.rpc.grpc.convert import CONVERSION_ERRORS, request_to_params, result_to_reply
from faultlab.rpc.grpc.schema import RpcMethod, load_schema, service_method
from faultlab.rpc.grpc.status import IDEMPOTENCY_KEY, abort
from faultlab.rpc.messages import ErrorInfo, Request, Response
from faultlab.rpc.service import Service
from faultlab.transports.base import ParsedAddress
from faultlab.transports.tcp import format_host_port

__all__ = ["GrpcServer", "Hook"]

Hook = Callable[[Request, Response], None]


class _Handlers(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Finds the handler for a path: our service or a sibling version of it."""

    def __init__(self, server: GrpcServer) -> None:
        self._server = server
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()

    def service(self, details: Any) -> Any:
        path: str = details.method
        handler = self._cache.get(path)
        if handler is None:
            handler = self._build(path)
            if handler is not None:
                with self._lock:
                    self._cache[path] = handler
        return handler

    def _build(self, path: str) -> Any:
        service_name, _, name = path.lstrip("/").partition("/")
        schema = self._server.schema
        if not (
            service_name == schema.full_name
            or (self._server.other_versions and schema.answers(service_name))
        ):
            return None  # another service: grpcio answers UNIMPLEMENTED
        rpc = schema.methods.get(name)
        if rpc is None:
            error = ErrorInfo.from_exception(
                MethodNotFound(f"no method {name!r} in {schema.full_name}")
            )

            def missing(data: bytes, context: Any) -> bytes:
                abort(context, error)

            return grpc.unary_unary_rpc_method_handler(missing)
        target = service_method(name, self._server.service.methods)

        def behaviour(data: bytes, context: Any) -> bytes:
            return self._server._handle(rpc, target, data, context)

        return grpc.unary_unary_rpc_method_handler(behaviour)


class GrpcServer:
    """Serves a Python service object through a proto service; ``address`` is the real one."""

    def __init__(
        self,
        service: Service | object,
        *,
        address: str = "tcp://127.0.0.1:0",
        proto: str | ModuleType | Any = "v1",
        on_request: Hook | None = None,
        max_workers: int = 16,
        max_message: int = MAX_MESSAGE,
        grace: float = 1.0,
        other_versions: bool = True,
    ) -> None:
        """``other_versions=False`` answers only the proto's own package: a skewed
        client then gets MethodNotFound for every call (a strict server to test against).
        """
        self.service = service if isinstance(service, Service) else Service(service)
        self.schema = load_schema(proto)
        self.on_request = on_request
        self.grace = grace
        self.other_versions = other_versions
        self.requests_handled = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closed = False
        self._owner: Owner | None = None
        parsed = parse_address(address)
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="faultlab-grpc")
        options = [
            ("grpc.max_send_message_length", max_message),
            ("grpc.max_receive_message_length", max_message),
            ("grpc.so_reuseport", 0),  # a fixed port must fail when taken, not be shared
        ]
        self._server = grpc.server(self._pool, handlers=[_Handlers(self)], options=options)
        try:
            self.address = self._bind(parsed)
            self._server.start()
        except BaseException:
            self._server.stop(None)
            self._pool.shutdown(wait=False)
            raise

    def _bind(self, parsed: ParsedAddress) -> str:
        if parsed.scheme == "unix":
            target, path = unix_target(parsed)
            if path is not None:
                refuse_live_socket(path)
            self._add_port(target, None, parsed.uri)
            if path is not None:
                ino = os.lstat(path).st_ino

                def remove(path: str = path, ino: int = ino) -> None:
                    try:
                        if os.lstat(path).st_ino == ino:  # never remove a successor's socket
                            os.unlink(path)
                    except FileNotFoundError:
                        pass

                self._owner = Owner(remove)
            return f"unix://{parsed.path}"
        target = host_target(parsed)
        credentials = server_credentials(parsed) if parsed.scheme == "tls" else None
        port = self._add_port(target, credentials, parsed.uri)
        query = "?" + parsed.uri.split("?", 1)[1] if "?" in parsed.uri else ""
        return format_host_port(parsed.scheme, parsed.host, port) + query

    def _add_port(self, target: str, credentials: Any, uri: str) -> int:
        try:
            if credentials is None:
                port: int = self._server.add_insecure_port(target)
            else:
                port = self._server.add_secure_port(target, credentials)
        except RuntimeError as exc:
            raise AddressError(f"cannot listen on {uri}: {exc}") from exc
        if port == 0 and not target.startswith("unix"):
            raise AddressError(f"cannot listen on {uri}")
        return port

    def _handle(self, rpc: RpcMethod, target: str, data: bytes, context: Any) -> bytes:
        meta: dict[str, Any] = {}
        if self.schema.version is not None:
            meta["schema_version"] = self.schema.version
        for key, value in context.invocation_metadata() or ():
            if key == IDEMPOTENCY_KEY:
                meta["idempotency_key"] = value
        remaining = context.time_remaining()
        if remaining is not None:
            meta["timeout"] = remaining
        rid = next(self._ids)
        try:
            incoming = rpc.request.FromString(data)
        except message.DecodeError as exc:
            abort(context, ErrorInfo.from_exception(ParseError(f"{rpc.name}: {exc}")))
        try:
            params = request_to_params(incoming)
        except CONVERSION_ERRORS as exc:
            abort(context, ErrorInfo.from_exception(InvalidParams(f"{rpc.name}: {exc}")))
        request = Request(target, params, rid, meta=meta)
        response = self.service.dispatch(request)
        with self._lock:
            self.requests_handled += 1
        if self.on_request is not None:
            self.on_request(request, response)
        if response.error is not None:
            abort(context, response.error)
        try:
            reply: bytes = result_to_reply(rpc.reply, response.result).SerializeToString()
        except CONVERSION_ERRORS as exc:
            error = InternalError(
                f"{rpc.name}: result does not fit {rpc.reply.DESCRIPTOR.full_name}: {exc}"
            )
            abort(context, ErrorInfo.from_exception(error))
        return reply

    def close(self, grace: float | None = None) -> None:
        """Stop: calls in flight get ``grace`` seconds, then are cancelled."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.stop(self.grace if grace is None else grace).wait()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._owner is not None:
            self._owner.release()

    def __enter__(self) -> GrpcServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GrpcServer({self.address!r}, {self.schema.full_name})"
