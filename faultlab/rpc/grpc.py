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
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import re
import socket
import stat
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NoReturn

import grpc  # type: ignore[import-untyped]
from google.protobuf import message, message_factory, struct_pb2  # type: ignore[import-untyped]

from faultlab._cleanup import Owner
from faultlab._proc import serve_until_stopped
from faultlab.errors import AddressError, LocalProtocolError, RemoteProtocolError
from faultlab.rpc.channel import MAX_MESSAGE
from faultlab.rpc.client import MethodProxy
from faultlab.rpc.errors import (
    ApplicationError,
    DeadlineExceeded,
    InternalError,
    InvalidParams,
    MethodNotFound,
    ParseError,
    RpcError,
    ServiceUnavailable,
    error_for,
)
from faultlab.rpc.messages import ErrorInfo, Request, Response
from faultlab.rpc.service import Service
from faultlab.transports.base import ParsedAddress, parse_address
from faultlab.transports.tcp import format_host_port

__all__ = [
    "IDEMPOTENCY_KEY",
    "KIND_KEY",
    "PROTOS",
    "SCHEMES",
    "GrpcClient",
    "GrpcServer",
    "RpcMethod",
    "Schema",
    "load_schema",
    "main",
    "rpc_name",
]

PROTOS = {
    "v1": "faultlab.examples.protos.calc_v1_pb2",
    "v2": "faultlab.examples.protos.calc_v2_pb2",
}
"""Short names for the calc example's generated modules."""

SCHEMES = ("tcp", "unix", "tls")
KIND_KEY = "faultlab-kind"
CODE_KEY = "faultlab-code"
DATA_KEY = "faultlab-data-bin"  # "-bin": gRPC carries the value as raw bytes
IDEMPOTENCY_KEY = "idempotency-key"

_SC = grpc.StatusCode
_STATUS_FOR_KIND: dict[str, Any] = {
    "method_not_found": _SC.UNIMPLEMENTED,
    "invalid_params": _SC.INVALID_ARGUMENT,
    "invalid_request": _SC.INVALID_ARGUMENT,
    "parse_error": _SC.INVALID_ARGUMENT,
    "application_error": _SC.FAILED_PRECONDITION,
    "internal_error": _SC.INTERNAL,
    "unavailable": _SC.UNAVAILABLE,
    "deadline_exceeded": _SC.DEADLINE_EXCEEDED,
    "version_mismatch": _SC.FAILED_PRECONDITION,
}
# For statuses that come without our metadata (a third-party server, grpcio itself).
# ABORTED and RESOURCE_EXHAUSTED are the ones gRPC's own guidance calls retryable.
_KIND_FOR_STATUS: dict[Any, type[RpcError]] = {
    _SC.UNAVAILABLE: ServiceUnavailable,
    _SC.ABORTED: ServiceUnavailable,
    _SC.RESOURCE_EXHAUSTED: ServiceUnavailable,
    _SC.DEADLINE_EXCEEDED: DeadlineExceeded,
    _SC.UNIMPLEMENTED: MethodNotFound,
    _SC.INVALID_ARGUMENT: InvalidParams,
    _SC.OUT_OF_RANGE: InvalidParams,
    _SC.FAILED_PRECONDITION: ApplicationError,
    _SC.NOT_FOUND: ApplicationError,
    _SC.ALREADY_EXISTS: ApplicationError,
    _SC.PERMISSION_DENIED: ApplicationError,
    _SC.UNAUTHENTICATED: ApplicationError,
}

_VALUE = "google.protobuf.Value"
_STRUCT = "google.protobuf.Struct"
_LIST = "google.protobuf.ListValue"
_EMPTY = "google.protobuf.Empty"
_JSON_TYPES = (_VALUE, _STRUCT, _LIST)
_EXACT_DOUBLE = 2**53
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+")


# ---------------------------------------------------------------------------
# schema: a proto service and its methods, from descriptors


@dataclass(frozen=True, slots=True)
class RpcMethod:
    """One rpc: its name, path and message classes."""

    name: str
    path: str
    request: Any
    reply: Any


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


