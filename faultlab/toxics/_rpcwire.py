"""A frame-level view of RPC messages for protocol-aware toxics (rpc_error, fail_first, skew).

Why not the protocol modules' own ``handle``/``decode_response``: those turn
a message into a call and back, losing what a proxy must keep (a JSON-RPC
batch, extra members, the binrpc header version). A toxic sees one frame and
must leave it byte-identical unless it rewrites it on purpose, so this module
decodes a frame into an editable :class:`RpcMessage`, re-encodes it, and
builds each protocol's native error replies (JSON-RPC error object, XML-RPC
fault, msgpack-RPC error, binrpc error, HTTP status for REST and for any
protocol carried over HTTP). Sans-IO, like everything it builds on.
"""

from __future__ import annotations

import json
import xmlrpc.client
from dataclasses import dataclass, field
from typing import Any
from xml.parsers.expat import ExpatError

import h11

from faultlab.codecs.framing.http import HttpFramer, HttpMessage
from faultlab.errors import FaultlabError
from faultlab.rpc.base import get_protocol
from faultlab.rpc.binrpc import ERROR, HEADER, MAGIC, NOTIFICATION, REPLY, decode_header
from faultlab.rpc.errors import KINDS
from faultlab.rpc.messages import ErrorInfo
from faultlab.rpc.msgpackrpc import packb, unpackb
from faultlab.rpc.rest import STATUS_BY_KIND

__all__ = [
    "HTTP_PROTOCOLS",
    "PROTOCOLS",
    "Item",
    "RpcMessage",
    "decode",
    "encode",
    "error_info",
    "error_reply",
    "error_response",
    "protocol_reason",
    "resolve_protocol",
]

PROTOCOLS = ("jsonrpc", "xmlrpc", "msgpackrpc", "binrpc", "rest")
HTTP_PROTOCOLS = ("jsonrpc", "xmlrpc", "rest")
"""Protocols that may be carried over HTTP (``framing="http"``)."""
_CONTENT_TYPES = {"jsonrpc": "application/json", "xmlrpc": "text/xml", "rest": "application/json"}
_REQUEST, _RESPONSE, _NOTIFY = 0, 1, 2


@dataclass
class Item:
    """One call or one reply inside a frame (a JSON-RPC batch has several)."""

    method: str | None = None
    id: Any = None
    notification: bool = False
    params: Any = None
    result: Any = None
    error: Any = None
    """The native error object of an error reply (left as is)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Members we do not interpret (JSON-RPC ``faultlab``...), kept on re-encoding."""


@dataclass
class RpcMessage:
    """One decoded frame: requests or replies of ``protocol``, possibly inside HTTP."""

    protocol: str
    request: bool
    items: list[Item]
    batch: bool = False
    version: int = 0
    """binrpc header version."""
    flags: int = 0
    """binrpc header flags."""
    wrapped_meta: dict[str, Any] | None = None
    """binrpc ``{"params", "meta"}`` wrapper's meta, kept on re-encoding."""
    http: HttpMessage | None = None


def resolve_protocol(attribute: str, proxy_protocol: str | None) -> str | None:
    """The toxic's own ``protocol`` attribute, else the proxy's declared one."""
    return attribute or proxy_protocol or None


def protocol_reason(protocol: str | None, framing: str | None, message_based: bool) -> str | None:
    """Why frames of ``protocol`` cannot be read on such a proxy, or ``None``."""
    if protocol is None:
        return (
            "it needs the RPC protocol: set its 'protocol' attribute "
            f"({'|'.join(PROTOCOLS)}) or create the proxy with protocol=..."
        )
    if protocol not in PROTOCOLS:
        return f"protocol {protocol!r} is not supported; choose from {', '.join(PROTOCOLS)}"
    if message_based:
        if protocol == "rest":
            return "rest is carried over HTTP, which needs a byte-stream transport"
        return None
    if framing == "http" and protocol not in HTTP_PROTOCOLS:
        return f"{protocol} is not carried over HTTP; use its own framing"
    if protocol == "rest" and framing != "http":
        return "rest needs framing='http' on the proxy"
    framings = get_protocol(protocol).framings
    if framing is not None and framing not in framings:
        return f"{protocol} is not framed with {framing!r} (it uses {', '.join(framings)})"
    return None


