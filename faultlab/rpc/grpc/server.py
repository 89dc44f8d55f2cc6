"""GrpcServer: serves a Python service through a proto service (and its sibling versions).

Streaming rpcs are served generically, from the descriptor's ``stream`` flags
(:class:`~faultlab.rpc.grpc.schema.RpcMethod`), with no per-method code: a
client stream reaches the service method as an iterator of decoded requests
(its first parameter), and a server stream is whatever iterable the method
returns, each item converted to the reply message. So the service stays plain
Python that knows no gRPC (the same object serves every protocol), and the
call still goes through ``Service.dispatch``: binding, bad params and
application errors map to the same kinds and trailing metadata as a unary call.
A method that declares a keyword parameter ``stopped`` gets a
``threading.Event`` set when the call ends (cancel, deadline, shutdown), so a
wait inside a stream wakes at once instead of holding its thread.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.protobuf import message  # type: ignore[import-untyped]

from faultlab._cleanup import Owner
from faultlab.errors import AddressError
from faultlab.rpc.channel import MAX_MESSAGE
from faultlab.rpc.errors import (
    ApplicationError,
    DeadlineExceeded,
    InternalError,
    InvalidParams,
    MethodNotFound,
    ParseError,
    RpcError,
    ServiceUnavailable,
)
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

__all__ = ["STOPPED", "GrpcServer", "Hook"]

Hook = Callable[[Request, Response], None]

STOPPED = "stopped"
"""The keyword parameter through which a streaming method learns that its call ended."""


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
        if rpc.streaming:
            return self._server._stream_handler(rpc, target)

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

    def _meta(self, context: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if self.schema.version is not None:
            meta["schema_version"] = self.schema.version
        for key, value in context.invocation_metadata() or ():
            if key == IDEMPOTENCY_KEY:
                meta["idempotency_key"] = value
        remaining = context.time_remaining()
        if remaining is not None:
            meta["timeout"] = remaining
        return meta

    def _params(self, rpc: RpcMethod, data: bytes, context: Any) -> list[Any] | dict[str, Any]:
        """One request message as call params; an unreadable one aborts the call."""
        try:
            incoming = rpc.request.FromString(data)
        except message.DecodeError as exc:
            abort(context, ErrorInfo.from_exception(ParseError(f"{rpc.name}: {exc}")))
        try:
            return request_to_params(incoming)
        except CONVERSION_ERRORS as exc:
            abort(context, ErrorInfo.from_exception(InvalidParams(f"{rpc.name}: {exc}")))

    def _handled(self, request: Request, response: Response) -> None:
        with self._lock:
            self.requests_handled += 1
        if self.on_request is not None:
            self.on_request(request, response)

    def _handle(self, rpc: RpcMethod, target: str, data: bytes, context: Any) -> bytes:
        meta = self._meta(context)
        rid = next(self._ids)
        params = self._params(rpc, data, context)
        request = Request(target, params, rid, meta=meta)
        response = self.service.dispatch(request)
        self._handled(request, response)
        if response.error is not None:
            abort(context, response.error)
        return self._reply(rpc, response.result, context)

    def _reply(self, rpc: RpcMethod, result: Any, context: Any) -> bytes:
        try:
            reply: bytes = result_to_reply(rpc.reply, result).SerializeToString()
        except CONVERSION_ERRORS as exc:
            error = InternalError(
                f"{rpc.name}: result does not fit {rpc.reply.DESCRIPTOR.full_name}: {exc}"
            )
            abort(context, ErrorInfo.from_exception(error))
        return reply

    # streams
    def _stream_handler(self, rpc: RpcMethod, target: str) -> Any:
        """grpcio's handler kind for the rpc's stream flags, around one generic behaviour."""
        if rpc.client_streaming:

            def streamed_in(requests: Iterator[bytes], context: Any) -> Any:
                stop = _stopped(context)
                decoded = _decoded(rpc, requests)
                return self._start(rpc, target, decoded, context, stop)

            if rpc.server_streaming:
                return grpc.stream_stream_rpc_method_handler(streamed_in)
            return grpc.stream_unary_rpc_method_handler(streamed_in)

        def streamed_out(data: bytes, context: Any) -> Any:
            stop = _stopped(context)
            return self._start(rpc, target, self._params(rpc, data, context), context, stop)

        return grpc.unary_stream_rpc_method_handler(streamed_out)

    def _start(
        self,
        rpc: RpcMethod,
        target: str,
        incoming: Iterator[Any] | list[Any] | dict[str, Any],
        context: Any,
        stop: threading.Event,
    ) -> Any:
        """Dispatch a streaming call: the reply bytes (client stream only) or a reply
        iterator. Errors raised before the first reply abort here, as a unary call's do."""
        meta = self._meta(context)
        rid = next(self._ids)
        method = self.service.methods.get(target)
        params: list[Any] | dict[str, Any]
        if isinstance(incoming, list | dict):
            params = incoming
        elif method is None:
            params = [incoming]  # dispatch answers MethodNotFound
        else:
            first = next((p for p in method.signature.parameters if p != STOPPED), None)
            params = {first: incoming} if first is not None else [incoming]
        if (
            method is not None
            and STOPPED in method.signature.parameters
            and isinstance(params, dict)
        ):
            params = {**params, STOPPED: stop}
        request = Request(target, params, rid, meta=meta)
        response = self.service.dispatch(request)
        if response.error is not None or not rpc.server_streaming:
            self._handled(request, response)
            if response.error is not None:
                abort(context, response.error)
            return self._reply(rpc, response.result, context)
        return self._send(rpc, request, response.result, context, stop)

    def _send(
        self, rpc: RpcMethod, request: Request, results: Any, context: Any, stop: threading.Event
    ) -> Iterator[bytes]:
        """Each result as a reply, until the results end or the call does.

        ``stop`` (set by grpcio's termination callback) is checked before each item,
        and the method's iterator is closed whatever ends the stream, so a cancelled
        stream runs no further item and its ``finally`` blocks run now, not at GC.
        """
        error: ErrorInfo | None = None
        sent = 0
        items: Iterator[Any] | None = None
        try:
            if not isinstance(results, Iterable) or isinstance(results, str | bytes | dict):
                raise InternalError(
                    f"{rpc.name} streams, but the method returned a {_kind(results)}"
                )
            items = iter(results)
            while not stop.is_set():
                try:
                    item = next(items)
                except StopIteration:
                    break
                try:
                    data: bytes = result_to_reply(rpc.reply, item).SerializeToString()
                except CONVERSION_ERRORS as exc:
                    raise InternalError(
                        f"{rpc.name}: item does not fit {rpc.reply.DESCRIPTOR.full_name}: {exc}"
                    ) from exc
                yield data
                sent += 1
            if stop.is_set():
                error = _ended(context)
        except RpcError as exc:
            error = ErrorInfo.from_exception(exc)
        except Exception as exc:  # the method's own failure, as dispatch reports it
            error = ErrorInfo.from_exception(
                ApplicationError(f"{type(exc).__name__}: {exc}", data={"type": type(exc).__name__})
            )
        except GeneratorExit:  # grpcio dropped the stream: the call is over
            error = _ended(context)
            raise
        finally:
            close = getattr(items, "close", None)
            if callable(close):
                close()
            request.meta["messages_sent"] = sent
            self._handled(request, Response(request.id, result=None, error=error))
        if error is not None and not stop.is_set():
            abort(context, error)

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


