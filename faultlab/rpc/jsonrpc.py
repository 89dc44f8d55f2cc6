"""JSON-RPC 2.0, complete: batches, notifications, id types, standard error codes.

Carried over HTTP by default (any JSON-RPC client can POST to the server);
newline-delimited and length-prefixed framings are options on byte streams,
one message per datagram on message transports. Extra request members are
ignored; faultlab's own metadata rides in an optional ``"faultlab"`` member.

Every message gets an answer the spec allows: nesting deeper than ``MAX_DEPTH`` is a
parse error; a string id with a lone surrogate (``"\\ud800"``, which UTF-8 cannot carry
back) is an invalid request answered with id ``null`` and never dispatched; a reply that
cannot be encoded (a result or message JSON cannot carry) becomes an internal error
object for that id.
"""

from __future__ import annotations

import json
from typing import Any

from faultlab.codecs.framing.http import HttpMessage
from faultlab.codecs.json import SURROGATES
from faultlab.rpc.base import Dispatch, RpcProtocol, register_protocol
from faultlab.rpc.errors import InternalError, InvalidRequest, ParseError, RpcError
from faultlab.rpc.frames import MISSING, Item, WireMessage
from faultlab.rpc.messages import ErrorInfo, Request, Response
from faultlab.rpc.wire import (
    JSON_ENCODE_ERRORS,
    WireError,
    describe,
    error_kind_for_code,
    loads_json,
    printable,
)

__all__ = ["JsonRpc"]

_MAX_BATCH = 1000


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode()


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, int | str) and not isinstance(value, bool))


