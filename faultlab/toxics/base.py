"""What a toxic is: validated attributes plus a per-chunk ``process`` coroutine.

After Toxiproxy's ``toxics/``: a toxic object is configuration only; the
per-link state lives in its :class:`ToxicContext`. Toxicity, seeding and
journaling are handled once, by the link, not by each toxic. A toxic sees
chunks (one read of a byte stream) or, with framing or on a message relay,
whole frames; toxics that only make sense on frames say so with
``needs_frames`` and are refused on raw byte streams.

The chain: a link calls ``process(ctx, chunk, emit)`` of the first active
toxic; ``emit`` hands a chunk to the next toxic (and, after the last, to the
destination). A toxic may emit nothing (drop), several chunks (slice,
duplicate), or wait first (latency) — always through ``ctx.sleep`` so a live
update or removal can interrupt it without losing data.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar

from faultlab._registry import Registry
from faultlab._timers import monotonic, wake_at
from faultlab.errors import FaultlabError

__all__ = [
    "BUILTIN_TOXICS",
    "GENERIC_SPAN",
    "HOLD_LIMIT",
    "Attr",
    "Chunk",
    "Emit",
    "InvalidToxic",
    "Toxic",
    "ToxicContext",
    "get_toxic_class",
    "register_toxic",
    "toxic_types",
]


HOLD_LIMIT = 1 << 20
"""Most bytes one toxic may hold on one link beside the link's own queue."""


class InvalidToxic(FaultlabError, ValueError):
    """Unknown toxic type, or attributes out of range (a 400 from the API)."""


@dataclass(slots=True)
class Chunk:
    """A piece of data in flight: one read, or one whole frame/message."""

    data: bytes
    t: float
    """Arrival time (:func:`faultlab._timers.monotonic`); latency counts from here."""
    index: int = 0
    """Ordinal of this chunk/frame on its link."""
    frame: bool = False
    parsed: Any = None
    """The framer's decoded message ``data`` was read as (an ``HttpMessage``), so the wire
    journal need not parse it again; stale once a toxic replaces ``data``."""
    reply_edit: Callable[[bytes], bytes | None] | None = None
    """Set by a toxic on a request it forwards: the link applies it to the server's reply
    to this request before anything else sees it (``None`` back: not this reply, or leave
    it). An HTTP reply is the one in this request's place; otherwise the edit recognises
    its reply (a JSON-RPC batch reply by its ids). See :meth:`ToxicContext.reply_edits`."""


Emit = Callable[[Chunk], Awaitable[None]]


GENERIC_SPAN = 1000
"""Width of the range tests draw a number from when its ``Attr`` declares no ``generate``."""


