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

from faultlab.errors import LocalProtocolError
from faultlab.rpc.base import Dispatch, RpcProtocol, register_protocol
from faultlab.rpc.errors import InvalidRequest, ParseError, RpcError, VersionMismatch
from faultlab.rpc.messages import ErrorInfo, Request, Response
from faultlab.rpc.msgpackrpc import PACK_ERRORS, packb, unpackb
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


class BinRpc(RpcProtocol):
    name = "binrpc"
    framings = ("length-prefix",)

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


register_protocol(BinRpc())