def error_info(kind: str, code: int, message: str) -> ErrorInfo:
    """The error to inject: ``code`` 0 means the kind's standard code."""
    cls = KINDS[kind]
    return ErrorInfo(
        kind, code or cls.default_code, message or f"{kind.replace('_', ' ')} (injected)"
    )


# ---- HTTP -------------------------------------------------------------------------


def _parse_http(data: bytes, request: bool) -> HttpMessage | None:
    framer = HttpFramer("server" if request else "client", one_way=True)
    try:
        framer.receive_data(data)
        message = framer.next_frame()
    except FaultlabError:
        return None
    return message if isinstance(message, HttpMessage) else None


def _serialize(message: HttpMessage) -> bytes:
    return HttpFramer("client", one_way=True).frame(message)


def _with_body(message: HttpMessage, body: bytes) -> HttpMessage:
    head = message.head
    headers = [
        (k, v)
        for k, v in head.headers.raw_items()
        if k.lower() not in (b"content-length", b"transfer-encoding")
    ]
    new_head: h11.Request | h11.Response | h11.InformationalResponse
    if isinstance(head, h11.Request):
        new_head = h11.Request(
            method=head.method, target=head.target, headers=headers, http_version=head.http_version
        )
    elif isinstance(head, h11.Response):
        new_head = h11.Response(
            status_code=head.status_code,
            headers=headers,
            reason=head.reason,
            http_version=head.http_version,
        )
    else:
        return message
    return HttpMessage(head=new_head, body=body)


def _http_reply(status: int, body: bytes, content_type: str) -> bytes:
    head = h11.Response(status_code=status, headers=[("Content-Type", content_type)])
    return _serialize(HttpMessage(head=head, body=body))


# ---- decoding ---------------------------------------------------------------------


def decode(protocol: str, data: bytes, *, http: bool, request: bool) -> RpcMessage | None:
    """The frame as an editable message, or ``None`` if it is not a ``request``/reply of it."""
    message: HttpMessage | None = None
    body = data
    if http or protocol == "rest":
        message = _parse_http(data, request)
        if message is None or isinstance(message.head, h11.InformationalResponse):
            return None
        body = message.body
    try:
        decoded = _DECODERS[protocol](body, request, message)
    except (ValueError, TypeError, KeyError, IndexError, RecursionError, FaultlabError):
        return None
    except (ExpatError, xmlrpc.client.Fault, xmlrpc.client.ResponseError):
        return None
    if decoded is not None:
        decoded.http = message
    return decoded


def _decode_jsonrpc(body: bytes, request: bool, _http: HttpMessage | None) -> RpcMessage | None:
    obj = json.loads(body)
    batch = isinstance(obj, list)
    objs = obj if batch else [obj]
    items: list[Item] = []
    for o in objs:
        if not isinstance(o, dict):
            return None
        extra = {k: v for k, v in o.items() if k not in ("jsonrpc", "method", "params", "id")}
        if request:
            if not isinstance(o.get("method"), str):
                return None
            items.append(
                Item(
                    o["method"], o.get("id"), "id" not in o, o.get("params", _MISSING), extra=extra
                )
            )
        else:
            if "id" not in o or ("result" not in o and "error" not in o):
                return None
            extra = {k: v for k, v in extra.items() if k not in ("result", "error")}
            items.append(
                Item(None, o["id"], result=o.get("result"), error=o.get("error"), extra=extra)
            )
    if not items:
        return None
    return RpcMessage("jsonrpc", request, items, batch=batch)


_MISSING: Any = object()


def _decode_xmlrpc(body: bytes, request: bool, _http: HttpMessage | None) -> RpcMessage | None:
    try:
        params, method = xmlrpc.client.loads(body, use_builtin_types=True)
    except xmlrpc.client.Fault as fault:
        if request:
            return None
        err = {"faultCode": fault.faultCode, "faultString": fault.faultString}
        return RpcMessage("xmlrpc", False, [Item(error=err)])
    if request:
        if not isinstance(method, str):
            return None
        return RpcMessage("xmlrpc", True, [Item(method, params=list(params))])
    if method is not None or len(params) != 1:
        return None
    return RpcMessage("xmlrpc", False, [Item(result=params[0])])