@dataclass(frozen=True, slots=True)
class Attr:
    """One attribute: type, default, the legal range, and how tests draw it.

    ``minimum``/``maximum`` and ``choices`` are what the proxy accepts (the
    range Toxiproxy crashes or hangs outside of). The rest only feeds
    :mod:`faultlab.strategies` and the catalogue: ``generate`` is the
    practical range tests draw a number from, written ``(mildest, harshest)``
    so shrinking moves toward the first (``(1000, 1)`` for a bandwidth: more
    is milder); ``also`` adds special values drawn after it, the harshest
    (``timeout=0`` never closes); ``step`` is a float's resolution;
    ``options`` are the values drawn instead, mildest first (default:
    ``choices``; a bool draws its default first). A string with neither is
    never drawn: its default is the only value known to be valid.
    """

    kind: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    _: KW_ONLY
    choices: tuple[Any, ...] = ()
    generate: tuple[float, float] | None = None
    also: tuple[Any, ...] = ()
    step: float | None = None
    options: tuple[Any, ...] = ()
    numbers_as_text: bool = False
    """A string attribute that also takes an integer, as its decimal text (a gRPC status
    or HTTP/2 error code given as a name or a number)."""

    def check(self, toxic: str, name: str, value: Any) -> Any:
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)  # Python clients send 100.0; accept exact integers
                else:
                    raise InvalidToxic(f"{toxic}: attribute {name!r} must be an integer")
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidToxic(f"{toxic}: attribute {name!r} must be a number")
            value = float(value)
            if not math.isfinite(value):
                raise InvalidToxic(f"{toxic}: attribute {name!r} must be finite")
        elif self.kind is str:
            if self.numbers_as_text and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise InvalidToxic(f"{toxic}: attribute {name!r} must be a string")
        elif self.kind is bool and not isinstance(value, bool):
            raise InvalidToxic(f"{toxic}: attribute {name!r} must be true or false")
        if self.choices and value not in self.choices:
            raise InvalidToxic(
                f"{toxic}: attribute {name!r} must be one of {', '.join(map(str, self.choices))}"
            )
        if self.minimum is not None and value < self.minimum:
            raise InvalidToxic(
                f"{toxic}: attribute {name!r} must be >= {self.minimum}, got {value}"
            )
        if self.maximum is not None and value > self.maximum:
            raise InvalidToxic(
                f"{toxic}: attribute {name!r} must be <= {self.maximum}, got {value}"
            )
        return value

    def draw_values(self) -> tuple[Any, ...]:
        """The values tests draw from, mildest first (empty: a number range, or not drawn)."""
        if self.options:
            return self.options
        if self.choices:
            return self.choices
        if self.kind is bool:
            return (bool(self.default), not self.default)
        return ()

    def draw_range(self) -> tuple[float, float] | None:
        """``(mildest, harshest)`` for a number drawn from a range; None if not a range."""
        if self.draw_values() or self.kind not in (int, float):
            return None
        if self.generate is not None:
            return self.generate
        first: float = self.minimum if self.minimum is not None else 0
        last = first + GENERIC_SPAN
        if self.maximum is not None:
            last = min(last, self.maximum)
        return (int(first), int(last)) if self.kind is int else (float(first), float(last))

    def mildest(self) -> Any:
        """The value shrinking ends at; None: not drawn (the default stays)."""
        values = self.draw_values()
        if values:
            return values[0]
        bounds = self.draw_range()
        if bounds is None:
            return None
        return int(bounds[0]) if self.kind is int else float(bounds[0])


