"""One direction of one connection: chunks in, through the toxic chain, out.

::

    source --data_received--> [framer] --> queue --> toxic 1 --> ... --> toxic n --> sink

With no toxic on the link, nothing queued and the sink ready, data goes
straight from source to sink inside ``data_received`` (no task, no queue): the
proxy costs one write. Otherwise a processor task takes chunks in order and runs the chain;
each toxic hands chunks on with ``emit``. Chunks in flight finish through the
chain they entered; a toxic being updated or removed is interrupted so it
forwards what it holds at once. Whether a toxic is active on this link is
drawn once per (toxic, generation) from the seeded RNG and journaled.

Memory is bounded end to end: the source stops reading (``hold``) while the
queue holds more than HIGH_WATER bytes or while the sink's own buffer is full,
and the chain waits for the sink before it writes. So a link whose far side
never reads holds at most the queue, one read, what its toxics may hold
(``HOLD_LIMIT`` each) and the sink's buffer: about 2.5 MiB, whatever the toxic.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faultlab._seed import derive
from faultlab._timers import monotonic
from faultlab.codecs.framing import Framer, get_framer
from faultlab.codecs.framing.h2 import (
    GOAWAY,
    HEADERS,
    RST_STREAM,
    SETTINGS,
    SETTINGS_HEADER_TABLE_SIZE,
    H2Splitter,
    H2Unit,
)
from faultlab.codecs.framing.http_split import HttpFrame, HttpSplitter
from faultlab.codecs.framing.httpinfo import parse_head
from faultlab.errors import RemoteProtocolError
from faultlab.proxy.endpoints import Endpoint, Sink
from faultlab.toxics.base import Chunk, Toxic, ToxicContext

if TYPE_CHECKING:
    from faultlab.proxy.proxy import Connection, ToxicEntry

__all__ = ["Link"]

MAX_REPLY_EDITS = 1024
"""Replies one connection may have waiting for a toxic's edit (:attr:`Chunk.reply_edit`);
a toxic checks :meth:`ToxicContext.reply_edits` against it before setting one."""
HIGH_WATER = 1024 * 1024
"""Queued bytes past which the source stops reading."""
LOW_WATER = 256 * 1024
"""Queued bytes below which it reads again."""
_EOF = object()


@dataclass
class _Stage:
    entry_name: str
    generation: int
    toxic: Toxic
    ctx: ToxicContext
    active: bool


class Link:
    # A proxy holds two links per connection: slots keep each small (thousands are open).
    __slots__ = (
        "_acting", "_active", "_ahead", "_answered", "_asked", "_busy", "_bytes_in",
        "_detached", "_edits", "_framer", "_h2", "_id_edits", "_in_chain", "_may_splice",
        "_out_framer", "_plain", "_queue", "_queued_bytes", "_raw_write", "_replies_to",
        "_sink_open", "_sink_waiter", "_splits_http", "_task", "_wake", "conn",
        "direction", "done", "eof", "frames", "framing", "index", "loop", "opened_at", "sink",
        "source", "stages",
    )  # fmt: skip

    def __init__(
        self,
        conn: Connection,
        direction: str,
        source: Endpoint,
        sink: Sink,
        framing: str | None,
    ) -> None:
        self.conn = conn
        self.direction = direction
        self.source = source
        self.sink = sink
        self.loop = asyncio.get_running_loop()
        self._sink_waiter: asyncio.Future[None] | None = None
        """Resolved when the sink takes data again (made only when something must wait)."""
        self.stages: list[_Stage] = []
        self._active: list[_Stage] = []
        self._acting: list[_Stage] = []
        """The active stages data must go through: those that pass everything at once
        (:meth:`Toxic.passes_everything`, e.g. a 0 ms latency) are left out."""
        self._queue: deque[Any] | None = None
        """Chunks waiting for the chain (made at the first one: most links never queue)."""
        self._queued_bytes = 0
        self._in_chain = 0
        self._replies_to: Link | None = None
        self._busy = False
        self._wake: asyncio.Future[None] | None = None
        """The idle processor's wake-up call (made only while it waits)."""
        self._task: asyncio.Task[None] | None = None
        self._detached: set[asyncio.Task[Any]] = set()
        """Flushes toxics started to outlive their removal; owned here, cancelled on stop."""
        self.index = 0
        """Chunks this link handled (reads while spliced are not seen, so not counted)."""
        self._bytes_in = 0
        self.eof = False
        self.done = False
        self.framing = framing
        self.opened_at = monotonic()
        self._framer: Framer[Any] | None = None
        self._out_framer: Framer[Any] | None = None
        self._h2 = conn.h2 if framing == "h2" else None
        if framing == "h2":
            # Both directions are read: frames go out as the peers sent them, and the
            # relay (conn.h2) steps in only where a fault asks (faultlab.proxy.h2relay).
            self._framer = H2Splitter(client_side=direction == "upstream")
        elif framing == "http":
            # A link sees one direction only: a splitter per direction cuts whole messages,
            # and frames travel as their exact wire bytes (toxics see whole HTTP messages).
            self._framer = HttpSplitter("requests" if direction == "upstream" else "responses")
        elif framing:
            self._framer = get_framer(framing)
            self._out_framer = get_framer(framing)
        self._splits_http = isinstance(self._framer, HttpSplitter)
        self._plain = (
            self._framer is None and not conn.message_based and not conn.proxy.record_chunks
        )
        """A raw byte link that journals no chunk: with nothing in the way, ``feed`` writes
        each read to the sink itself (the fast path, a forwarder's cost)."""
        self._sink_open = True
        """Whether the sink takes data (False between its pause and resume)."""
        self._raw_write = sink.direct_writer() if self._plain else None
        """The sink transport's own write, for the fast path (None: ``sink.write``)."""
        self._may_splice = self._raw_write is not None
        """Whether the fast path may splice the source into the sink: then reads go from the
        source's transport to ``_raw_write`` with no Python at all (:meth:`Endpoint.splice`),
        and any change that needs the link ends that first (:meth:`_unsplice`)."""
        self._ahead = 0
        """Bytes forwarded before the splitter returned the message they belong to."""
        self.frames = bool(framing) or conn.message_based
        # Replies a toxic asked to edit (downstream side). Over HTTP the Nth response
        # answers the Nth request sent to the server: ``_edits`` maps that ordinal to its
        # edit (``_asked`` requests sent, ``_answered`` responses read). Elsewhere the edit
        # recognises its own reply (by its RPC ids): ``_id_edits``, oldest first.
        self._asked = 0
        self._answered = 0
        self._edits: dict[int, Any] = {}
        self._id_edits: deque[Any] | None = None  # made at the first edit

    # byte counts (exact also while spliced: the source's kernel counts then)
    @property
    def bytes_in(self) -> int:
        """Bytes read from the source."""
        return self._bytes_in + self.source.spliced_bytes()

    @property
    def bytes_out(self) -> int:
        """Bytes handed to the sink (toxics' replies to this side included)."""
        return self.sink.bytes_written + self.source.spliced_bytes()

    def _unsplice(self) -> None:
        """Reads come through :meth:`feed` again; what went by meanwhile is counted."""
        count = self.source.unsplice()
        self._bytes_in += count
        self.sink.bytes_written += count

    def _opposite(self) -> Link | None:
        """The connection's other link (its source is this link's sink)."""
        return self.conn.links.get("downstream" if self.direction == "upstream" else "upstream")

    # chain management
    def set_chain(self, entries: list[ToxicEntry]) -> None:
        """Install the proxy's toxics for this direction, keeping unchanged stages."""
        old = {(s.entry_name, s.generation): s for s in self.stages}
        keep = {(e.name, e.generation) for e in entries}
        for key, stage in old.items():
            if key not in keep:
                stage.ctx.interrupt()
                stage.toxic.stop(stage.ctx)
                stage.ctx.cancel_tasks()
        stages = []
        for entry in entries:
            kept = old.get((entry.name, entry.generation))
            if kept is None:
                previous = next((s for s in self.stages if s.entry_name == entry.name), None)
                kept = self._new_stage(entry, previous)
            stages.append(kept)
        self.stages = stages
        self._active = [s for s in stages if s.active]
        self._acting = [s for s in self._active if not s.toxic.passes_everything()]
        if self._acting:
            self._unsplice()
        if self._acting and self._task is None:
            self._task = self.loop.create_task(self._process())
        self._wakeup()

    def _new_stage(self, entry: ToxicEntry, previous: _Stage | None) -> _Stage:
        conn = self.conn
        rng = derive(
            conn.proxy.seed,
            conn.proxy.name,
            conn.ordinal,
            self.direction,
            entry.name,
            entry.generation,
        )
        draw = rng.random()
        active = draw < entry.toxicity
        ctx = ToxicContext(
            rng=rng,
            record=self._fault_recorder(entry),
            close=conn.close,
            reset=conn.reset,
            direction=self.direction,
            link_kind="frames" if self.frames else "bytes",
            loop=self.loop,
            reply=self.reply,
            protocol=conn.proxy.protocol,
            framing=self.framing,
            opened_at=self.opened_at,
            shared=entry.shared,
            detached=self._detached,
            reply_edits=self._reply_edits_waiting,
            h2=conn.h2,
        )
        if previous is not None:
            ctx.state = previous.ctx.state  # stateful toxics (limit_data) survive updates
        self.record(entry, "toxicity", active=active, draw=round(draw, 6), toxicity=entry.toxicity)
        stage = _Stage(entry.name, entry.generation, entry.toxic, ctx, active)
        if active:
            entry.toxic.start(ctx)
        return stage

    def _fault_recorder(self, entry: ToxicEntry) -> Callable[..., None]:
        """``record(decision, **fields)`` for one toxic on this link: the fields fixed per
        link are built once, so a fault journaled per chunk costs one dict."""
        shared = {
            "proxy": self.conn.proxy.name,
            "connection": self.conn.ordinal,
            "direction": self.direction,
            "toxic": entry.name,
            "type": entry.toxic.type_name,
            "decision": None,  # keeps its place: each event's own value replaces it
        }
        record_merged = self.conn.proxy.journal.record_merged

        def record(decision: str, **fields: Any) -> None:
            fields["decision"] = decision
            record_merged("fault", shared, fields)

        return record

    def record(self, entry: ToxicEntry, decision: str, **fields: Any) -> None:
        self.conn.proxy.journal.record(
            "fault",
            proxy=self.conn.proxy.name,
            connection=self.conn.ordinal,
            direction=self.direction,
            toxic=entry.name,
            type=entry.toxic.type_name,
            decision=decision,
            **fields,
        )

    # replies a toxic edits
    def _reply_edits_waiting(self) -> int:
        """Replies of this connection waiting for an edit (read by upstream toxics)."""
        other = self.conn.links.get("downstream")
        return 0 if other is None else len(other._edits) + len(other._id_edits or ())

    def _expect(self, edit: Any) -> None:
        """Downstream: one more request went to the server (``edit``: for its reply)."""
        ordinal = self._asked
        self._asked += 1
        if edit is not None:
            self._edits[ordinal] = edit

    def _edit_answer(self, frame: HttpFrame) -> bytes | None:
        """Downstream, HTTP: the edited bytes of this response if its request asked for an
        edit (``None``: forward it as it is). Counts final responses (1xx are not answers)."""
        status = frame.info.status
        if status is None or status < 200:
            return None
        ordinal = self._answered
        self._answered += 1
        edit = self._edits.pop(ordinal, None)
        if edit is None:
            return None
        edited: bytes | None = edit(frame.raw)
        return edited

    def _edit_by_id(self, data: bytes) -> bytes:
        """Downstream, not HTTP: the reply edited by the oldest edit that recognises it."""
        edits = self._id_edits or deque()
        for edit in edits:
            edited = edit(data)
            if edited is not None:
                edits.remove(edit)
                return bytes(edited)
        return data

    # input from the source
    def feed(self, data: bytes) -> None:
        if (
            self._plain
            and self._sink_open
            and not self._acting
            and not self._queue
            and not self._busy
            and not self.done
        ):
            # The fast path: a raw link with nothing in the way writes the read itself.
            size = len(data)
            self._bytes_in += size
            self.index += 1
            raw = self._raw_write
            if raw is None:
                self.sink.write(data)
                return
            self.sink.bytes_written += size
            try:
                raw(data)
            except RuntimeError:  # the sink closed under us: its connection_lost follows
                self._raw_write = None
                self._may_splice = False
                return
            if self._may_splice:
                # Faster still: the next reads go to the sink with no Python at all.
                self._may_splice = self.source.splice(raw)
            return
        if self.done:
            return
        self._bytes_in += len(data)
        if self._h2 is not None:
            self._feed_h2(data)
            return
        if self._framer is not None:
            if self._splits_http and self._direct():
                # Nothing acts on this link: forward first, split and journal after, so
                # observing costs the client nothing while the server works.
                self.sink.write(data)
                self._ahead += len(data)
            self._framer.receive_data(data)
            self._drain_framer()
            return
        self._accept(data, self.frames)

    def _drain_framer(self) -> None:
        assert self._framer is not None
        while True:
            try:
                frame = self._framer.next_frame()
            except RemoteProtocolError as exc:
                self._framing_error(exc)
                return
            if isinstance(frame, HttpFrame):
                if self.direction == "downstream":
                    edited = self._edit_answer(frame)
                    # never forwarded ahead (a pending edit stops the fast path); if it were,
                    # the bytes already left and the answer stands
                    if edited is not None and not self._ahead:
                        self._accept(edited, True)
                        continue
                if self._ahead:
                    self._forwarded(frame)
                    continue
                exchanges = self.conn.exchanges
                if exchanges is not None and self.direction == "upstream":
                    exchanges.request(frame.raw, frame)
                self._accept(frame.raw, True, frame)
                continue
            if not isinstance(frame, bytes):
                return
            if self._ahead:  # passthrough after an upgrade, forwarded already
                sent = min(self._ahead, len(frame))
                self._ahead -= sent
                frame = frame[sent:]
                if not frame:
                    continue
            if self._splits_http:  # after an HTTP upgrade: raw bytes, not frames any more
                self._accept(frame, False)
                continue
            exchanges = self.conn.exchanges
            if exchanges is not None and self.direction == "upstream":
                exchanges.request(frame, None)
            self._accept(frame, True)

    def _feed_h2(self, data: bytes) -> None:
        relay, framer = self._h2, self._framer
        assert relay is not None
        assert isinstance(framer, H2Splitter)
        if self._direct() and relay.clean(self.direction) and self._ahead == framer.held:
            # Nothing acts here: forward first, read after (the peers' frames unchanged).
            self.sink.write(data)
            if self.direction == "upstream" and (
                relay.deferred or (not framer.held and len(data) > 9 and data[3] <= HEADERS)
            ):
                # A call's HEADERS or DATA: read once the server's answer went out
                # (H2Relay.defer). On a core shared with the server, reading it now would
                # delay forwarding that answer. Frames that get no answer are read now.
                relay.defer(data)
                return
            self._ahead += len(data)
            framer.receive_data(data)
            self._drain_h2()
            relay.forwarded(self.direction, framer)
            return
        if relay.deferred:
            relay.settle()  # what was forwarded unread is read first
        framer.receive_data(data)
        self._drain_h2()

    def _drain_h2(self) -> None:
        relay, framer = self._h2, self._framer
        assert relay is not None
        assert isinstance(framer, H2Splitter)
        upstream = self.direction == "upstream"
        stamps: list[tuple[int, float]] | None = None
        """Deferred reads: (where each ends in what the splitter holds, when it arrived)."""
        if relay.deferred:
            if upstream:
                held = end = framer.held
                stamps = []
                for at, chunk in relay.take_deferred():
                    framer.receive_late(chunk)
                    end += len(chunk)
                    stamps.append((end, at))
                self._ahead += end - held  # all of it was forwarded
            else:
                relay.settle()  # the client's frames are read before the server's
        exchanges = self.conn.exchanges
        consumed = 0
        try:
            while True:
                try:
                    unit = framer.next_frame()
                except RemoteProtocolError as exc:
                    self._framing_error(exc)
                    return
                if not isinstance(unit, H2Unit):
                    return
                if unit.type == SETTINGS:
                    self._settings(unit)
                if stamps is not None:  # the read that completed this unit
                    consumed += len(unit.raw)
                    while consumed > stamps[0][0] and len(stamps) > 1:
                        del stamps[0]
                # the exchanges read DATA, HEADERS, RST_STREAM and GOAWAY only
                read = exchanges if unit.type <= RST_STREAM or unit.type == GOAWAY else None
                if read is not None and upstream:
                    if stamps is not None:
                        read.at = stamps[0][1]  # journaled as of when it arrived
                    read.request(unit.raw, unit)
                if self._ahead:
                    size = len(unit.raw)
                    sent = min(self._ahead, size)
                    self._ahead -= sent
                    self.index += 1  # _count_chunk: HTTP/2 journals calls, not chunks
                    if unit.block >= 0 or unit.type == HEADERS:
                        relay.forwarded_unit(self.direction, unit)
                    if read is not None and not upstream:
                        read.response(unit.raw, unit, injected=False)
                    if sent < size:  # a toxic came meanwhile: the rest as plain bytes
                        self._accept(unit.raw[sent:], False)
                    continue
                self._accept(unit.raw, True, unit)
        finally:
            if stamps is not None:
                if exchanges is not None:
                    exchanges.at = None
                relay.forwarded(self.direction, framer)  # the output ends where it read

    def _settings(self, unit: H2Unit) -> None:
        """A SETTINGS from this direction's sender: HEADER_TABLE_SIZE bounds what the other
        direction's sender may use, so that direction's decoder must allow it."""
        if unit.flags & 0x1:  # ACK
            return
        other = self._opposite()
        if other is None or not isinstance(other._framer, H2Splitter):
            return
        payload = unit.data
        for i in range(0, len(payload) - 5, 6):
            if int.from_bytes(payload[i : i + 2], "big") == SETTINGS_HEADER_TABLE_SIZE:
                other._framer.allow_table_size(int.from_bytes(payload[i + 2 : i + 6], "big"))

    def _framing_error(self, exc: RemoteProtocolError) -> None:
        """What the peer sent breaks the framing: journal why and close the connection."""
        self.conn.proxy.journal.record(
            "framing_error",
            proxy=self.conn.proxy.name,
            connection=self.conn.ordinal,
            direction=self.direction,
            error=str(exc),
        )
        self.conn.close()

    def _forwarded(self, frame: HttpFrame) -> None:
        """A message whose bytes went out before it was split (all, or its first part if a
        toxic arrived meanwhile: the rest goes through the chain as plain bytes)."""
        sent = min(self._ahead, len(frame.raw))
        self._ahead -= sent
        if sent == len(frame.raw):
            self._count_chunk(sent)
        exchanges = self.conn.exchanges
        if self.direction == "upstream":
            if exchanges is not None:
                exchanges.request(frame.raw, frame)
            self._expect_answer(frame.info.method)
        elif exchanges is not None:
            exchanges.response(frame.raw, frame, injected=False)
        if sent < len(frame.raw):
            self._accept(frame.raw[sent:], False)

    def _count_chunk(self, size: int) -> int:
        """The next chunk index (journaled when the proxy records chunks)."""
        index = self.index
        self.index += 1
        proxy = self.conn.proxy
        if proxy.record_chunks and self._h2 is None:  # HTTP/2: the per-call wire events
            proxy.journal.record(
                "chunk",
                proxy=proxy.name,
                connection=self.conn.ordinal,
                direction=self.direction,
                index=index,
                size=size,
            )
        return index

    def _accept(self, data: bytes, frame: bool, parsed: Any = None) -> None:
        if frame and self._id_edits and self.direction == "downstream":
            edited = self._edit_by_id(data)
            if edited is not data:
                data, parsed = edited, None
        chunk = Chunk(data, monotonic(), self._count_chunk(len(data)), frame, parsed)
        if self._direct():
            self._write(chunk)  # fast path
            return
        self._enqueue(chunk)
        self._queued_bytes += len(data)
        if self._queued_bytes > HIGH_WATER:
            self.source.hold("queue")
        if self._task is None:
            self._task = self.loop.create_task(self._process())
        self._wakeup()

    def feed_eof(self) -> None:
        if self.eof:
            return
        self.eof = True
        self._unsplice()
        if self._h2 is not None:
            assert self._framer is not None
            self._framer.receive_data(b"")
            self._drain_h2()
        elif self._framer is not None:
            self._framer.receive_data(b"")
            self._drain_framer()
        if self.direction == "upstream" and self.conn.exchanges is not None:
            self.conn.exchanges.client_eof()
        if self._direct():
            self._finish()
            return
        self._enqueue(_EOF)
        if self._task is None:
            self._task = self.loop.create_task(self._process())
        self._wakeup()

    def reply(self, payload: bytes) -> None:
        """Write one frame to this link's source, framed by the opposite link (toxic replies)."""
        other = self._opposite()
        if other is not None and not other.done:
            other._write(Chunk(payload, monotonic(), -1, True))
            self._replies_to = other

    def _direct(self) -> bool:
        """Nothing in the way: a chunk may go straight to the sink (the fast path)."""
        return not self._acting and self._idle()

    def _idle(self) -> bool:
        """Nothing queued or in the chain, the sink ready, no reply waiting for an edit."""
        return (
            not self._queue
            and not self._busy
            and self._sink_open
            and not self._edits
            and not self._id_edits
        )

    def _enqueue(self, item: Any) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(item)

    def _wakeup(self) -> None:
        """Let a waiting processor look at its queue and chain again."""
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _sink_ready(self) -> None:
        """Return once the sink takes data (or the link stopped)."""
        while not self._sink_open and not self.done:
            waiter = self._sink_waiter
            if waiter is None or waiter.done():
                waiter = self._sink_waiter = self.loop.create_future()
            await waiter

    def _open_sink(self) -> None:
        self._sink_open = True
        waiter, self._sink_waiter = self._sink_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # backpressure from the sink
    def sink_paused(self) -> None:
        """The sink's buffer is full: stop reading the source, hold the chain's output."""
        self._sink_open = False
        self.source.hold("sink")

    def sink_resumed(self) -> None:
        self._open_sink()  # wakes the processor, which always exists while items queue
        self.source.release("sink")

    def held_bytes(self) -> int:
        """Bytes this link holds in the proxy: queued, inside the chain, in the sink's buffer."""
        held = sum(stage.ctx.held_bytes for stage in self.stages)
        return self._queued_bytes + self._in_chain + held + self.sink.buffered()

    # output to the sink
    def _write(self, chunk: Chunk) -> None:
        if self._h2 is not None:
            self._write_h2(chunk)
            return
        if chunk.frame and self.framing is not None:
            if self.direction == "downstream":
                exchanges = self.conn.exchanges
                if exchanges is not None:
                    exchanges.response(chunk.data, chunk.parsed, injected=chunk.index < 0)
            elif self._splits_http:
                self._answered_by_server(chunk)
        if chunk.reply_edit is not None and self.direction == "upstream" and not self._splits_http:
            other = self.conn.links.get("downstream")
            if other is not None:
                if other._id_edits is None:
                    other._id_edits = deque(maxlen=MAX_REPLY_EDITS)
                other._id_edits.append(chunk.reply_edit)
        if self._out_framer is not None:
            self.sink.write(self._out_framer.frame(chunk.data))
        else:
            self.sink.write(chunk.data)

    def _write_h2(self, chunk: Chunk) -> None:
        relay = self._h2
        assert relay is not None
        parsed = chunk.parsed
        if not isinstance(parsed, H2Unit) or parsed.raw is not chunk.data:
            if chunk.index < 0:  # a toxic's own frames (ctx.reply)
                relay.inject(self.direction, chunk.data, observe=True)
            else:
                relay.write_raw(self.direction, chunk.data)
            return
        if relay.write(self.direction, parsed) and self.direction == "downstream":
            exchanges = self.conn.exchanges
            if exchanges is not None:
                exchanges.response(parsed.raw, parsed, injected=False)

    def _answered_by_server(self, chunk: Chunk) -> None:
        """A request goes to the server: its answer, in order, is the response splitter's
        next (so a HEAD's answer has no body, a CONNECT's 2xx opens a tunnel)."""
        parsed = chunk.parsed
        if isinstance(parsed, HttpFrame) and parsed.raw is chunk.data:
            method = parsed.info.method
        else:
            head = parse_head(chunk.data)
            method = head.method if head is not None else None
        self._expect_answer(method, chunk.reply_edit)

    def _expect_answer(self, method: str | None, edit: Any = None) -> None:
        other = self.conn.links.get("downstream")
        if other is None:
            return
        if method and isinstance(other._framer, HttpSplitter):
            other._framer.answering(method)
        other._expect(edit)

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            # The sink is the other link's source: its reads are counted in Python again
            # before our FIN goes out (tcpcount: after both FINs the kernel's count is unclear).
            other = self._opposite()
            if other is not None:
                other._unsplice()
            self.sink.write_eof()
            if self.direction == "downstream" and self.conn.exchanges is not None:
                self.conn.exchanges.ended()  # the client now sees the close: no answer comes
            self.conn.link_finished(self)

    async def _emit_from(self, chain: list[_Stage], position: int, chunk: Chunk) -> None:
        """Hand ``chunk`` to stage ``position`` of the chain it entered (or to the sink)."""
        if position >= len(chain):
            if not self._sink_open and not self.done:
                await self._sink_ready()
            if not self.done:
                self._write(chunk)
            return
        stage = chain[position]

        async def emit(c: Chunk) -> None:
            await self._emit_from(chain, position + 1, c)

        await stage.toxic.process(stage.ctx, chunk, emit)

    async def _process(self) -> None:
        try:
            while not self.done:
                queue = self._queue
                if not queue:
                    if not self._acting and self._sink_open:
                        self._task = None  # back to the fast path
                        return
                    self._wake = self.loop.create_future()
                    try:
                        await self._wake
                    finally:
                        self._wake = None
                    continue
                if self._replies_to is not None and not self._replies_to._sink_open:
                    # A source that does not read our replies is not read either.
                    await self._replies_to._sink_ready()  # returns once it stopped, too
                    continue
                item = queue.popleft()
                self._busy = True
                try:
                    if item is _EOF:
                        for stage in list(self._active):
                            await stage.toxic.on_eof(stage.ctx)
                        self._finish()
                        return
                    self._queued_bytes -= len(item.data)
                    if self._queued_bytes < LOW_WATER:
                        self.source.release("queue")
                    self._in_chain = len(item.data)
                    await self._emit_from(list(self._acting), 0, item)
                finally:
                    self._busy = False
                    self._in_chain = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a toxic bug must not hang the connection
            self.conn.proxy.journal.record(
                "error",
                proxy=self.conn.proxy.name,
                connection=self.conn.ordinal,
                direction=self.direction,
                error=f"{type(exc).__name__}: {exc}",
            )
            self.conn.close()
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    def release(self) -> None:
        """The connection is gone: drop the chain (its contexts hold this link in closures)
        so the link, its toxics' state and the endpoints are freed by reference counting."""
        self.stages = []
        self._active = []
        self._acting = []
        self._unsplice()
        self._raw_write = None
        self._queue = None
        self._detached.clear()

    def stop(self) -> None:
        """Connection closing: stop timers and the processor, release what waits on the sink."""
        self._unsplice()
        self.done = True
        self._open_sink()
        self._queue = None
        self._queued_bytes = 0
        for stage in self.stages:
            stage.ctx.interrupt()
            stage.ctx.cancel_tasks()
        for task in list(self._detached):
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            self._task = None
