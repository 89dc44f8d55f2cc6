"""msgpack-RPC: request ``[0, msgid, method, params]``, reply ``[1, msgid, error, result]``.

Notification ``[2, method, params]``.

On byte streams the wire is the spec's plain stream of msgpack objects (no
length prefix), so existing msgpack-rpc clients interoperate. Replies carry
their msgid, so calls can be pipelined. faultlab's errors are maps
``{"code", "message", "kind", "data"}``; a foreign string or ``[type, message]``
error is read as an application error. A message we cannot read at all gets
an error reply with msgid 0: there is no id to answer to. So does one nesting deeper
than ``MAX_DEPTH`` or holding a Timestamp outside ``datetime``'s range.
"""

from __future__ import annotations

from typing import Any

import msgpack  # type: ignore[import-untyped]

from faultlab.codecs.framing.http import HttpMessage
from faultlab.errors import LocalProtocolError
from faultlab.rpc.base import Dispatch, RpcProtocol, register_protocol
from faultlab.rpc.errors import InvalidRequest, ParseError, RpcError
from faultlab.rpc.frames import Item, WireMessage, error_map
from faultlab.rpc.messages import ErrorInfo, Request, Response
from faultlab.rpc.wire import (
    MAX_DEPTH,
    WireError,
    describe,
    error_kind_for_code,
    exceeds_depth,
    printable,
)

__all__ = ["PACK_ERRORS", "MsgpackRpc", "packb", "unpackb"]

REQUEST, RESPONSE, NOTIFY = 0, 1, 2
_MSGID_MAX = 2**32 - 1


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, datetime=True)  # type: ignore[no-any-return]


_UNPACK_ERRORS = (
    ValueError,  # malformed, extra data, bad UTF-8, msgpack's own nesting limit
    TypeError,  # an unhashable map key
    OverflowError,  # a Timestamp beyond datetime's range
    RecursionError,
    msgpack.UnpackException,
)
PACK_ERRORS = (TypeError, ValueError, OverflowError, RecursionError, msgpack.PackException)


def unpackb(data: bytes) -> Any:
    """One msgpack object; :class:`WireError` if malformed or nesting deeper than MAX_DEPTH."""
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False, timestamp=3)
    except _UNPACK_ERRORS as exc:
        raise WireError(f"not a msgpack object: {type(exc).__name__}: {exc}") from None
    if exceeds_depth(value, MAX_DEPTH):
        raise WireError(f"msgpack object nests deeper than {MAX_DEPTH}")
    return value


def _error_obj(info: ErrorInfo) -> dict[str, Any]:
    return {"code": info.code, "message": info.message, "kind": info.kind, "data": info.data}


def _error_info(err: Any) -> ErrorInfo:
    if isinstance(err, dict) and isinstance(err.get("code"), int):
        kind = err.get("kind") if isinstance(err.get("kind"), str) else None
        code = err["code"]
        return ErrorInfo(
            kind or error_kind_for_code(code), code, str(err.get("message", "")), err.get("data")
        )
    if isinstance(err, list | tuple) and len(err) == 2:
        return ErrorInfo("application_error", -32500, f"{err[0]}: {err[1]}", None)
    return ErrorInfo("application_error", -32500, str(err), None)