def _decode_msgpackrpc(body: bytes, request: bool, _http: HttpMessage | None) -> RpcMessage | None:
    obj = unpackb(body)
    if not isinstance(obj, list) or not obj:
        return None
    if request:
        if obj[0] == _REQUEST and len(obj) == 4 and isinstance(obj[2], str):
            return RpcMessage("msgpackrpc", True, [Item(obj[2], obj[1], params=obj[3])])
        if obj[0] == _NOTIFY and len(obj) == 3 and isinstance(obj[1], str):
            return RpcMessage("msgpackrpc", True, [Item(obj[1], None, True, params=obj[2])])
        return None
    if obj[0] == _RESPONSE and len(obj) == 4:
        return RpcMessage("msgpackrpc", False, [Item(None, obj[1], result=obj[3], error=obj[2])])
    return None


def _decode_binrpc(body: bytes, request: bool, _http: HttpMessage | None) -> RpcMessage | None:
    version, flags, msgid, method, payload = decode_header(body)
    if bool(flags & REPLY) == request:
        return None
    value = unpackb(payload)
    if request:
        meta = None
        if isinstance(value, dict) and set(value) == {"params", "meta"}:
            meta = value["meta"] if isinstance(value["meta"], dict) else {}
            value = value["params"]
        item = Item(method, msgid, bool(flags & NOTIFICATION), params=value)
        return RpcMessage("binrpc", True, [item], version=version, flags=flags, wrapped_meta=meta)
    item = Item(None, msgid, result=None if flags & ERROR else value)
    if flags & ERROR:
        item.error = value
    return RpcMessage("binrpc", False, [item], version=version, flags=flags)


def _decode_rest(body: bytes, request: bool, http: HttpMessage | None) -> RpcMessage | None:
    assert http is not None
    value = json.loads(body) if body else None
    if request:
        assert isinstance(http.head, h11.Request)
        path = http.head.target.decode("latin-1").split("?", 1)[0].strip("/")
        return RpcMessage("rest", True, [Item(path.replace("/", "."), params=value)])
    assert isinstance(http.head, h11.Response)
    if 200 <= http.head.status_code < 300:
        return RpcMessage("rest", False, [Item(result=value)])
    return RpcMessage("rest", False, [Item(error=value)])


_DECODERS = {
    "jsonrpc": _decode_jsonrpc,
    "xmlrpc": _decode_xmlrpc,
    "msgpackrpc": _decode_msgpackrpc,
    "binrpc": _decode_binrpc,
    "rest": _decode_rest,
}


# ---- encoding ---------------------------------------------------------------------


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()


def _binrpc(version: int, flags: int, msgid: int, method: str, payload: Any) -> bytes:
    name = method.encode()
    return HEADER.pack(MAGIC, version, flags, msgid & 0xFFFFFFFF, len(name)) + name + packb(payload)


def encode(message: RpcMessage) -> bytes:
    """The frame for ``message`` (after edits), in its protocol and HTTP carriage."""
    body = _ENCODERS[message.protocol](message)
    if message.http is not None:
        return _serialize(_with_body(message.http, body))
    return body


def _encode_jsonrpc(message: RpcMessage) -> bytes:
    objs: list[dict[str, Any]] = []
    for item in message.items:
        obj: dict[str, Any] = {"jsonrpc": "2.0"}
        if message.request:
            obj["method"] = item.method
            if item.params is not _MISSING:
                obj["params"] = item.params
            if not item.notification:
                obj["id"] = item.id
        elif item.error is not None:
            obj["error"] = item.error
            obj["id"] = item.id
        else:
            obj["result"] = item.result
            obj["id"] = item.id
        obj.update(item.extra)
        objs.append(obj)
    return _json(objs if message.batch else objs[0])


def _encode_xmlrpc(message: RpcMessage) -> bytes:
    item = message.items[0]
    if message.request:
        return xmlrpc.client.dumps(
            tuple(item.params), methodname=item.method, allow_none=True
        ).encode()
    if item.error is not None:
        fault = xmlrpc.client.Fault(item.error["faultCode"], item.error["faultString"])
        return xmlrpc.client.dumps(fault, allow_none=True).encode()
    return xmlrpc.client.dumps((item.result,), methodresponse=True, allow_none=True).encode()


