"""REST: JSON over HTTP/1.1 with proper status codes.

A call ``counter.incr(key="k")`` is ``POST /counter/incr`` whose body is the
JSON params (an array for positional, an object for keyword). Success is
``200`` with the JSON result; errors carry a status code and a JSON body
``{"error": {"kind", "code", "message", "data"}}``. An ``Idempotency-Key``
header carries the call's idempotency key, as Stripe-style APIs do.

Only ``POST`` and ``GET`` run a method. Another standard HTTP method gets ``405`` with
``Allow: POST, GET`` (``HEAD`` too: it never runs a method, and its reply has no body);
a method HTTP does not define gets ``501``. A body nesting deeper than ``MAX_DEPTH``
is a parse error (``400``).
"""

from __future__ import annotations

import json
from typing import Any

import h11

from faultlab.codecs.framing.http import HttpMessage
from faultlab.rpc.base import (
    HTTP_METHODS,
    Dispatch,
    HttpReply,
    RpcProtocol,
    register_protocol,
)
from faultlab.rpc.errors import KINDS, InvalidRequest, MethodNotFound, ParseError
from faultlab.rpc.frames import Item, WireMessage
from faultlab.rpc.messages import ErrorInfo, Request, Response
from faultlab.rpc.wire import JSON_ENCODE_ERRORS, WireError, loads_json, printable

__all__ = ["STATUS_BY_KIND", "Rest"]

STATUS_BY_KIND = {
    "parse_error": 400,
    "invalid_request": 400,
    "invalid_params": 400,
    "method_not_found": 404,
    "version_mismatch": 409,
    "application_error": 422,
    "internal_error": 500,
    "unavailable": 503,
    "deadline_exceeded": 504,
}
_KIND_BY_STATUS = {
    400: "invalid_request",
    404: "method_not_found",
    409: "version_mismatch",
    422: "application_error",
    500: "internal_error",
    503: "unavailable",
    504: "deadline_exceeded",
}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _error_body(info: ErrorInfo) -> bytes:
    return _dumps(
        {
            "error": {
                "kind": info.kind,
                "code": info.code,
                "message": info.message,
                "data": info.data,
            }
        }
    )


class Rest(RpcProtocol):
    name = "rest"
    framings = ("http",)
    message_transports = False
    content_type = "application/json"
    frames_readable = True

    def http_request(self, request: Request) -> tuple[str, str, bytes]:
        return "POST", "/" + request.method.replace(".", "/"), _dumps(request.params)

    def encode_request(self, request: Request) -> bytes:
        return _dumps(request.params)

    def decode_response(self, data: bytes) -> Response:
        return self.http_response(200, data, Request(""))

    def http_response(self, status: int, body: bytes, request: Request) -> Response:
        try:
            obj = loads_json(body, "REST reply") if body else None
        except WireError:
            if status >= 400:
                kind = _KIND_BY_STATUS.get(status, "internal_error")
                return Response(
                    request.id, error=ErrorInfo(kind, KINDS[kind].default_code, f"HTTP {status}")
                )
            raise
        if 200 <= status < 300:
            return Response(request.id, result=obj)
        err = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(err, dict) and isinstance(err.get("kind"), str):
            kind = err["kind"] if err["kind"] in KINDS else "application_error"
            code_value = err.get("code")
            code = code_value if isinstance(code_value, int) else KINDS[kind].default_code
            info = ErrorInfo(kind, code, str(err.get("message", "")), err.get("data"))
        else:
            kind = _KIND_BY_STATUS.get(
                status, "internal_error" if status >= 500 else "invalid_request"
            )
            info = ErrorInfo(kind, KINDS[kind].default_code, f"HTTP {status}")
        return Response(request.id, error=info)

    def error_message(self, info: ErrorInfo) -> bytes:
        return _error_body(info)

    def handle(self, data: bytes, dispatch: Dispatch) -> bytes | None:
        raise InvalidRequest("REST needs HTTP: use handle_http")

    def handle_http(self, method: str, target: str, body: bytes, dispatch: Dispatch) -> HttpReply:
        path = target.split("?", 1)[0].strip("/")
        if method not in ("POST", "GET"):
            known = method in HTTP_METHODS
            error = InvalidRequest(f"{method} " + ("not allowed" if known else "not implemented"))
            allow = (("Allow", "POST, GET"),) if known else ()
            return self._reply(ErrorInfo.from_exception(error), 405 if known else 501, allow)
        if not path:
            return self._reply(ErrorInfo.from_exception(MethodNotFound("no method in the path")))
        params: Any = []
        if body:
            try:
                params = loads_json(body, "body")
            except WireError as exc:
                return self._reply(ErrorInfo.from_exception(ParseError(str(exc))))
        if not isinstance(params, list | dict):
            params = [params]
        response = dispatch(Request(path.replace("/", "."), params, None))
        if response.error is not None:
            return self._reply(response.error)
        try:
            payload = _dumps(response.result)
        except JSON_ENCODE_ERRORS as exc:
            message = f"result is not JSON: {printable(str(exc))}"
            return self._reply(ErrorInfo("internal_error", -32603, message))
        return HttpReply(200, payload, [("Content-Type", self.content_type)])

    def _reply(
        self, info: ErrorInfo, status: int | None = None, headers: tuple[tuple[str, str], ...] = ()
    ) -> HttpReply:
        try:
            body = _error_body(info)
        except JSON_ENCODE_ERRORS as exc:  # the method's error message or data
            info = ErrorInfo("internal_error", -32603, f"error is not JSON: {printable(str(exc))}")
            body = _error_body(info)
        return HttpReply(
            status or STATUS_BY_KIND.get(info.kind, 500),
            body,
            [("Content-Type", self.content_type), *headers],
        )

    # wire: frames as the proxy sees them (always inside HTTP: the path names the method)
    def decode_frame(
        self, body: bytes, *, request: bool, http: HttpMessage | None = None
    ) -> WireMessage | None:
        if http is None:
            return None
        value = loads_json(body, "body") if body else None
        head = http.head
        if request:
            if not isinstance(head, h11.Request):
                return None
            path = head.target.decode("latin-1").split("?", 1)[0].strip("/")
            return WireMessage(self.name, True, [Item(path.replace("/", "."), params=value)])
        if not isinstance(head, h11.Response):
            return None
        if 200 <= head.status_code < 300:
            return WireMessage(self.name, False, [Item(result=value)])
        return WireMessage(self.name, False, [Item(error=value)])

    def encode_frame(self, message: WireMessage) -> bytes:
        item = message.items[0]
        if message.request:
            return _dumps(item.params)
        return _dumps(item.error if item.error is not None else item.result)

    def error_body(self, message: WireMessage, info: ErrorInfo) -> bytes | None:
        return _error_body(info)

    def http_status(self, info: ErrorInfo) -> int:
        return STATUS_BY_KIND.get(info.kind, 500)

    def reply_error(self, message: WireMessage, index: int = 0) -> ErrorInfo | None:
        http = message.http
        if message.request or http is None or not isinstance(http.head, h11.Response):
            return None
        if http.head.status_code < 300:
            return None
        return self.http_response(http.head.status_code, http.body, Request("")).error


register_protocol(Rest())
