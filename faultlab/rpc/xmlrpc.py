"""XML-RPC: method calls and faults, over HTTP (so ``xmlrpc.client`` works) or raw framing.

Marshalling is the standard library's (``xmlrpc.client.dumps``/``loads``),
with ``allow_none``. Fault codes follow the XML-RPC fault-code interop spec
(-32700 parse error, -32601 method not found, -32602 invalid params, -32603
internal, -32500 application), so kinds survive the round trip. XML-RPC has
positional params only, and 32-bit ints: a bigger result becomes a fault,
never a silently changed value.

Parsing is :func:`faultlab.codecs.xml.loads`: DTDs are refused, every malformed document
(a struct member without a value, a bad ``<int>``...) is a parse-error fault, and params
nesting deeper than ``MAX_DEPTH`` are refused before dispatch.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any

from faultlab.codecs.errors import DecodeError
from faultlab.codecs.framing.http import HttpMessage
from faultlab.codecs.xml import XML_ILLEGAL, loads
from faultlab.errors import LocalProtocolError
from faultlab.rpc.base import Dispatch, RpcProtocol, register_protocol
from faultlab.rpc.errors import InvalidRequest, ParseError, RpcError
from faultlab.rpc.frames import Item, WireMessage
from faultlab.rpc.messages import ErrorInfo, Request, Response
from faultlab.rpc.wire import MAX_DEPTH, WireError, error_kind_for_code, exceeds_depth, printable

__all__ = ["XmlRpc"]

_MARSHAL_ERRORS = (TypeError, OverflowError, ValueError, RecursionError)


def _dumps(*args: Any, **kwargs: Any) -> bytes:
    """``xmlrpc.client.dumps``, with CR kept: XML parsers turn a raw CR into LF, so it is
    sent as ``&#13;`` (the stdlib escapes only ``&``, ``<`` and ``>``)."""
    return xmlrpc.client.dumps(*args, **kwargs).replace("\r", "&#13;").encode()


def _fault(info: ErrorInfo) -> bytes:
    """A fault reply; characters XML cannot carry in the message become U+FFFD."""
    text = info.message if info.kind == "application_error" else f"{info.kind}: {info.message}"
    return _dumps(xmlrpc.client.Fault(info.code, XML_ILLEGAL.sub("\ufffd", text)), allow_none=True)


class XmlRpc(RpcProtocol):
    name = "xmlrpc"
    framings = ("http", "length-prefix")
    content_type = "text/xml"
    http_path = "/RPC2"
    frames_readable = True

    def encode_request(self, request: Request) -> bytes:
        if isinstance(request.params, dict):
            raise LocalProtocolError("XML-RPC has positional params only")
        try:
            return _dumps(tuple(request.params), methodname=request.method, allow_none=True)
        except _MARSHAL_ERRORS as exc:
            raise LocalProtocolError(f"XML-RPC cannot carry these params: {exc}") from None

    def decode_response(self, data: bytes) -> Response:
        try:
            params, _ = loads(data)
        except xmlrpc.client.Fault as fault:
            code = fault.faultCode if isinstance(fault.faultCode, int) else -32500
            message = fault.faultString if isinstance(fault.faultString, str) else ""
            kind = error_kind_for_code(code)
            prefix = f"{kind}: "
            if message.startswith(prefix):
                message = message[len(prefix) :]
            return Response(None, error=ErrorInfo(kind, code, message))
        except DecodeError as exc:
            raise WireError(f"not an XML-RPC response: {exc}") from None
        if len(params) != 1:
            raise WireError(f"an XML-RPC response has one param, got {len(params)}")
        if exceeds_depth(params, MAX_DEPTH + 1):
            raise WireError(f"XML-RPC response nests deeper than {MAX_DEPTH}")
        return Response(None, result=params[0])

    def error_message(self, info: ErrorInfo) -> bytes:
        return _fault(info)

    def handle(self, data: bytes, dispatch: Dispatch) -> bytes | None:
        try:
            params, method = loads(data)
        except DecodeError as exc:
            return _fault(ErrorInfo.from_exception(ParseError(f"parse error: {exc}")))
        except xmlrpc.client.Fault:
            return _fault(ErrorInfo.from_exception(InvalidRequest("a fault is not a call")))
        if not isinstance(method, str):
            return _fault(ErrorInfo.from_exception(InvalidRequest("no methodName")))
        if exceeds_depth(params, MAX_DEPTH + 1):  # params is a tuple: one level more
            error = ParseError(f"parse error: params nest deeper than {MAX_DEPTH}")
            return _fault(ErrorInfo.from_exception(error))
        response = dispatch(Request(method, list(params), None))
        if response.error is not None:
            return _fault(response.error)
        return self._result(response.result)

    @staticmethod
    def _result(result: Any) -> bytes:
        try:
            return _dumps((result,), methodresponse=True, allow_none=True)
        except _MARSHAL_ERRORS as exc:
            err = RpcError(f"result cannot be carried by XML-RPC: {printable(str(exc))}")
            return _fault(ErrorInfo.from_exception(err))

    # wire: frames as the proxy sees them
    def decode_frame(
        self, body: bytes, *, request: bool, http: HttpMessage | None = None
    ) -> WireMessage | None:
        try:
            params, method = loads(body)
        except xmlrpc.client.Fault as fault:
            if request:
                return None
            err = {"faultCode": fault.faultCode, "faultString": fault.faultString}
            return WireMessage(self.name, False, [Item(error=err)])
        if request:
            if not isinstance(method, str):
                return None
            return WireMessage(self.name, True, [Item(method, params=list(params))])
        if method is not None or len(params) != 1:
            return None
        return WireMessage(self.name, False, [Item(result=params[0])])

    def encode_frame(self, message: WireMessage) -> bytes:
        item = message.items[0]
        if message.request:
            return _dumps(tuple(item.params), methodname=item.method, allow_none=True)
        if item.error is not None:
            fault = xmlrpc.client.Fault(item.error["faultCode"], item.error["faultString"])
            return _dumps(fault, allow_none=True)
        return _dumps((item.result,), methodresponse=True, allow_none=True)

    def error_body(self, message: WireMessage, info: ErrorInfo) -> bytes | None:
        return _fault(info)  # XML-RPC has no notifications: every call is answered

    def reply_error(self, message: WireMessage, index: int = 0) -> ErrorInfo | None:
        err = message.items[index].error
        if message.request or not isinstance(err, dict):
            return None
        return self.decode_response(_dumps(xmlrpc.client.Fault(**err), allow_none=True)).error


register_protocol(XmlRpc())
