"""Adding a protocol is one module plus its registration (docs/rpc.md, "Adding a protocol").

``Tally`` below is such a module: a line protocol nobody else knows. Registered, it is
served and called by a Lab pair, and the proxy answers its requests with its own error,
without a line of faultlab changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from faultlab.codecs.framing.http import HttpMessage
from faultlab.lab.pair import Lab
from faultlab.rpc import base
from faultlab.rpc.base import Dispatch, RpcProtocol, get_protocol, register_protocol
from faultlab.rpc.errors import ServiceUnavailable
from faultlab.rpc.frames import Item, WireMessage
from faultlab.rpc.messages import ErrorInfo, Request, Response
from faultlab.rpc.wire import WireError
from faultlab.toxics import _rpcwire


class Tally(RpcProtocol):
    """``CALL id method [params]`` -> ``OK id result`` | ``ERR id kind code message``."""

    name = "tally"
    framings = ("lines",)
    frames_readable = True

    def encode_request(self, request: Request) -> bytes:
        return f"CALL {request.id} {request.method} {json.dumps(request.params)}".encode()

    def decode_response(self, data: bytes) -> Response:
        verb, rid, rest = data.decode().split(" ", 2)
        if verb == "OK":
            return Response(int(rid), result=json.loads(rest))
        if verb != "ERR":
            raise WireError(f"not a tally reply: {data!r}")
        kind, code, message = rest.split(" ", 2)
        return Response(int(rid), error=ErrorInfo(kind, int(code), message))

    def handle(self, data: bytes, dispatch: Dispatch) -> bytes | None:
        _, rid, method, params = data.decode().split(" ", 3)
        response = dispatch(Request(method, json.loads(params), int(rid)))
        if response.error is not None:
            return self._error(int(rid), response.error)
        return f"OK {rid} {json.dumps(response.result)}".encode()

    def error_message(self, info: ErrorInfo) -> bytes:
        return self._error(0, info)

    @staticmethod
    def _error(rid: int, info: ErrorInfo) -> bytes:
        return f"ERR {rid} {info.kind} {info.code} {info.message}".encode()

    # wire knowledge: what the proxy needs to read, rewrite and answer frames
    def decode_frame(
        self, body: bytes, *, request: bool, http: HttpMessage | None = None
    ) -> WireMessage | None:
        if not request:
            response = self.decode_response(body)
            return WireMessage(self.name, False, [Item(None, response.id, error=response.error)])
        verb, rid, method, params = body.decode().split(" ", 3)
        if verb != "CALL":
            return None
        return WireMessage(self.name, True, [Item(method, int(rid), params=json.loads(params))])

    def encode_frame(self, message: WireMessage) -> bytes:
        item = message.items[0]
        return self.encode_request(Request(item.method or "", item.params, item.id))

    def error_body(self, message: WireMessage, info: ErrorInfo) -> bytes | None:
        return self._error(message.items[0].id, info)

    def reply_error(self, message: WireMessage, index: int = 0) -> ErrorInfo | None:
        error = message.items[index].error
        return error if isinstance(error, ErrorInfo) else None


@pytest.fixture
def tally() -> Iterator[Tally]:
    protocol = Tally()
    register_protocol(protocol)
    try:
        yield protocol
    finally:
        base._registry._items.pop(protocol.name, None)  # leave the registry as it was


def test_a_registered_protocol_is_known_everywhere(tally: Tally) -> None:
    assert get_protocol("tally") is tally
    assert "tally" in _rpcwire.protocols()
    assert _rpcwire.protocol_reason("tally", "lines", False) is None
    assert "not framed with 'length-prefix'" in (
        _rpcwire.protocol_reason("tally", "length-prefix", False) or ""
    )


def test_a_lab_pair_serves_calls_and_faults_a_new_protocol(tally: Tally) -> None:
    with Lab(seed=7) as lab:
        pair = lab.pair(protocol="tally")
        assert pair.client.add(2, 3) == 5
        server: Any = pair.server
        before = server.server.requests_handled
        pair.proxy.add_toxic("rpc_error", stream="upstream", kind="unavailable", method="add")
        with pytest.raises(ServiceUnavailable):
            pair.client.add(2, 3)
        assert pair.client.echo([1, "x"]) == [1, "x"]
        assert server.server.requests_handled == before + 1  # the refused add never reached it