class JsonRpc(RpcProtocol):
    name = "jsonrpc"
    framings = ("http", "lines", "length-prefix")
    content_type = "application/json"
    frames_readable = True

    # client side
    def encode_request(self, request: Request) -> bytes:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": request.method}
        if request.params or request.params == {}:
            msg["params"] = request.params
        if not request.notification:
            msg["id"] = request.id
        if request.meta:
            msg["faultlab"] = request.meta
        return _dumps(msg)

    def encode_batch(self, requests: list[Request]) -> bytes:
        return b"[" + b",".join(self.encode_request(r) for r in requests) + b"]"

    def decode_response(self, data: bytes) -> Response:
        obj = self._parse(data)
        return self._response(obj)

    def decode_batch_response(self, data: bytes) -> list[Response]:
        obj = self._parse(data)
        if not isinstance(obj, list):
            return [self._response(obj)]
        return [self._response(item) for item in obj]

    @staticmethod
    def _parse(data: bytes) -> Any:
        return loads_json(data, "JSON-RPC reply")

    @staticmethod
    def _response(obj: Any) -> Response:
        if not isinstance(obj, dict) or obj.get("jsonrpc") != "2.0" or "id" not in obj:
            raise WireError(f"not a JSON-RPC 2.0 response: {describe(obj)}")
        if ("result" in obj) == ("error" in obj):
            raise WireError("a JSON-RPC response has exactly one of result and error")
        if "error" in obj:
            err = obj["error"]
            if not isinstance(err, dict) or not isinstance(err.get("code"), int):
                raise WireError(f"malformed JSON-RPC error object: {describe(err)}")
            code = err["code"]
            info = ErrorInfo(
                error_kind_for_code(code), code, str(err.get("message", "")), err.get("data")
            )
            return Response(obj["id"], error=info)
        return Response(obj["id"], result=obj["result"])

    # server side
    def error_message(self, info: ErrorInfo) -> bytes:
        return _dumps(self._error_info_obj(None, info))

    def handle(self, data: bytes, dispatch: Dispatch) -> bytes | None:
        try:
            obj = loads_json(data, "request")
        except WireError as exc:
            return _dumps(self._error_obj(None, ParseError(f"parse error: {exc}")))
        if isinstance(obj, list):
            if not obj:
                return _dumps(self._error_obj(None, InvalidRequest("empty batch")))
            if len(obj) > _MAX_BATCH:
                return _dumps(
                    self._error_obj(None, InvalidRequest(f"batch larger than {_MAX_BATCH}"))
                )
            replies = [r for r in (self._one(item, dispatch) for item in obj) if r is not None]
            return b"[" + b",".join(map(self._encode, replies)) + b"]" if replies else None
        reply = self._one(obj, dispatch)
        return None if reply is None else self._encode(reply)

    def _encode(self, reply: dict[str, Any]) -> bytes:
        """The reply's bytes; one JSON cannot carry becomes an internal error for its id."""
        try:
            return _dumps(reply)
        except JSON_ENCODE_ERRORS as exc:
            what = "result" if "result" in reply else "error"
            error = InternalError(f"the {what} cannot be encoded as JSON: {printable(str(exc))}")
            return _dumps(self._error_obj(reply.get("id"), error))  # ids were checked

    def _one(self, obj: Any, dispatch: Dispatch) -> dict[str, Any] | None:
        request_or_error = self._request(obj)
        if isinstance(request_or_error, dict):
            return request_or_error
        request = request_or_error
        response = dispatch(request)
        if request.notification:
            return None
        if response.error is not None:
            return self._error_info_obj(request.id, response.error)
        return {"jsonrpc": "2.0", "result": response.result, "id": request.id}

    def _request(self, obj: Any) -> Request | dict[str, Any]:
        if not isinstance(obj, dict):
            return self._error_obj(None, InvalidRequest("a request must be a JSON object"))
        rid = obj.get("id")
        if not _valid_id(rid):
            return self._error_obj(None, InvalidRequest("id must be a string, integer or null"))
        if isinstance(rid, str) and SURROGATES.search(rid):
            return self._error_obj(
                None, InvalidRequest("id holds a lone surrogate: it cannot be sent back as UTF-8")
            )
        if obj.get("jsonrpc") != "2.0":
            return self._error_obj(rid, InvalidRequest('"jsonrpc" must be exactly "2.0"'))
        method = obj.get("method")
        if not isinstance(method, str):
            return self._error_obj(rid, InvalidRequest('"method" must be a string'))
        params = obj.get("params", [])
        if not isinstance(params, list | dict):
            return self._error_obj(rid, InvalidRequest('"params" must be an array or object'))
        meta = obj.get("faultlab") if isinstance(obj.get("faultlab"), dict) else {}
        return Request(method, params, rid, notification="id" not in obj, meta=meta or {})

    @staticmethod
    def _error_obj(rid: Any, exc: RpcError) -> dict[str, Any]:
        return JsonRpc._error_info_obj(rid, ErrorInfo.from_exception(exc))

    @staticmethod
    def _error_info_obj(rid: Any, info: ErrorInfo) -> dict[str, Any]:
        error: dict[str, Any] = {"code": info.code, "message": info.message}
        if info.data is not None:
            error["data"] = info.data
        return {"jsonrpc": "2.0", "error": error, "id": rid}

    # wire: frames as the proxy sees them (batches and extra members kept)
    def decode_frame(
        self, body: bytes, *, request: bool, http: HttpMessage | None = None
    ) -> WireMessage | None:
        obj = loads_json(body, "frame")
        batch = isinstance(obj, list)
        items: list[Item] = []
        for o in obj if batch else [obj]:
            if not isinstance(o, dict):
                return None
            extra = {k: v for k, v in o.items() if k not in ("jsonrpc", "method", "params", "id")}
            if request:
                if not isinstance(o.get("method"), str):
                    return None
                params = o.get("params", MISSING)
                items.append(Item(o["method"], o.get("id"), "id" not in o, params, extra=extra))
            else:
                if "id" not in o or ("result" not in o and "error" not in o):
                    return None
                extra = {k: v for k, v in extra.items() if k not in ("result", "error")}
                items.append(
                    Item(None, o["id"], result=o.get("result"), error=o.get("error"), extra=extra)
                )
        if not items:
            return None
        return WireMessage(self.name, request, items, batch=batch)

    def encode_frame(self, message: WireMessage) -> bytes:
        objs: list[dict[str, Any]] = []
        for item in message.items:
            obj: dict[str, Any] = {"jsonrpc": "2.0"}
            if message.request:
                obj["method"] = item.method
                if item.params is not MISSING:
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
        return _dumps(objs if message.batch else objs[0])

    def error_body(self, message: WireMessage, info: ErrorInfo) -> bytes | None:
        objs = [self._error_info_obj(i.id, info) for i in message.items if not i.notification]
        if not objs:
            return None
        return _dumps(objs if message.batch else objs[0])

    def reply_error(self, message: WireMessage, index: int = 0) -> ErrorInfo | None:
        err = message.items[index].error
        if message.request or not isinstance(err, dict):
            return None
        code: int = err["code"] if isinstance(err.get("code"), int) else -32603
        return ErrorInfo(error_kind_for_code(code), code, str(err.get("message", "")))


register_protocol(JsonRpc())