class MsgpackRpc(RpcProtocol):
    name = "msgpackrpc"
    framings = ("msgpack-stream", "length-prefix")
    content_type = "application/msgpack"
    frames_readable = True

    def encode_request(self, request: Request) -> bytes:
        if isinstance(request.params, dict):
            raise LocalProtocolError("msgpack-RPC params are an array: pass them positionally")
        params = request.params
        if request.notification:
            return packb([NOTIFY, request.method, params])
        return packb([REQUEST, request.id, request.method, params])

    def decode_response(self, data: bytes) -> Response:
        obj = unpackb(data)
        if (
            not isinstance(obj, list)
            or len(obj) != 4
            or obj[0] != RESPONSE
            or not isinstance(obj[1], int)
        ):
            raise WireError(f"not a msgpack-RPC response: {describe(obj)}")
        _, msgid, error, result = obj
        if error is not None:
            return Response(msgid, error=_error_info(error))
        return Response(msgid, result=result)

    def error_message(self, info: ErrorInfo) -> bytes:
        return packb([RESPONSE, 0, _error_obj(info), None])

    def handle(self, data: bytes, dispatch: Dispatch) -> bytes | None:
        try:
            obj = unpackb(data)
        except WireError as exc:
            return self._error_reply(0, ParseError(str(exc)))
        if not isinstance(obj, list) or not obj:
            return self._error_reply(0, InvalidRequest("a message must be a non-empty array"))
        if obj[0] == NOTIFY and len(obj) == 3 and isinstance(obj[1], str):
            dispatch(Request(obj[1], self._params(obj[2]), None, notification=True))
            return None
        if (
            obj[0] != REQUEST
            or len(obj) != 4
            or not isinstance(obj[1], int)
            or not 0 <= obj[1] <= _MSGID_MAX
        ):
            return self._error_reply(0, InvalidRequest("expected [0, msgid, method, params]"))
        _, msgid, method, params = obj
        if not isinstance(method, str) or not isinstance(params, list | dict):
            return self._error_reply(msgid, InvalidRequest("method must be str, params array"))
        response = dispatch(Request(method, self._params(params), msgid))
        try:
            if response.error is not None:
                return packb([RESPONSE, msgid, _error_obj(response.error), None])
            return packb([RESPONSE, msgid, None, response.result])
        except PACK_ERRORS as exc:
            what = "result" if response.error is None else "error"
            error = RpcError(f"{what} is not msgpack: {printable(str(exc))}")
            return self._error_reply(msgid, error)

    @staticmethod
    def _params(params: Any) -> list[Any] | dict[str, Any]:
        if isinstance(params, list) and len(params) == 1 and isinstance(params[0], dict):
            return params  # a single positional map stays positional
        return params if isinstance(params, list | dict) else [params]

    @staticmethod
    def _error_reply(msgid: int, exc: RpcError) -> bytes:
        return packb([RESPONSE, msgid, _error_obj(ErrorInfo.from_exception(exc)), None])

    # wire: frames as the proxy sees them
    def decode_frame(
        self, body: bytes, *, request: bool, http: HttpMessage | None = None
    ) -> WireMessage | None:
        obj = unpackb(body)
        if not isinstance(obj, list) or not obj:
            return None
        if request:
            if obj[0] == REQUEST and len(obj) == 4 and isinstance(obj[2], str):
                return WireMessage(self.name, True, [Item(obj[2], obj[1], params=obj[3])])
            if obj[0] == NOTIFY and len(obj) == 3 and isinstance(obj[1], str):
                return WireMessage(self.name, True, [Item(obj[1], None, True, params=obj[2])])
            return None
        if obj[0] == RESPONSE and len(obj) == 4:
            return WireMessage(self.name, False, [Item(None, obj[1], result=obj[3], error=obj[2])])
        return None

    def encode_frame(self, message: WireMessage) -> bytes:
        item = message.items[0]
        if message.request:
            if item.notification:
                return packb([NOTIFY, item.method, item.params])
            return packb([REQUEST, item.id, item.method, item.params])
        return packb([RESPONSE, item.id, item.error, item.result])

    def error_body(self, message: WireMessage, info: ErrorInfo) -> bytes | None:
        answered = [i for i in message.items if not i.notification]
        if not answered:
            return None
        return packb([RESPONSE, answered[0].id, error_map(info), None])

    def reply_error(self, message: WireMessage, index: int = 0) -> ErrorInfo | None:
        err = message.items[index].error
        return None if message.request or err is None else _error_info(err)


register_protocol(MsgpackRpc())