class ToxicContext:
    """Per (toxic, link) state: the seeded RNG, the journal, timers and interrupts."""

    def __init__(
        self,
        *,
        rng: random.Random,
        record: Callable[..., None],
        close: Callable[[], None],
        reset: Callable[[], None],
        direction: str,
        link_kind: str,
        loop: asyncio.AbstractEventLoop,
        reply: Callable[[bytes], None] | None = None,
        protocol: str | None = None,
        framing: str | None = None,
        opened_at: float | None = None,
        shared: dict[str, Any] | None = None,
        detached: set[asyncio.Task[Any]] | None = None,
        reply_edits: Callable[[], int] | None = None,
        h2: Any = None,
    ) -> None:
        self.rng = rng
        self.h2 = h2
        """The connection's HTTP/2 relay on a proxy with ``h2`` framing
        (:class:`faultlab.proxy.h2relay.H2Relay`), else ``None``."""
        self._record = record
        self.close_connection = close
        """Tear the whole connection down (both directions), as a toxic closing its stub."""
        self.reset_connection = reset
        """Close with RST (SO_LINGER 0): peers see ECONNRESET."""
        self.direction = direction
        self.link_kind = link_kind
        self.loop = loop
        self._reply = reply
        self.protocol = protocol
        """The proxy's RPC protocol name (``None``: not declared), for protocol-aware toxics."""
        self.framing = framing
        """This link's framing (``None`` on raw byte streams and on message transports)."""
        self.opened_at = monotonic() if opened_at is None else opened_at
        """When the connection was wired (:func:`faultlab._timers.monotonic`)."""
        self.shared: dict[str, Any] = {} if shared is None else shared
        """State shared by every link of one toxic on one proxy (survives updates)."""
        self.state: dict[str, Any] = {}
        self.held_bytes = 0
        """Bytes a toxic holds outside the link's queue (reorder's window, detached delays).

        Such a toxic keeps this under ``HOLD_LIMIT`` (waiting, or releasing early) so a
        link's memory stays bounded; the link reports it in its held bytes."""
        self.interrupted = asyncio.Event()
        self._sleepers: set[asyncio.Future[bool]] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self._detached: set[asyncio.Task[Any]] = set() if detached is None else detached
        self._reply_edits = reply_edits

    def record(self, decision: str, chunk: Chunk | None = None, **fields: Any) -> None:
        """Journal one fault decision (the link adds proxy, connection and toxic)."""
        if chunk is not None:
            fields.setdefault("frame_index", chunk.index)
            fields.setdefault("size", len(chunk.data))
        self._record(decision, **fields)

    def reply_edits(self) -> int:
        """How many replies of this connection wait for a :attr:`Chunk.reply_edit` (a toxic
        keeps this under its own bound before it sets one: memory per connection stays
        bounded). ``-1``: this link cannot edit replies (a toxic must not set one)."""
        return -1 if self._reply_edits is None else self._reply_edits()

    def now(self) -> float:
        """The clock chunks are stamped with: ``CLOCK_MONOTONIC`` in seconds, not the loop's
        (uvloop's counts whole milliseconds)."""
        return monotonic()

    def interrupt(self) -> None:
        """The toxic is being updated or removed: every sleep of this context ends now."""
        self.interrupted.set()
        for waiter in self._sleepers:
            if not waiter.done():
                waiter.set_result(False)

    def reply(self, payload: bytes) -> None:
        """Send one frame back to where this link's data comes from (the client, upstream).

        ``payload`` is a frame as toxics see them: the link's opposite direction
        frames it for the wire. Protocol-native error replies use this.
        """
        if self._reply is None:
            raise RuntimeError("this link cannot reply to its source")
        self._reply(payload)

    async def sleep(self, seconds: float) -> bool:
        """Sleep, unless interrupted (update/removal); True if the full time passed. It ends
        at its deadline, never before (:mod:`faultlab._timers`)."""
        if seconds <= 0:
            return True
        if self.interrupted.is_set():
            return False
        waiter: asyncio.Future[bool] = self.loop.create_future()
        abandon = wake_at(self.loop, monotonic() + seconds, waiter)
        self._sleepers.add(waiter)
        try:
            return await waiter
        finally:
            self._sleepers.discard(waiter)
            if waiter.cancelled() or not waiter.done() or not waiter.result():
                abandon()  # its timer still holds it

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run a timer or side task owned by this context (cancelled on removal)."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def detach(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` to its end even after this context's tasks are cancelled.

        Why: frames a toxic holds must still leave when it is removed, and the link
        cancels the context's own tasks right after ``stop``. The link owns these
        tasks instead, and cancels them when its connection closes.
        """
        task = self.loop.create_task(coro)
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    def cancel_tasks(self) -> None:
        for task in list(self.tasks):
            task.cancel()


class Toxic:
    """Configuration of one toxic type; subclasses register by ``type_name``.

    A toxic module is self-describing: ``attributes_spec`` declares each
    attribute (type, default, legal range, how tests draw it), ``mildest()``
    and ``fix()`` say what :mod:`faultlab.strategies` needs beyond that, and
    the ``/faultlab/toxics`` catalogue is built from the same declarations,
    so adding a toxic is one new module.
    """

    type_name: ClassVar[str]
    attributes_spec: ClassVar[dict[str, Attr]] = {}
    needs_frames: ClassVar[bool] = False
    """True if it can only act on whole frames (drop, reorder...)."""
    h2_aware: ClassVar[bool] = False
    """True if it acts on HTTP/2 as HTTP/2 (a call, a stream) on a proxy with ``h2`` framing;
    a frame toxic that is not would break the connection there and is refused."""
    needs_tls_intercept: ClassVar[bool] = False
    """True if it acts on the TLS handshake of a proxy that intercepts TLS (``tls_cert``)."""
    description: ClassVar[str] = ""
    closes_on_remove: ClassVar[bool] = False
    """Removing it tears live connections down (Toxiproxy's timeout: data was dropped)."""
    drawn_by_default: ClassVar[bool] = True
    """False for a toxic that injects no fault (noop): strategies draw it only when named."""
    ignores_unknown_attributes: ClassVar[bool] = False
    """Toxiproxy's eight set this: Go's decoder ignores unknown keys and clients send extras.

    Every other toxic refuses an unknown attribute name (a 400 naming the known
    ones): a misspelt attribute would otherwise keep its default silently."""

    def __init__(self, **attributes: Any) -> None:
        self.attributes: dict[str, Any] = {k: a.default for k, a in self.attributes_spec.items()}
        self.update(attributes)

    def update(self, attributes: dict[str, Any]) -> None:
        """Merge attributes field by field (Toxiproxy decodes into the live struct)."""
        merged = dict(self.attributes)
        lowered = {k.lower(): k for k in self.attributes_spec}
        for key, value in attributes.items():
            name = lowered.get(key.lower())
            if name is None:
                if self.ignores_unknown_attributes:
                    continue  # unknown keys are ignored, as Go's decoder does
                known = ", ".join(self.attributes_spec) or "none (it takes no attributes)"
                raise InvalidToxic(f"{self.type_name}: unknown attribute {key!r}; known: {known}")
            merged[name] = self.attributes_spec[name].check(self.type_name, name, value)
        self.validate(merged)
        self.attributes = merged

    def validate(self, attributes: dict[str, Any]) -> None:
        """Cross-attribute checks; raise :class:`InvalidToxic`."""

    @classmethod
    def mildest(cls) -> dict[str, Any]:
        """The setting shrinking ends at: each drawn attribute's mildest value, then ``fix``.

        Attributes that are not drawn (free-form strings) are left out: they
        keep their defaults. Override when the mildest is not attribute-wise.
        """
        values = {name: attr.mildest() for name, attr in cls.attributes_spec.items()}
        return cls.fix({name: value for name, value in values.items() if value is not None})

    @classmethod
    def fix(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        """Bring independently drawn attributes into a combination ``validate`` accepts.

        Why: strategies draw each attribute on its own; a rule between two
        (slicer's size_variation < average_size) is restored here, monotone
        in the drawn values so shrinking still moves toward the mildest.
        ``attributes`` may be changed in place; return it.
        """
        return attributes

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        """Why this toxic cannot act on such a proxy (a clear refusal), or ``None``.

        Called when the toxic is added or updated; ``needs_frames`` is checked
        before, by the proxy. ``framing`` is the proxy's framing, ``protocol``
        its declared RPC protocol, ``message_based`` whether a side of the proxy
        is a message transport (then each message is one frame).
        """
        return None

    def __getattr__(self, name: str) -> Any:
        attrs = self.__dict__.get("attributes")
        if attrs is not None and name in attrs:
            return attrs[name]
        raise AttributeError(name)

    # lifecycle, per link
    def start(self, ctx: ToxicContext) -> None:
        """Called when the toxic becomes active on a link (timers go in ``ctx.spawn``)."""

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        await emit(chunk)

    def passes_everything(self) -> bool:
        """True if, with these attributes, this toxic hands every chunk and the EOF on
        unchanged and at once, and journals nothing per chunk (noop, a 0 ms latency).

        Why: the link leaves such a stage out of the data path, so a placeholder toxic (a
        latency of 0, raised later) costs the fast path nothing. Its draw is journaled and
        its lifecycle hooks run as for any toxic; an update that makes it act re-checks.
        """
        return False

    async def on_eof(self, ctx: ToxicContext) -> None:
        """The source reached EOF; return when the EOF may travel on (slow_close waits)."""

    def stop(self, ctx: ToxicContext) -> None:
        """Removed or replaced on a live link."""


BUILTIN_TOXICS = (
    "noop",
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "drop",
    "loss",
    "duplicate",
    "reorder",
    "corrupt",
    "delay",
    "partition",
    "slow_open",
    "fail_first",
    "rpc_error",
    "http_error",
    "version_skew",
    "auth_error",
    "rst_stream",
    "goaway",
    "flow_stall",
    "stream_latency",
    "grpc_message",
    "tls_cert",
)
"""The toxics that ship with faultlab, Toxiproxy's eight first."""
_registry: Registry[type[Toxic]] = Registry(
    "toxic",
    "faultlab.toxics",
    [f"faultlab.toxics.{name}" for name in BUILTIN_TOXICS],
    missing=lambda _name: InvalidToxic("invalid toxic type"),  # Toxiproxy's exact message
    adopt=lambda ep: register_toxic(ep.load()),
)


def register_toxic(cls: type[Toxic]) -> type[Toxic]:
    return _registry.register(cls.type_name, cls)


def get_toxic_class(type_name: str) -> type[Toxic]:
    return _registry.get(type_name)


def toxic_types() -> list[str]:
    return sorted(_registry.names())