def _encode_msgpackrpc(message: RpcMessage) -> bytes:
    item = message.items[0]
    if message.request:
        if item.notification:
            return packb([_NOTIFY, item.method, item.params])
        return packb([_REQUEST, item.id, item.method, item.params])
    return packb([_RESPONSE, item.id, item.error, item.result])


def _encode_binrpc(message: RpcMessage) -> bytes:
    item = message.items[0]
    msgid = item.id if isinstance(item.id, int) else 0
    if message.request:
        payload = item.params
        if message.wrapped_meta is not None:
            payload = {"params": item.params, "meta": message.wrapped_meta}
        return _binrpc(message.version, message.flags, msgid, item.method or "", payload)
    value = item.error if message.flags & ERROR else item.result
    return _binrpc(message.version, message.flags, msgid, "", value)


def _encode_rest(message: RpcMessage) -> bytes:
    item = message.items[0]
    if message.request:
        return _json(item.params)
    return _json(item.error if item.error is not None else item.result)


_ENCODERS = {
    "jsonrpc": _encode_jsonrpc,
    "xmlrpc": _encode_xmlrpc,
    "msgpackrpc": _encode_msgpackrpc,
    "binrpc": _encode_binrpc,
    "rest": _encode_rest,
}


# ---- native errors ----------------------------------------------------------------


def _error_map(info: ErrorInfo) -> dict[str, Any]:
    return {"code": info.code, "message": info.message, "kind": info.kind, "data": info.data}


def _jsonrpc_error(rid: Any, info: ErrorInfo) -> dict[str, Any]:
    error: dict[str, Any] = {"code": info.code, "message": info.message}
    if info.data is not None:
        error["data"] = info.data
    return {"jsonrpc": "2.0", "error": error, "id": rid}


def _xmlrpc_fault(info: ErrorInfo) -> bytes:
    text = info.message if info.kind == "application_error" else f"{info.kind}: {info.message}"
    return xmlrpc.client.dumps(xmlrpc.client.Fault(info.code, text), allow_none=True).encode()


def _errors_for(message: RpcMessage, info: ErrorInfo) -> bytes | None:
    """The native error body answering every call (or replacing every reply) of ``message``."""
    protocol = message.protocol
    answered = [i for i in message.items if not i.notification]
    if protocol == "jsonrpc":
        objs = [_jsonrpc_error(i.id, info) for i in answered]
        if not objs:
            return None
        return _json(objs if message.batch else objs[0])
    if protocol == "xmlrpc":
        return _xmlrpc_fault(info)
    if not answered:
        return None
    item = answered[0]
    if protocol == "msgpackrpc":
        return packb([_RESPONSE, item.id, _error_map(info), None])
    if protocol == "binrpc":
        msgid = item.id if isinstance(item.id, int) else 0
        return _binrpc(message.version, REPLY | ERROR, msgid, "", _error_map(info))
    return _json({"error": _error_map(info)})  # rest


def _http_status(protocol: str, info: ErrorInfo) -> int:
    if protocol == "rest":
        return STATUS_BY_KIND.get(info.kind, 500)
    return 503 if info.kind == "unavailable" else 200  # JSON-RPC/XML-RPC over HTTP


def error_reply(message: RpcMessage, info: ErrorInfo) -> bytes | None:
    """What the server would answer to the request(s) in ``message`` with error ``info``.

    ``None``: nothing (a notification outside HTTP). Over HTTP every request is
    answered: ``unavailable`` is a 503 for every protocol, as a load balancer says it.
    """
    body = _errors_for(message, info)
    if message.http is None:
        return body
    status = _http_status(message.protocol, info)
    if body is None:
        return _http_reply(503 if status == 503 else 204, b"", _CONTENT_TYPES[message.protocol])
    return _http_reply(status, body, _CONTENT_TYPES[message.protocol])


def error_response(message: RpcMessage, info: ErrorInfo) -> bytes | None:
    """``message`` (a reply) turned into error ``info``, keeping its ids and version."""
    if message.protocol == "binrpc":
        item = message.items[0]
        msgid = item.id if isinstance(item.id, int) else 0
        return _binrpc(message.version, REPLY | ERROR, msgid, "", _error_map(info))
    return error_reply(message, info)