def _service_method(rpc: str, known: Iterable[str]) -> str:
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


# ---------------------------------------------------------------------------
# conversions between Python values and messages


class _Unfit(ValueError):
    """A Python value the schema cannot hold exactly (so it must not be sent rounded)."""


def _is_map(field: Any) -> bool:
    return bool(
        field.is_repeated
        and field.message_type is not None
        and field.message_type.GetOptions().map_entry
    )


def to_value(obj: Any) -> Any:
    """A JSON-like Python value as ``google.protobuf.Value`` (ints only up to 2**53)."""
    value = struct_pb2.Value()
    if obj is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        value.bool_value = obj
    elif isinstance(obj, int):
        if abs(obj) > _EXACT_DOUBLE:
            raise _Unfit(f"{obj} does not fit a double exactly (google.protobuf.Value)")
        value.number_value = obj
    elif isinstance(obj, float):
        value.number_value = obj
    elif isinstance(obj, str):
        value.string_value = obj
    elif isinstance(obj, Mapping):
        value.struct_value.SetInParent()
        for key, item in obj.items():
            if not isinstance(key, str):
                raise _Unfit(f"google.protobuf.Struct keys are strings, not {type(key).__name__}")
            value.struct_value.fields[key].CopyFrom(to_value(item))
    elif isinstance(obj, list | tuple):
        value.list_value.SetInParent()
        for item in obj:
            value.list_value.values.add().CopyFrom(to_value(item))
    else:
        raise _Unfit(f"google.protobuf.Value cannot hold a {type(obj).__name__}")
    return value


