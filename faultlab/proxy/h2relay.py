"""The HTTP/2 relay: the peers' own frames forwarded unchanged, and faults put between them.

Why a relay and not two terminated connections: see :mod:`faultlab.codecs.framing.h2`. On a
clean connection every byte goes through as it came (the link forwards first and reads
after), SETTINGS, PING, WINDOW_UPDATE and GOAWAY included, so flow control and keepalive stay
end to end. A fault makes the relay intervene, always in a way both peers still accept:

- a call answered by the proxy (:meth:`H2Relay.refuse`): its stream never reaches the server;
  the client gets a trailers-only reply; the DATA it sent on that stream is credited back to
  it (WINDOW_UPDATE on the connection), since the server will never acknowledge it;
- a stream reset (:meth:`H2Relay.reset_stream`): RST_STREAM to both sides, and every later
  frame of that stream dropped (DATA credited back to its sender);
- GOAWAY to the client (:meth:`H2Relay.goaway`), graceful (streams above the last one never
  reach the server: the client retries them elsewhere) or abrupt (the connection closes);
- frames of the relay's own (RST_STREAM, WINDOW_UPDATE, a trailers-only reply) wait for a
  frame boundary in the output (:class:`FrameBoundary`), never splitting a peer's frame or
  header block; replies use never-indexed HPACK literals, so the peers' shared HPACK table
  is untouched.

Reading the client's bytes waits (:meth:`H2Relay.defer`): on a clean connection a read from
the client is forwarded at once and only read when the server's next bytes have been
forwarded to the client (or after :data:`DEFER_DELAY`, or before anything else needs the
relay's state). When the proxy shares a core with the server, reading the request right
after forwarding it would sit between the server's answer and its forwarding; read after
the answer went out, it overlaps the client's own work. The journal is unchanged: every
event is recorded in order, and a request's events carry the time its bytes arrived.

HPACK is stateful: once a header block of one direction is not forwarded (its stream was
refused or reset), the receiver's table no longer matches the sender's. From then on the
relay re-encodes that direction's blocks itself, starting with a table-size update to 0
(the receiver empties its table) and never indexing again: correct for any peer, at the
cost of an encode per block on that connection only.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import hpack

from faultlab.codecs.framing.h2 import (
    DATA,
    HEADERS,
    PUSH_PROMISE,
    RST_STREAM,
    WINDOW_UPDATE,
    FrameBoundary,
    H2Splitter,
    H2Unit,
    goaway_frame,
    header_block_frames,
    rst_stream_frame,
    window_update_frame,
)

if TYPE_CHECKING:
    from faultlab.proxy.proxy import Connection

__all__ = ["DEFER_DELAY", "DEFER_LIMIT", "MAX_TRACKED_STREAMS", "H2Relay", "parse_units"]

MAX_TRACKED_STREAMS = 10_000
"""Refused or reset streams one connection remembers (their late frames are dropped); past
it the oldest is forgotten."""
CANCEL = 0x8
DEFER_DELAY = 0.005
"""Seconds the client's forwarded bytes may wait to be read when the server does not answer
(its answer reads them at once)."""
DEFER_LIMIT = 256 * 1024
"""Forwarded client bytes waiting to be read past which they are read at once."""


class _Bounded:
    """A set that forgets its oldest member past :data:`MAX_TRACKED_STREAMS`."""

    __slots__ = ("_order", "_set")

    def __init__(self) -> None:
        self._set: set[int] = set()
        self._order: deque[int] = deque()

    def add(self, item: int) -> None:
        if item in self._set:
            return
        if len(self._order) >= MAX_TRACKED_STREAMS:
            self._set.discard(self._order.popleft())
        self._set.add(item)
        self._order.append(item)

    def discard(self, item: int) -> None:
        self._set.discard(item)  # the order entry goes when it is the oldest

    def __contains__(self, item: object) -> bool:
        return item in self._set

    def __bool__(self) -> bool:
        return bool(self._set)


def parse_units(data: bytes) -> list[H2Unit]:
    """The units of bytes the relay wrote itself (they decode without HPACK state)."""
    splitter = H2Splitter(client_side=False)
    splitter.receive_data(data)
    units: list[H2Unit] = []
    while True:
        item = splitter.next_frame()
        if not isinstance(item, H2Unit):
            return units
        item.injected = True
        units.append(item)


class H2Relay:
    """Write-side state of one HTTP/2 connection (both directions): what is dropped,
    re-encoded, credited or added on the way to each peer."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._boundary = {
            "upstream": FrameBoundary(client_side=True),
            "downstream": FrameBoundary(client_side=False),
        }
        self._pending: dict[str, list[tuple[bytes, bool]]] = {"upstream": [], "downstream": []}
        self._next_block = {"upstream": 0, "downstream": 0}
        self._encoder: dict[str, hpack.Encoder | None] = {"upstream": None, "downstream": None}
        self.refused = _Bounded()
        """Client streams answered by the proxy: none of their frames go to the server."""
        self.reset = _Bounded()
        """Streams the proxy reset: their later frames are dropped both ways."""
        self.goaway_last: int | None = None
        """The last stream id of the GOAWAY the proxy sent the client (``None``: none)."""
        self.max_opened = 0
        """The highest client stream whose HEADERS reached the server."""
        self._close_when_flushed = False
        self._debt: dict[str, dict[int, int]] = {"upstream": {}, "downstream": {}}
        """Window increments owed, per direction the WINDOW_UPDATEs travel and stream."""
        self.deferred: list[tuple[float, bytes]] = []
        """Reads from the client forwarded and not read yet, with the journal time each
        arrived (see :meth:`defer`)."""
        self._deferred_size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._now: Callable[[], float] = conn.proxy.journal.now

    # ---- reading the client later ------------------------------------------------------
    def defer(self, data: bytes) -> None:
        """The upstream link forwarded ``data`` (a clean read from the client) without
        reading it: it is read by :meth:`settle`, which runs when the server's next bytes
        have been forwarded to the client, before anything that needs the relay's state, or
        after :data:`DEFER_DELAY` if the server sends nothing. Its journal time is when it
        arrived: now, or what the exchanges say (a read that waited for the upstream)."""
        exchanges = self.conn.exchanges
        arrived = exchanges.at if exchanges is not None else None
        self.deferred.append((self._now() if arrived is None else arrived, data))
        self._deferred_size += len(data)
        if self._deferred_size > DEFER_LIMIT:
            self.settle()
        elif self._timer is None:
            if exchanges is not None:
                exchanges.settle = self.settle  # it reads what waits before it ends
            self._timer = asyncio.get_running_loop().call_later(DEFER_DELAY, self._due)

    def _due(self) -> None:
        """The timer is left running, not cancelled at each settle (arming and cancelling
        one per call costs more than one firing every few calls): here it reads what has
        waited :data:`DEFER_DELAY`, or waits for what came since."""
        self._timer = None
        if not self.deferred:
            return
        waited = self._now() - self.deferred[0][0]
        if waited >= DEFER_DELAY * 0.9:
            self.settle()
        else:
            self._timer = asyncio.get_running_loop().call_later(DEFER_DELAY - waited, self._due)

    def take_deferred(self) -> list[tuple[float, bytes]]:
        """The deferred reads, oldest first (the upstream link reads them now)."""
        taken, self.deferred = self.deferred, []
        self._deferred_size = 0
        return taken

    def settle(self) -> None:
        """Read what the client sent and the upstream link forwarded unread (journaling it
        with the time it arrived): before the server's answer is read, before the relay
        writes or decides anything, before the connection's exchanges end."""
        if not self.deferred:
            return
        link = self.conn.links.get("upstream")
        if link is None:  # the connection is gone: nothing is left to read them
            self.take_deferred()
            return
        link._drain_h2()

    # ---- state -------------------------------------------------------------------------
    def clean(self, direction: str) -> bool:
        """Nothing to drop, re-encode or add in ``direction``: bytes may be forwarded before
        they are read."""
        return (
            self._encoder[direction] is None
            and not self._pending[direction]
            and not self.refused
            and not self.reset
            and self.goaway_last is None
            and not self._debt[direction]
        )

    # ---- output ------------------------------------------------------------------------
    def forwarded(self, direction: str, splitter: H2Splitter) -> None:
        """The link forwarded what ``splitter`` has now read, before reading it (the fast
        path): the output ends where the splitter's input does."""
        held, preface = splitter.held_bytes() if splitter.held else (b"", False)
        self._boundary[direction].resync(held, preface)

    def forwarded_unit(self, direction: str, unit: H2Unit) -> None:
        """A unit whose bytes went out before it was read: keep the write-side bookkeeping."""
        if unit.block >= 0:
            self._next_block[direction] = unit.block + 1
        if direction == "upstream" and unit.type == HEADERS and unit.stream > self.max_opened:
            self.max_opened = unit.stream

    def write_raw(self, direction: str, data: bytes) -> None:
        """Bytes that are not a whole unit (a byte toxic cut or rewrote them): as they are."""
        if self.deferred:
            self.settle()
        self._sink(direction).write(data)
        self._boundary[direction].feed(data)
        self._flush(direction)

    def write(self, direction: str, unit: H2Unit) -> bool:
        """Write ``unit`` towards ``direction``'s receiver unless a fault dropped its stream;
        ``True`` if it was written (the caller then journals it)."""
        if self.deferred:
            self.settle()
        stream = unit.stream
        if stream and self._dropped(direction, unit):
            if unit.type == DATA and unit.flow:
                self.credit(direction, unit.flow)
            self._stream_ended(direction, unit)
            return False
        data = unit.raw
        if unit.type == WINDOW_UPDATE and self._debt[direction]:
            repaid = self._repaid(direction, unit)
            if repaid is None:
                return False
            data = repaid
        if unit.block >= 0:
            if unit.block != self._next_block[direction] or self._encoder[direction] is not None:
                data = self._reencode(direction, unit)
            self._next_block[direction] = unit.block + 1
        if direction == "upstream" and unit.type == HEADERS and stream > self.max_opened:
            self.max_opened = stream
        self._sink(direction).write(data)
        self._boundary[direction].feed(data)
        self._flush(direction)
        return True

    def _dropped(self, direction: str, unit: H2Unit) -> bool:
        stream = unit.stream
        if stream in self.reset:
            return True
        if direction != "upstream" or not stream & 1:
            return False
        if stream in self.refused:
            return True
        goaway = self.goaway_last
        if goaway is not None and stream > goaway and stream > self.max_opened:
            self.refused.add(stream)  # the client will retry it on another connection
            return True
        return False

    def _stream_ended(self, direction: str, unit: H2Unit) -> None:
        """The client's last frame of a refused stream: it can be forgotten."""
        if direction == "upstream" and (unit.end_stream or unit.type == RST_STREAM):
            self.refused.discard(unit.stream)

    def _reencode(self, direction: str, unit: H2Unit) -> bytes:
        encoder = self._encoder[direction]
        if encoder is None:
            encoder = hpack.Encoder()
            encoder.header_table_size = 0  # the receiver empties its table: in sync again
            self._encoder[direction] = encoder
        block = encoder.encode(unit.headers or [], huffman=True)
        if unit.type == PUSH_PROMISE:
            return unit.raw  # not sent by gRPC; a relay that re-encodes cannot carry it
        return header_block_frames(
            unit.stream, block, end_stream=unit.end_stream, priority=unit.priority
        )

    def _sink(self, direction: str) -> Any:
        return self.conn.links[direction].sink

    # ---- frames of the relay's own -----------------------------------------------------
    def inject(self, direction: str, data: bytes, *, observe: bool = False) -> None:
        """Write ``data`` (whole frames) towards ``direction``'s receiver at the next frame
        boundary; ``observe``: journal it as a response the proxy gave (downstream)."""
        if self.deferred:
            self.settle()
        link = self.conn.links.get(direction)
        if link is None or link.done:
            return
        if self._boundary[direction].at_boundary and not self._pending[direction]:
            self._put(direction, data, observe)
        else:
            self._pending[direction].append((data, observe))

    def _flush(self, direction: str) -> None:
        pending = self._pending[direction]
        while pending and self._boundary[direction].at_boundary:
            data, observe = pending.pop(0)
            self._put(direction, data, observe)
        if self._close_when_flushed and not self._pending["downstream"]:
            self._close_when_flushed = False
            link = self.conn.links["downstream"]
            link.loop.call_soon(self.conn.close)  # after the writes above reach the transport

    def _put(self, direction: str, data: bytes, observe: bool) -> None:
        self._sink(direction).write(data)
        self._boundary[direction].feed(data)
        if observe and direction == "downstream":
            exchanges = self.conn.exchanges
            if exchanges is not None:
                for unit in parse_units(data):
                    exchanges.response(data, unit, injected=True)

    def credit(self, direction: str, size: int) -> None:
        """``size`` DATA bytes sent towards ``direction`` were dropped: give the sender its
        connection window back (the receiver, which never saw them, will not)."""
        if size <= 0:
            return
        sender = "downstream" if direction == "upstream" else "upstream"
        self.inject(sender, window_update_frame(0, size))

    def credit_stream(self, direction: str, stream: int, size: int) -> None:
        """``size`` DATA bytes of a live ``stream`` sent towards ``direction`` were dropped:
        give the sender both windows back, the stream's and the connection's."""
        if size <= 0:
            return
        sender = "downstream" if direction == "upstream" else "upstream"
        frames = window_update_frame(stream, size) + window_update_frame(0, size)
        self.inject(sender, frames)

    def owe(self, direction: str, stream: int, size: int) -> None:
        """``size`` DATA bytes the sender never sent were added towards ``direction`` (a
        duplicated message): the receiver will grant window for them, which the sender must
        not get, so that much is taken off the receiver's next WINDOW_UPDATEs."""
        if self.deferred:
            self.settle()
        if size <= 0:
            return
        updates = "downstream" if direction == "upstream" else "upstream"
        debts = self._debt[updates]
        for key in (stream, 0):
            debts[key] = debts.get(key, 0) + size
        if len(debts) > MAX_TRACKED_STREAMS:
            debts.pop(next(iter(debts)))

    def _repaid(self, direction: str, unit: H2Unit) -> bytes | None:
        """A WINDOW_UPDATE towards ``direction`` with what is owed taken off (``None``:
        nothing left to send)."""
        debts = self._debt[direction]
        owed = debts.get(unit.stream, 0)
        if not owed or len(unit.data) < 4:
            return unit.raw
        increment = int.from_bytes(unit.data[:4], "big") & 0x7FFFFFFF
        taken = min(owed, increment)
        if owed - taken:
            debts[unit.stream] = owed - taken
        else:
            del debts[unit.stream]
        if increment == taken:
            return None
        return window_update_frame(unit.stream, increment - taken)

    def refuse(self, stream: int, reply: bytes) -> None:
        """Answer client stream ``stream`` with ``reply`` (frames for the client); none of
        the stream's frames go to the server."""
        if self.deferred:
            self.settle()
        self.refused.add(stream)
        self.inject("downstream", reply, observe=True)

    def reset_stream(self, stream: int, code: int, *, server_code: int = CANCEL) -> None:
        """RST_STREAM ``stream`` to the client (``code``) and to the server (``server_code``,
        unless it never saw the stream); later frames of it are dropped both ways."""
        if self.deferred:
            self.settle()
        if stream in self.reset:
            return
        refused = stream in self.refused
        self.reset.add(stream)
        self.inject("downstream", rst_stream_frame(stream, code), observe=True)
        if not refused and stream <= self.max_opened:
            self.inject("upstream", rst_stream_frame(stream, server_code))

    def end_stream_with(self, stream: int, trailers: bytes) -> None:
        """Close ``stream`` to the client with ``trailers`` (frames ending the stream) and
        cancel it at the server: a call that fails after the server answered part of it."""
        if self.deferred:
            self.settle()
        if stream in self.reset:
            return
        self.reset.add(stream)
        self.inject("downstream", trailers, observe=True)
        if stream not in self.refused and stream <= self.max_opened:
            self.inject("upstream", rst_stream_frame(stream, CANCEL))

    def goaway(self, last_stream: int, code: int, *, abrupt: bool, debug: bytes = b"") -> None:
        """GOAWAY to the client: streams above ``last_stream`` are refused (the client may
        retry them elsewhere); ``abrupt``: then close the connection."""
        if self.deferred:
            self.settle()
        self.goaway_last = (
            last_stream if self.goaway_last is None else min(self.goaway_last, last_stream)
        )
        self.inject("downstream", goaway_frame(last_stream, code, debug), observe=True)
        if abrupt:
            self._close_when_flushed = True
            self._flush("downstream")
