"""What gRPC-aware toxics read and write on a proxy with ``h2`` framing.

A toxic on such a proxy sees :class:`~faultlab.codecs.framing.h2.H2Unit` s: frames, and
header blocks decoded. A call starts with the client's request header block (``:method``,
``:path`` = ``/package.Service/Method``, metadata); a gRPC status travels in trailers
(``grpc-status``, ``grpc-message``, and the server's ``grpc-retry-pushback-ms``). This
module turns a request block into the :class:`HttpHeadInfo` the matching attributes read,
maps an error ``kind`` to the gRPC status a server would send, and builds the frames the
relay sends in the server's place (:meth:`faultlab.proxy.h2relay.H2Relay.refuse`).
"""

from __future__ import annotations

from typing import Any

from faultlab.codecs.framing.h2 import (
    DATA,
    HEADERS,
    GrpcMessageCounter,
    H2Unit,
    encode_frame,
    grpc_message_text,
    injected_headers,
)
from faultlab.codecs.framing.httpinfo import HttpHeadInfo
from faultlab.journal import wire as wk
from faultlab.rpc.grpc.codes import STATUS_CODE_FOR_KIND
from faultlab.toxics.base import Chunk, Emit, InvalidToxic, ToxicContext

__all__ = [
    "STATUS_FOR_KIND",
    "ArmedStreams",
    "check_pushback",
    "data_prefix",
    "forward_until",
    "grpc_status",
    "request_head",
    "response_unit",
    "trailers",
]

STATUS_FOR_KIND = STATUS_CODE_FOR_KIND
"""The gRPC status a server answers for each faultlab error kind (as faultlab's own
gRPC server does)."""
MAX_PUSHBACK_TEXT = 32


def request_head(chunk: Chunk) -> tuple[H2Unit, HttpHeadInfo] | None:
    """The client's request header block in ``chunk`` (a call starting), else ``None``."""
    unit = chunk.parsed
    if not isinstance(unit, H2Unit) or unit.type != HEADERS or unit.raw is not chunk.data:
        return None
    method = unit.header(":method")
    if method is None:
        return None  # trailers the client sent, not a new call
    headers: dict[str, str] = {}
    for name, value in unit.headers or ():
        if not name.startswith(":"):
            headers.setdefault(name, value)
    head = HttpHeadInfo(method=method, target=unit.header(":path"), headers=headers)
    return unit, head


def response_unit(chunk: Chunk) -> H2Unit | None:
    """The server's frame or header block in ``chunk`` (unchanged by earlier toxics)."""
    unit = chunk.parsed
    if isinstance(unit, H2Unit) and unit.raw is chunk.data and unit.stream:
        return unit
    return None


def grpc_status(attributes: dict[str, Any]) -> int:
    """The status to answer with: ``status`` (a gRPC name or number) if set, else a
    non-zero ``code`` (a gRPC code number), else the one the error ``kind`` maps to."""
    status = str(attributes.get("status") or "").strip()
    if status:
        return wk.grpc_code(status)
    code = int(attributes.get("code") or 0)
    if code:
        return wk.grpc_code(code)
    return STATUS_FOR_KIND.get(str(attributes.get("kind")), 2)


def check_status(toxic: str, attributes: dict[str, Any]) -> None:
    """``status`` must name a gRPC status; a non-zero ``code`` on gRPC must be one."""
    status = str(attributes.get("status") or "").strip()
    if status:
        try:
            wk.grpc_code(status)
        except ValueError as exc:
            raise InvalidToxic(f"{toxic}: attribute 'status': {exc}") from None


def check_pushback(toxic: str, text: str) -> None:
    """``pushback_ms`` is sent as it is (a client must cope with a malformed one too), but
    it must be a header value: short, printable ASCII."""
    if len(text) > MAX_PUSHBACK_TEXT or not all(32 <= ord(c) < 127 for c in text):
        raise InvalidToxic(
            f"{toxic}: attribute 'pushback_ms' must be at most {MAX_PUSHBACK_TEXT} printable "
            "ASCII characters (a number of milliseconds; negative: do not retry)"
        )


def trailers(stream: int, code: int, message: str, pushback: str, *, headers_sent: bool) -> bytes:
    """The frames that end ``stream`` with status ``code``: trailers after response headers
    (``headers_sent``), else a trailers-only reply (``:status 200`` and the status)."""
    fields: list[tuple[str, str]] = []
    if not headers_sent:
        fields += [(":status", "200"), ("content-type", "application/grpc")]
    fields.append(("grpc-status", str(code)))
    if message:
        fields.append(("grpc-message", grpc_message_text(message)))
    if pushback:
        fields.append(("grpc-retry-pushback-ms", pushback))
    return injected_headers(stream, fields, end_stream=True)


def data_prefix(unit: H2Unit, size: int) -> H2Unit:
    """A DATA unit carrying only the first ``size`` bytes of ``unit``'s data (the rest is
    dropped by the caller, who credits it to the sender), without END_STREAM."""
    data = unit.data[:size]
    raw = encode_frame(DATA, 0, unit.stream, data)
    return H2Unit(DATA, 0, unit.stream, raw, data=data, flow=len(data))


async def forward_until(
    ctx: ToxicContext,
    chunk: Chunk,
    unit: H2Unit,
    counter: GrpcMessageCounter,
    total: int,
    emit: Emit,
) -> bool:
    """DATA of a stream a fault waits on: forward it while fewer than ``total`` messages
    are complete; the frame that completes message ``total`` goes out cut after it (the
    rest is dropped and its flow-control credit given back). ``True``: ``total`` reached,
    the fault acts now."""
    want = total - counter.count
    ends = counter.boundaries(unit.data) if want > 0 else []
    if want > 0 and len(ends) < want:
        counter.feed(unit.data)
        await emit(chunk)
        return False
    if want > 0:
        kept = data_prefix(unit, ends[want - 1])
        counter.feed(kept.data)
        ctx.h2.credit(ctx.direction, unit.flow - kept.flow)
        await emit(Chunk(kept.raw, chunk.t, chunk.index, True, kept))
    else:
        ctx.h2.credit(ctx.direction, unit.flow)
    return True


class ArmedStreams:
    """Streams a fault waits on (a message count to reach), bounded per link."""

    LIMIT = 10_000

    def __init__(self) -> None:
        self.streams: dict[int, tuple[int, GrpcMessageCounter]] = {}

    def arm(self, stream: int, match: int) -> None:
        if len(self.streams) >= self.LIMIT:
            self.streams.pop(next(iter(self.streams)))
        self.streams[stream] = (match, GrpcMessageCounter())

    def get(self, stream: int) -> tuple[int, GrpcMessageCounter] | None:
        return self.streams.get(stream)

    def disarm(self, stream: int) -> None:
        self.streams.pop(stream, None)