def from_value(value: Any) -> Any:
    """``google.protobuf.Value`` as Python; every number comes back a float."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {k: from_value(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [from_value(v) for v in value.list_value.values]
    return None


def _scalar(field: Any, value: Any) -> Any:
    fd = field
    if fd.type == fd.TYPE_BYTES:
        if not isinstance(value, bytes | bytearray):
            raise _Unfit(f"{fd.name} must be bytes, got {type(value).__name__}")
        return bytes(value)
    cpp = fd.cpp_type
    if cpp in (fd.CPPTYPE_INT32, fd.CPPTYPE_INT64, fd.CPPTYPE_UINT32, fd.CPPTYPE_UINT64):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Unfit(f"{fd.name} must be int, got {type(value).__name__}")
        return value
    if cpp in (fd.CPPTYPE_DOUBLE, fd.CPPTYPE_FLOAT):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Unfit(f"{fd.name} must be a number, got {type(value).__name__}")
        if isinstance(value, int) and abs(value) > _EXACT_DOUBLE:
            raise _Unfit(f"{fd.name}: {value} does not fit a double exactly")
        return float(value)
    if cpp == fd.CPPTYPE_BOOL:
        if not isinstance(value, bool):
            raise _Unfit(f"{fd.name} must be bool, got {type(value).__name__}")
        return value
    if cpp == fd.CPPTYPE_ENUM:
        if isinstance(value, str):
            named = fd.enum_type.values_by_name.get(value)
            if named is None:
                raise _Unfit(f"{fd.name}: no enum value {value!r}")
            return named.number
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Unfit(f"{fd.name} must be an enum name or number")
        return value
    if not isinstance(value, str):
        raise _Unfit(f"{fd.name} must be str, got {type(value).__name__}")
    return value


def _assign(target: Any, value: Any) -> None:
    """Fill the (sub)message ``target`` from ``value``; marks it present."""
    full = target.DESCRIPTOR.full_name
    if isinstance(value, message.Message):
        if value.DESCRIPTOR.full_name != full:
            raise _Unfit(f"expected {full}, got {value.DESCRIPTOR.full_name}")
        target.CopyFrom(value)
    elif full == _VALUE:
        target.CopyFrom(to_value(value))
    elif full == _STRUCT:
        if not isinstance(value, Mapping):
            raise _Unfit(f"{full} needs a dict, got {type(value).__name__}")
        target.CopyFrom(to_value(value).struct_value)
    elif full == _LIST:
        if not isinstance(value, list | tuple):
            raise _Unfit(f"{full} needs a list, got {type(value).__name__}")
        target.CopyFrom(to_value(value).list_value)
    else:
        if not isinstance(value, Mapping):
            raise _Unfit(f"{full} needs a dict, got {type(value).__name__}")
        target.SetInParent()
        fill(target, value, strict=True)


def set_field(msg: Any, field: Any, value: Any) -> None:
    """Set one field from a Python value; ``None`` leaves a field with presence unset."""
    name = field.name
    if _is_map(field):
        if not isinstance(value, Mapping):
            raise _Unfit(f"{name} needs a dict, got {type(value).__name__}")
        target = getattr(msg, name)
        entry = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            if entry.message_type is not None:
                _assign(target[key], item)
            else:
                target[key] = _scalar(entry, item)
        return
    if field.is_repeated:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            raise _Unfit(f"{name} needs a list, got {type(value).__name__}")
        target = getattr(msg, name)
        for item in value:
            if field.message_type is not None:
                _assign(target.add(), item)
            else:
                target.append(_scalar(field, item))
        return
    if value is None and (field.has_presence or field.message_type is not None):
        if field.message_type is not None and field.message_type.full_name == _VALUE:
            _assign(getattr(msg, name), None)  # a Value field holds null explicitly
        return
    if field.message_type is not None:
        _assign(getattr(msg, name), value)
        return
    if value is None:
        raise _Unfit(f"{name} cannot be null")
    setattr(msg, name, _scalar(field, value))


def fill(msg: Any, data: Mapping[str, Any], *, strict: bool) -> None:
    """Set fields by name; ``strict`` refuses names the message lacks, else skips them."""
    fields = msg.DESCRIPTOR.fields_by_name
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            if strict:
                raise _Unfit(f"{msg.DESCRIPTOR.full_name} has no field {key!r}")
            continue
        set_field(msg, field, value)


def _python(field: Any, value: Any) -> Any:
    if field.message_type is not None:
        return to_python(value)
    if field.cpp_type == field.CPPTYPE_ENUM:
        named = field.enum_type.values_by_number.get(value)
        return named.name if named is not None else value
    return value


def field_to_python(msg: Any, field: Any) -> Any:
    """One field's Python value; an unset field with presence is ``None``."""
    value = getattr(msg, field.name)
    if _is_map(field):
        entry = field.message_type.fields_by_name["value"]
        return {k: _python(entry, v) for k, v in value.items()}
    if field.is_repeated:
        return [_python(field, v) for v in value]
    if field.has_presence and not msg.HasField(field.name):
        return None
    return _python(field, value)


def to_python(msg: Any) -> Any:
    """A message as Python: JSON types as values, Empty as None, the rest as dicts."""
    full = msg.DESCRIPTOR.full_name
    if full == _VALUE:
        return from_value(msg)
    if full == _STRUCT:
        return {k: from_value(v) for k, v in msg.fields.items()}
    if full == _LIST:
        return [from_value(v) for v in msg.values]
    if full == _EMPTY:
        return None
    return {f.name: field_to_python(msg, f) for f in msg.DESCRIPTOR.fields}


def reply_to_python(msg: Any) -> Any:
    """A reply as the method's result: a single-field reply is just that field."""
    fields = msg.DESCRIPTOR.fields
    if msg.DESCRIPTOR.full_name not in _JSON_TYPES and len(fields) == 1:
        return field_to_python(msg, fields[0])
    return to_python(msg)


def request_to_params(msg: Any) -> list[Any] | dict[str, Any]:
    """A request as call params; unset fields with presence are left to Python defaults."""
    full = msg.DESCRIPTOR.full_name
    if full in _JSON_TYPES:
        return [to_python(msg)]
    params: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        if field.is_repeated or not field.has_presence or msg.HasField(field.name):
            params[field.name] = field_to_python(msg, field)
    return params


