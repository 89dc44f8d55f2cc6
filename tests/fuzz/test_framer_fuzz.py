"""Framers on hostile byte streams: frames, ``NEED_DATA``/``CLOSED``, or a typed error.

Each input is fed in chunks cut at input-derived points (so a failure replays exactly),
the way a transport would (up to 64 reads: a 20 KB input read byte by byte measures the
harness, not the framer); the framer must raise only :class:`RemoteProtocolError`
subclasses from ``next_frame``, never from ``receive_data``, and stay dead after one.
Server-role HTTP framers answer each request so h11 keeps going (as the RPC server does).
"""

from __future__ import annotations

import contextlib
import random
import zlib
from collections.abc import Callable
from typing import Any

import h11
import pytest

from faultlab.codecs import (
    DatagramFramer,
    FrameEvent,
    Framer,
    FrameTooLarge,
    GrpcFramer,
    HttpFramer,
    HttpMessage,
    LengthPrefixFramer,
    LinesFramer,
    MsgpackStreamFramer,
)
from faultlab.errors import RemoteProtocolError
from tests.fuzz.budget import budget
from tests.unit.codecs.hostile import fuzz, fuzz_seed

SEED = fuzz_seed()
COUNT = budget(ci=1500, slow=100_000)
MAX = 4096


def _gzip(data: bytes) -> bytes:
    deflater = zlib.compressobj(wbits=31)
    return deflater.compress(data) + deflater.flush()


_GZ = _gzip(b"hello, compressed world")
_MSGPACK = [
    b"\x94\x00\x01\xa3add\x92\x01\x02",
    b"\x93\x02\xa4echo\x91\x81\xa1k\xc4\x02\x00\xff",
    b"\x94\x01\x05\xc0\xcb?\xf8\x00\x00\x00\x00\x00\x00",
    b"\xd6\xff\x00\x00\x00\x01\xc7\x0c\xff" + bytes(12),
]
HTTP_REQUESTS = [
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /x HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nCONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
    b"GET /2 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
    b"GET / HTTP/1.0\r\n\r\n",
]
HTTP_RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\n\r\nHTTP/1.0 200 OK\r\n\r\nbody until close",
]
CORPORA: dict[str, list[bytes]] = {
    "length-prefix": [b"\x00\x00\x00\x03abc\x00\x00\x00\x00", b"\x00\x00\x10\x00" + bytes(4096)],
    "lines": [b'{"jsonrpc":"2.0"}\n\nabc\n', b"x" * 100 + b"\n"],
    "msgpack-stream": _MSGPACK,
    "msgpack-objects": _MSGPACK,
    "grpc": [b"\x00\x00\x00\x00\x03abc\x00\x00\x00\x00\x00"],
    "grpc-gzip": [b"\x01" + len(_GZ).to_bytes(4, "big") + _GZ + b"\x00\x00\x00\x00\x01z"],
    "datagram": [b"x", b"", bytes(MAX + 1)],
    "http-server": HTTP_REQUESTS,
    "http-client": HTTP_RESPONSES,
    "http-server-one-way": HTTP_REQUESTS,
    "http-client-one-way": HTTP_RESPONSES,
}
FACTORIES: dict[str, Callable[[], Framer[Any]]] = {
    "length-prefix": lambda: LengthPrefixFramer(max_size=MAX),
    "lines": lambda: LinesFramer(max_size=MAX),
    "msgpack-stream": lambda: MsgpackStreamFramer(max_size=MAX),
    "msgpack-objects": lambda: MsgpackStreamFramer(max_size=MAX),
    "grpc": lambda: GrpcFramer(max_size=MAX),
    "grpc-gzip": lambda: GrpcFramer(max_size=MAX, encoding="gzip"),
    "datagram": lambda: DatagramFramer(max_size=MAX),
    "http-server": lambda: HttpFramer("server", max_size=MAX, max_buffer=4 * MAX),
    "http-client": lambda: HttpFramer("client", max_size=MAX),
    "http-server-one-way": lambda: HttpFramer("server", max_size=MAX, one_way=True),
    "http-client-one-way": lambda: HttpFramer("client", max_size=MAX, one_way=True),
}
_OK = HttpMessage(head=h11.Response(status_code=200, headers=[]), body=b"ok")
_REFUSED = HttpMessage(head=h11.Response(status_code=405, headers=[]), body=b"no")
_GET = HttpMessage(head=h11.Request(method="GET", target="/", headers=[("Host", "a")]))


class Driver:
    """Feeds one framer as a transport would and plays the other side where it must."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.framer = FACTORIES[name]()
        self.two_way_http = name in ("http-server", "http-client")

    def run(self, data: bytes) -> None:
        rng = random.Random(zlib.crc32(data))
        framer = self.framer
        if self.name == "http-client":
            framer.frame(_GET)
        position = 0
        reads = 0
        try:
            while position < len(data):
                reads += 1  # at most 64 reads cut anywhere, then the rest in one
                size = rng.choice((1, 2, 7, 64, 4096, len(data))) if reads < 64 else len(data)
                chunk = data[position : position + size]
                position += size
                if isinstance(framer, DatagramFramer):
                    framer.receive_datagram(chunk)
                    with contextlib.suppress(FrameTooLarge):  # not sticky: the next one counts
                        self.drain()
                    continue
                framer.receive_data(chunk)
                self.drain()
            framer.receive_data(b"")
            self.drain()
        except RemoteProtocolError as exc:
            if framer.sticky_errors:
                with pytest.raises(type(exc)):  # the framer stays dead
                    self.next()
            raise

    def next(self) -> Any:
        if isinstance(self.framer, MsgpackStreamFramer) and self.name == "msgpack-objects":
            return self.framer.next_object()
        return self.framer.next_frame()

    def drain(self) -> None:
        framer = self.framer
        while True:
            item = self.next()
            if isinstance(item, FrameEvent):
                if item is FrameEvent.PAUSED and self.name == "http-server":
                    raise AssertionError("paused with no request left unanswered")
                return
            if not self.two_way_http:
                continue
            assert isinstance(item, HttpMessage)
            head = item.head
            if isinstance(head, h11.Request):
                framer.frame(_REFUSED if head.method == b"CONNECT" else _OK)
            elif not isinstance(head, h11.InformationalResponse) and not framer.must_close:
                framer.frame(_GET)


def _drive(name: str) -> Callable[[bytes], None]:
    return lambda data: Driver(name).run(data)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_framer_raises_only_remote_protocol_errors(name: str) -> None:
    seed = SEED ^ zlib.crc32(f"framer:{name}".encode())
    fuzz(f"framer {name}", CORPORA[name], COUNT, _drive(name), seed)
