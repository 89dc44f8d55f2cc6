"""binrpc: faultlab's own binary RPC with a version header.

Every message starts with a 12-byte header ``!2sBBIH``::

    magic b"FL" | version u8 | flags u8 | message id u32 | method length u16

then the UTF-8 method name and a msgpack payload (params for a request; the
result, or an error map, for a reply). Flags: 1 reply, 2 error, 4 notification.
On byte streams each message is length-prefixed (u32 big-endian).

Version negotiation is strict, never a silent misreading: a server that does
not speak the request's version answers, in its own version, an error of
kind ``version_mismatch`` naming both; a client that reads a reply whose
version is not its own raises :class:`VersionMismatch` naming both.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Any

from faultlab.codecs.framing.http import HttpMessage
from faultlab.errors import LocalProtocolError
from faultlab.rpc.base import Dispatch, RpcProtocol, register_protocol
from faultlab.rpc.errors import InvalidRequest, ParseError, RpcError, VersionMismatch
from faultlab.rpc.frames import Item, WireMessage, error_map
from faultlab.rpc.messages import ErrorInfo, Request, Response
from faultlab.rpc.msgpackrpc import PACK_ERRORS, _error_info, packb, unpackb
from faultlab.rpc.wire import WireError, error_kind_for_code, printable

__all__ = ["HEADER", "MAGIC", "BinRpc", "decode_header"]

MAGIC = b"FL"
HEADER = struct.Struct("!2sBBIH")
REPLY, ERROR, NOTIFICATION = 1, 2, 4
MAX_MISMATCHES = 1000


def decode_header(data: bytes) -> tuple[int, int, int, str, bytes]:
    """(version, flags, message id, method, payload) of one message."""
    if len(data) < HEADER.size:
        raise WireError(f"binrpc message of {len(data)} bytes is shorter than its header")
    magic, version, flags, msgid, mlen = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise WireError(f"bad binrpc magic {magic!r}")
    end = HEADER.size + mlen
    if len(data) < end:
        raise WireError("binrpc method name runs past the message")
    try:
        method = data[HEADER.size : end].decode()
    except UnicodeDecodeError:
        raise WireError("binrpc method name is not UTF-8") from None
    return version, flags, msgid, method, data[end:]


def _frame(version: int, flags: int, msgid: int, method: str, payload: Any) -> bytes:
    """One message in any version (the proxy keeps the version it read)."""
    name = method.encode()
    return HEADER.pack(MAGIC, version, flags, msgid & 0xFFFFFFFF, len(name)) + name + packb(payload)


class BinRpc(RpcProtocol):
    name = "binrpc"
    framings = ("length-prefix",)
    frames_readable = True
    version_field = "header version byte"

    def __init__(self, version: int = 1, accepts: frozenset[int] | None = None) -> None:
        if not 0 <= version <= 255:
            raise LocalProtocolError(f"binrpc version must fit in a byte, got {version}")
        self.version = version
        self.accepts = accepts if accepts is not None else frozenset({version})
        self.mismatches: deque[VersionMismatch] = deque(maxlen=MAX_MISMATCHES)
        """Server side: the version mismatches seen, newest last (the server's typed record
        of them); bounded, so a peer sending wrong versions forever cannot grow it."""

    def with_version(self, version: int, accepts: frozenset[int] | None = None) -> BinRpc:
        return BinRpc(version, accepts)

    def _message(self, flags: int, msgid: int, method: str, payload: Any) -> bytes:
        try:
            name = method.encode()
        except UnicodeEncodeError:
            raise LocalProtocolError(f"binrpc method name is not UTF-8: {method!r}") from None
        if len(name) > 0xFFFF:
            raise LocalProtocolError("binrpc method name longer than 65535 bytes")
        return (
            HEADER.pack(MAGIC, self.version, flags, msgid & 0xFFFFFFFF, len(name))
            + name
            + (packb(payload))
        )

    def encode_request(self, request: Request) -> bytes:
        flags = NOTIFICATION if request.notification else 0
        msgid = request.id if isinstance(request.id, int) else 0
        body = {"params": request.params, "meta": request.meta} if request.meta else request.params
        return self._message(flags, msgid, request.method, body)

    def decode_response(self, data: bytes) -> Response:
        version, flags, msgid, _, payload = decode_header(data)
        if version != self.version:
            raise VersionMismatch(ours=self.version, theirs=version)
        if not flags & REPLY:
            raise WireError("expected a binrpc reply, got a request")
        value = unpackb(payload)
        if flags & ERROR:
            if not isinstance(value, dict) or not isinstance(value.get("code"), int):
                raise WireError("malformed binrpc error payload")
            code = value["code"]
            kind = value.get("kind") if isinstance(value.get("kind"), str) else None
            info = ErrorInfo(
                kind or error_kind_for_code(code),
                code,
                str(value.get("message", "")),
                value.get("data"),
            )
            if info.kind == "version_mismatch":
                details: dict[str, Any] = info.data if isinstance(info.data, dict) else {}
                received = details.get("theirs")
                server = details.get("ours", version)
                message = f"version mismatch: we speak {self.version}, the server speaks {server}"
                if received is not None and received != self.version:
                    message += f" and received version {received} (rewritten in transit)"
                raise VersionMismatch(message, ours=self.version, theirs=server, data=details)
            return Response(msgid, error=info)
        return Response(msgid, result=value)

    def error_message(self, info: ErrorInfo) -> bytes:
        return self._error_info(0, info)

    def handle(self, data: bytes, dispatch: Dispatch) -> bytes | None:
        try:
            version, flags, msgid, method, payload = decode_header(data)
        except WireError as exc:
            return self._error(0, ParseError(str(exc)))
        if version not in self.accepts:
            mismatch = VersionMismatch(
                ours=self.version, theirs=version, data={"ours": self.version, "theirs": version}
            )
            self.mismatches.append(mismatch)
            return self._error(msgid, mismatch)
        if flags & REPLY:
            return self._error(msgid, InvalidRequest("a server does not accept replies"))
        try:
            body = unpackb(payload)
        except WireError as exc:
            return self._error(msgid, ParseError(str(exc)))
        meta: dict[str, Any] = {}
        if isinstance(body, dict) and set(body) == {"params", "meta"}:
            meta = body["meta"] if isinstance(body["meta"], dict) else {}
            body = body["params"]
        if not isinstance(body, list | dict):
            return self._error(msgid, InvalidRequest("params must be an array or a map"))
        response = dispatch(Request(method, body, msgid, bool(flags & NOTIFICATION), meta))
        if flags & NOTIFICATION:
            return None
        try:
            if response.error is not None:
                return self._error_info(msgid, response.error)
            return self._message(REPLY, msgid, "", response.result)
        except PACK_ERRORS as exc:
            what = "result" if response.error is None else "error"
            return self._error(msgid, RpcError(f"{what} is not msgpack: {printable(str(exc))}"))

    def _error(self, msgid: int, exc: RpcError) -> bytes:
        return self._error_info(msgid, ErrorInfo.from_exception(exc))

    def _error_info(self, msgid: int, info: ErrorInfo) -> bytes:
        payload = {"code": info.code, "message": info.message, "kind": info.kind, "data": info.data}
        return self._message(REPLY | ERROR, msgid, "", payload)

    # wire: frames as the proxy sees them (any version: the header is kept as read)
    def decode_frame(
        self, body: bytes, *, request: bool, http: HttpMessage | None = None
    ) -> WireMessage | None:
        version, flags, msgid, method, payload = decode_header(body)
        if bool(flags & REPLY) == request:
            return None
        value = unpackb(payload)
        native: dict[str, Any] = {"flags": flags}
        if request:
            if isinstance(value, dict) and set(value) == {"params", "meta"}:
                native["meta"] = value["meta"] if isinstance(value["meta"], dict) else {}
                value = value["params"]
            item = Item(method, msgid, bool(flags & NOTIFICATION), params=value)
            return WireMessage(self.name, True, [item], version=version, native=native)
        item = Item(None, msgid, result=None if flags & ERROR else value)
        if flags & ERROR:
            item.error = value
        return WireMessage(self.name, False, [item], version=version, native=native)

    def encode_frame(self, message: WireMessage) -> bytes:
        item = message.items[0]
        msgid = item.id if isinstance(item.id, int) else 0
        version = message.version or 0
        flags: int = message.native.get("flags", 0 if message.request else REPLY)
        if message.request:
            payload = item.params
            if "meta" in message.native:
                payload = {"params": item.params, "meta": message.native["meta"]}
            return _frame(version, flags, msgid, item.method or "", payload)
        return _frame(version, flags, msgid, "", item.error if flags & ERROR else item.result)

    def error_body(self, message: WireMessage, info: ErrorInfo) -> bytes | None:
        answered = [i for i in message.items if not i.notification]
        if not answered:
            return None
        msgid = answered[0].id if isinstance(answered[0].id, int) else 0
        return _frame(message.version or 0, REPLY | ERROR, msgid, "", error_map(info))

    def reply_error(self, message: WireMessage, index: int = 0) -> ErrorInfo | None:
        err = message.items[index].error
        return None if message.request or err is None else _error_info(err)

    def rewrite_version(self, data: bytes, message: WireMessage, version: int) -> bytes:
        return data[:2] + bytes([version]) + data[3:]  # the byte after the magic


register_protocol(BinRpc())