def params_to_request(cls: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Call arguments as a request: positional args fill fields in declaration order."""
    msg = cls()
    full = msg.DESCRIPTOR.full_name
    if full in _JSON_TYPES:
        values = [*args, *kwargs.values()]
        if len(values) != 1:
            raise _Unfit(f"{full} carries exactly one value, got {len(values)}")
        _assign(msg, values[0])
        return msg
    names = [f.name for f in msg.DESCRIPTOR.fields]
    if len(args) > len(names):
        raise _Unfit(f"{full} takes at most {len(names)} params ({names}), got {len(args)}")
    data = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key in data:
            raise _Unfit(f"param {key!r} given twice")
        data[key] = value
    fill(msg, data, strict=True)
    return msg


def result_to_reply(cls: Any, result: Any) -> Any:
    """A method's result as its reply: a dict fills fields, else the single field holds it."""
    msg = cls()
    full = msg.DESCRIPTOR.full_name
    if full == _EMPTY:
        return msg
    if full in _JSON_TYPES:
        _assign(msg, result)
        return msg
    fields = msg.DESCRIPTOR.fields
    names = {f.name for f in fields}
    if isinstance(result, Mapping) and result and set(result) <= names:
        fill(msg, result, strict=True)
    elif len(fields) == 1:
        set_field(msg, fields[0], result)
    elif isinstance(result, Mapping) and set(result) & names:
        fill(msg, result, strict=False)  # a newer service's extra keys: this schema's view
    else:
        raise _Unfit(f"cannot fit a {type(result).__name__} into {full}")
    return msg


_CONVERSION_ERRORS = (_Unfit, ValueError, TypeError, OverflowError, RecursionError)


# ---------------------------------------------------------------------------
# addresses


_PEM_KEY = re.compile(
    rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----\s*", re.S
)
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.S)


def _pem_parts(path: str) -> tuple[bytes, bytes]:
    """(private key, certificate chain) from a PEM file: grpcio wants them apart."""
    with open(path, "rb") as fh:
        text = fh.read()
    key = b"".join(m.group(0) for m in _PEM_KEY.finditer(text))
    chain = b"".join(m.group(0) for m in _PEM_CERT.finditer(text))
    return key, chain


def _server_credentials(parsed: ParsedAddress) -> Any:
    from faultlab.transports.tls import test_ca_files

    certfile = parsed.options.get("certfile") or str(test_ca_files()[1])
    keyfile = parsed.options.get("keyfile")
    try:
        key, chain = _pem_parts(certfile)
        if keyfile:
            key = _pem_parts(keyfile)[0]
    except OSError as exc:
        raise AddressError(f"cannot load TLS certificate {certfile!r}: {exc}") from exc
    if not key or not chain:
        raise AddressError(f"{certfile!r} (with keyfile {keyfile!r}) lacks a key or certificate")
    return grpc.ssl_server_credentials([(key, chain)])


def _channel_credentials(parsed: ParsedAddress) -> Any:
    from faultlab.transports.tls import test_ca_files

    cafile = parsed.options.get("cafile") or str(test_ca_files()[0])
    try:
        with open(cafile, "rb") as fh:
            return grpc.ssl_channel_credentials(root_certificates=fh.read())
    except OSError as exc:
        raise AddressError(f"cannot load TLS CA {cafile!r}: {exc}") from exc


def _unix_target(parsed: ParsedAddress) -> tuple[str, str | None]:
    """(gRPC target, socket file path or None for an abstract name)."""
    path = parsed.path
    if parsed.host and not path.startswith("@"):
        raise AddressError(f"{parsed.uri!r}: use unix:///absolute/path or unix://@name")
    if not path:
        raise AddressError(f"{parsed.uri!r} has no path")
    if path.startswith("@"):
        return f"unix-abstract:{path[1:]}", None
    return f"unix:{path}", path