def _stopped(context: Any) -> threading.Event:
    """An event set when the call ends, however it ends (grpcio's termination callback)."""
    stop = threading.Event()
    if not context.add_callback(stop.set):
        stop.set()  # already over
    return stop


def _decoded(rpc: RpcMethod, requests: Iterator[bytes]) -> Iterator[Any]:
    """A client stream as the method sees it: each request message as a dict of fields
    (a ``google.protobuf.Value`` or other JSON-type message as its plain value).

    An unreadable message raises ``ParseError`` (an RpcError): dispatch, or the reply
    loop, reports it as the call's error, exactly as for a unary request.
    """
    for data in requests:
        try:
            incoming = rpc.request.FromString(data)
        except message.DecodeError as exc:
            raise ParseError(f"{rpc.name}: {exc}") from None
        try:
            params = request_to_params(incoming)
        except CONVERSION_ERRORS as exc:
            raise InvalidParams(f"{rpc.name}: {exc}") from None
        yield params if isinstance(params, dict) else params[0]


def _ended(context: Any) -> ErrorInfo:
    """Why a stream ended early, as the server's journal records it."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return ErrorInfo.from_exception(DeadlineExceeded("the stream's deadline passed"))
    return ErrorInfo.from_exception(ServiceUnavailable("the stream ended before its last item"))


def _kind(value: Any) -> str:
    return type(value).__name__