def _host_target(parsed: ParsedAddress) -> str:
    if parsed.port is None or not parsed.host:
        raise AddressError(f"{parsed.uri!r} needs a host and a port, e.g. tcp://127.0.0.1:0")
    return format_host_port(parsed.scheme, parsed.host, parsed.port).split("://", 1)[1]


def _parse(address: str) -> ParsedAddress:
    parsed = parse_address(address)
    if parsed.scheme not in SCHEMES:
        raise AddressError(
            f"gRPC runs over {', '.join(s + '://' for s in SCHEMES)} only, not {address!r}"
        )
    return parsed


def _refuse_live_socket(path: str) -> None:
    """grpcio unlinks whatever socket file is in the way; never steal a live server's."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise AddressError(f"{path!r} exists and is not a socket; refusing to remove it")
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return  # stale: grpcio replaces it
    finally:
        probe.close()
    raise AddressError(f"address in use: a live server listens on {path!r}")


# ---------------------------------------------------------------------------
# server

Hook = Callable[[Request, Response], None]


def _abort(context: Any, error: ErrorInfo) -> NoReturn:
    metadata: list[tuple[str, str | bytes]] = [(KIND_KEY, error.kind), (CODE_KEY, str(error.code))]
    if error.data is not None:
        metadata.append((DATA_KEY, json.dumps(error.data, default=repr).encode()))
    context.set_trailing_metadata(tuple(metadata))
    context.abort(_STATUS_FOR_KIND.get(error.kind, _SC.INTERNAL), error.message)
    raise AssertionError("grpc context.abort returned")  # pragma: no cover


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
                _abort(context, error)

            return grpc.unary_unary_rpc_method_handler(missing)
        target = _service_method(name, self._server.service.methods)

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
        parsed = _parse(address)
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
            target, path = _unix_target(parsed)
            if path is not None:
                _refuse_live_socket(path)
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
        target = _host_target(parsed)
        credentials = _server_credentials(parsed) if parsed.scheme == "tls" else None
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
            _abort(context, ErrorInfo.from_exception(ParseError(f"{rpc.name}: {exc}")))
        try:
            params = request_to_params(incoming)
        except _CONVERSION_ERRORS as exc:
            _abort(context, ErrorInfo.from_exception(InvalidParams(f"{rpc.name}: {exc}")))
        request = Request(target, params, rid, meta=meta)
        response = self.service.dispatch(request)
        with self._lock:
            self.requests_handled += 1
        if self.on_request is not None:
            self.on_request(request, response)
        if response.error is not None:
            _abort(context, response.error)
        try:
            reply: bytes = result_to_reply(rpc.reply, response.result).SerializeToString()
        except _CONVERSION_ERRORS as exc:
            error = InternalError(
                f"{rpc.name}: result does not fit {rpc.reply.DESCRIPTOR.full_name}: {exc}"
            )
            _abort(context, ErrorInfo.from_exception(error))
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


# ---------------------------------------------------------------------------
# client


def _error_from(exc: Any) -> RpcError:
    """A typed error for a failed call: our metadata's kind, else the gRPC status."""
    status = exc.code() if callable(getattr(exc, "code", None)) else _SC.UNKNOWN
    details = (exc.details() if callable(getattr(exc, "details", None)) else None) or ""
    trailing = exc.trailing_metadata() if callable(getattr(exc, "trailing_metadata", None)) else ()
    metadata = dict(trailing or ())
    kind = metadata.get(KIND_KEY)
    if kind:
        data = None
        raw = metadata.get(DATA_KEY)
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
        code_text = metadata.get(CODE_KEY, "")
        code = int(code_text) if re.fullmatch(r"-?\d+", str(code_text)) else None
        return error_for(kind=str(kind), code=code, message=details, data=data)
    cls = _KIND_FOR_STATUS.get(status, InternalError)
    name = getattr(status, "name", str(status))
    return cls(details or name.lower().replace("_", " "), data={"grpc_status": name})


class GrpcClient:
    """A synchronous gRPC client; never retries (grpcio's retries are switched off)."""

    def __init__(
        self,
        address: str,
        *,
        proto: str | ModuleType | Any = "v1",
        timeout: float = 10.0,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        self.address = address
        self.schema = load_schema(proto)
        self.timeout = timeout
        parsed = _parse(address)
        options = [
            ("grpc.enable_retries", 0),  # retrying is the policy under test, not grpcio's
            ("grpc.use_local_subchannel_pool", 1),  # own connection: faults stay per client
            ("grpc.max_send_message_length", max_message),
            ("grpc.max_receive_message_length", max_message),
        ]
        if parsed.scheme == "unix":
            self._channel = grpc.insecure_channel(_unix_target(parsed)[0], options=options)
        elif parsed.scheme == "tls":
            credentials = _channel_credentials(parsed)
            target = _host_target(parsed)
            self._channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(_host_target(parsed), options=options)
        self._stubs: dict[str, Any] = {}

    def _stub(self, rpc: RpcMethod) -> Any:
        stub = self._stubs.get(rpc.name)
        if stub is None:
            try:  # bytes in, bytes out: we decode; registered: grpcio resolves the path once
                stub = self._channel.unary_unary(rpc.path, _registered_method=True)
            except TypeError:  # grpcio < 1.63
                stub = self._channel.unary_unary(rpc.path)
            self._stubs[rpc.name] = stub
        return stub

    def call(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` (``"add"``, ``"counter.incr"`` or ``"CounterIncr"``).

        Raises :class:`RpcError` subclasses: :class:`MethodNotFound` for a method
        the client's proto (or the server) lacks, :class:`InvalidParams` for
        arguments the request message cannot hold exactly, the server's kind for
        error replies, and :class:`ServiceUnavailable` / :class:`DeadlineExceeded`
        for connection failures and timeouts. An unreadable reply raises
        ``RemoteProtocolError``.
        """
        rpc = self.schema.methods.get(rpc_name(method)) or self.schema.methods.get(method)
        if rpc is None:
            raise MethodNotFound(f"no method {method!r} in {self.schema.full_name} (client proto)")
        try:
            request = params_to_request(rpc.request, args, kwargs)
        except _CONVERSION_ERRORS as exc:
            raise InvalidParams(f"{method}: {exc}") from None
        metadata = ((IDEMPOTENCY_KEY, idempotency_key),) if idempotency_key else None
        try:
            data = self._stub(rpc)(
                request.SerializeToString(),
                timeout=self.timeout if timeout is None else timeout,
                metadata=metadata,
            )
        except grpc.RpcError as exc:
            raise _error_from(exc) from None
        try:
            reply = rpc.reply.FromString(data)
        except message.DecodeError as exc:
            raise RemoteProtocolError(
                f"{method}: unreadable {rpc.reply.DESCRIPTOR.full_name}"
            ) from exc
        return reply_to_python(reply)

    def __getattr__(self, name: str) -> MethodProxy:
        if name.startswith("_"):
            raise AttributeError(name)
        return MethodProxy(self, name)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ---------------------------------------------------------------------------
# command line: a calc server for cross-process tests


def main(argv: Sequence[str] | None = None) -> int:
    """``serve``: run the calc example until SIGTERM or stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m faultlab.rpc.grpc")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the calc example and print READY <address>")
    serve.add_argument("--proto", default="v1", help="v1, v2 or a *_pb2 module (default: v1)")
    serve.add_argument("--address", default="tcp://127.0.0.1:0", help="tcp://, unix:// or tls://")
    serve.add_argument(
        "--schema-version", type=int, default=None, help="calc object version (default: proto's)"
    )
    args = parser.parse_args(argv)
    from faultlab.examples.calc import Calc, CalcV2

    schema = load_schema(args.proto)
    version = args.schema_version or schema.version or 1
    obj = CalcV2() if version >= 2 else Calc()
    server = GrpcServer(obj, address=args.address, proto=schema)
    serve_until_stopped(server.address)
    server.close(grace=0.5)
    os._exit(0)  # handler threads still sleeping must not hold up exit


if __name__ == "__main__":
    raise SystemExit(main())
