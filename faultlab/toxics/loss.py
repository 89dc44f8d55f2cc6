"""``loss``: netem's loss models; frames are lost, a byte stream is retransmitted, never cut.

Why beside ``drop``: netem's models (``loss random P [CORR]``, ``loss gemodel p [r [1-h
[1-k]]]``, ``loss state p13 [p31 [p32 [p23 [p14]]]]``) with its parameters, in percent,
and its defaults, so a ``tc`` recipe carries over (the maths: :mod:`faultlab.toxics._netem`).

On frames (a framing, or a message or datagram transport) a lost frame is dropped.
On a raw byte stream nothing is dropped: TCP would retransmit. A lost chunk (one read,
taken as one segment) and everything behind it wait a retransmission timeout, ``rto``
ms counted from its arrival (Linux's minimum RTO, 200 ms, by default); each
retransmission meets the model again, and while it is lost the timeout doubles, up to
``rto_max`` (Linux's 120 s). Fast retransmit is not modelled: every loss costs an RTO,
the case of small request/response exchanges. An update or removal forwards a waiting
chunk at once. Each decision is journaled with the model's state.
"""

from __future__ import annotations

from typing import Any

from faultlab.toxics._netem import FourState, GilbertElliott, RandomLoss
from faultlab.toxics.base import (
    Attr,
    Chunk,
    Emit,
    InvalidToxic,
    Toxic,
    ToxicContext,
    register_toxic,
)

__all__ = ["Loss"]

MODELS = ("random", "gemodel", "state")
UNSET = -1.0
"""A parameter left to netem's default (``r`` and ``p31``: 100 - the first parameter)."""
PARAMETERS: dict[str, tuple[str, ...]] = {
    "random": ("percent", "correlation"),
    "gemodel": ("p", "r", "loss_bad", "loss_good"),
    "state": ("p13", "p31", "p32", "p23", "p14"),
}
MAX_RTO_MS = 3_600_000
JOURNALED_STATES = 64
"""A retransmission journals the model's state at its first 64 lost tries (its count: all)."""


def _percent(
    default: float,
    help: str,
    *,
    unset: bool = False,
    mild: float | None = None,
    harsh: float = 20.0,
) -> Attr:
    """A netem percentage; ``unset``: -1 also means netem's default. Tests draw ``mild`` (the
    default if not given) to ``harsh``."""
    return Attr(
        float,
        default,
        UNSET if unset else 0.0,
        100.0,
        help,
        generate=(default if mild is None else mild, harsh),
        step=0.01,
    )


@register_toxic
class Loss(Toxic):
    type_name = "loss"
    description = (
        "netem's loss models (random, gemodel, state): frames lost, byte streams wait an RTO"
    )
    attributes_spec = {
        "model": Attr(str, "random", help="random | gemodel | state, as netem's", choices=MODELS),
        "percent": _percent(0.0, "random: chance each frame is lost, %"),
        "correlation": _percent(
            0.0, "random: % chance a frame shares the last one's fate", harsh=50.0
        ),
        "p": _percent(0.0, "gemodel: % good -> bad per frame"),
        "r": _percent(
            UNSET, "gemodel: % bad -> good (-1: netem's 100 - p)", unset=True, mild=100.0, harsh=5.0
        ),
        "loss_bad": _percent(100.0, "gemodel: 1-h, % lost in the bad state", harsh=100.0),
        "loss_good": _percent(0.0, "gemodel: 1-k, % lost in the good state", harsh=5.0),
        "p13": _percent(0.0, "state: % gap -> burst loss"),
        "p31": _percent(
            UNSET,
            "state: % burst loss -> gap (-1: netem's 100 - p13)",
            unset=True,
            mild=100.0,
            harsh=5.0,
        ),
        "p32": _percent(0.0, "state: % burst loss -> burst receive", harsh=30.0),
        "p23": _percent(100.0, "state: % burst receive -> burst loss", harsh=100.0),
        "p14": _percent(0.0, "state: % gap -> isolated loss", harsh=5.0),
        "rto": Attr(
            int,
            200,
            1,
            MAX_RTO_MS,
            "byte streams: first retransmission timeout, ms",
            generate=(200, 1000),
        ),
        "rto_max": Attr(
            int,
            120_000,
            1,
            MAX_RTO_MS,
            "byte streams: the doubling RTO's cap, ms",
            generate=(120_000, 120_000),
        ),
    }

    def validate(self, attributes: dict[str, Any]) -> None:
        model = attributes["model"]
        for other, names in PARAMETERS.items():
            if other == model:
                continue
            for name in names:
                if attributes[name] != self.attributes_spec[name].default:
                    raise InvalidToxic(
                        f"loss: attribute {name!r} belongs to model={other!r}, "
                        f"not model={model!r}; leave it at "
                        f"{self.attributes_spec[name].default:g}"
                    )
        if attributes["rto_max"] < attributes["rto"]:
            raise InvalidToxic(
                f"loss: attribute 'rto_max' ({attributes['rto_max']}) must be >= rto "
                f"({attributes['rto']})"
            )
        for name in ("r", "p31"):
            if attributes[name] != UNSET and attributes[name] < 0:
                raise InvalidToxic(
                    f"loss: attribute {name!r} must be -1 (netem's default) or 0..100, "
                    f"got {attributes[name]:g}"
                )
        p13 = attributes["p13"]
        p31 = 100.0 - p13 if attributes["p31"] == UNSET else attributes["p31"]
        if p13 + attributes["p14"] > 100.0:
            raise InvalidToxic(
                f"loss: p13 + p14 must be <= 100 (leaving state 1), got {p13 + attributes['p14']:g}"
            )
        if p31 + attributes["p32"] > 100.0:
            raise InvalidToxic(
                f"loss: p31 + p32 must be <= 100 (leaving state 3), got {p31 + attributes['p32']:g}"
            )

    @classmethod
    def fix(cls, attributes: dict[str, Any]) -> dict[str, Any]:
        """Parameters of the other models back to their defaults; the state model's exits
        from states 1 and 3 brought under 100 %."""
        model = attributes.get("model", "random")
        for other, names in PARAMETERS.items():
            if other != model:
                for name in names:
                    if name in attributes:
                        attributes[name] = cls.attributes_spec[name].default
        for name in ("r", "p31"):  # between -1 (netem's default) and 0: not a percentage
            if UNSET < attributes.get(name, UNSET) < 0:
                attributes[name] = UNSET
        if attributes.get("p13", 0.0) + attributes.get("p14", 0.0) > 100.0:
            attributes["p14"] = 100.0 - attributes.get("p13", 0.0)
        p31 = attributes.get("p31", UNSET)
        if p31 == UNSET:
            p31 = 100.0 - attributes.get("p13", 0.0)
        if p31 + attributes.get("p32", 0.0) > 100.0:
            attributes["p32"] = 100.0 - p31
        if attributes.get("rto_max", 120_000) < attributes.get("rto", 200):
            attributes["rto_max"] = attributes.get("rto", 200)
        return attributes

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        if framing == "h2" and not message_based:
            return (
                "its frames are HTTP/2 frames, and losing one breaks the connection; "
                "use grpc_message (action=drop) to lose gRPC messages, or a proxy without framing "
                "(then a loss is a retransmission delay)"
            )
        return None

    def _model(self, ctx: ToxicContext) -> RandomLoss | GilbertElliott | FourState:
        """This link's model, rebuilt when the attributes change (an update)."""
        key = tuple(sorted(self.attributes.items()))
        held = ctx.state.get("loss_model")
        if held is not None and held[0] == key:
            model: RandomLoss | GilbertElliott | FourState = held[1]
            return model
        a = {
            k: v / 100.0 if isinstance(v, float) and v != UNSET else v
            for k, v in self.attributes.items()
        }

        def unset(name: str) -> float | None:
            return None if a[name] == UNSET else float(a[name])

        if a["model"] == "gemodel":
            model = GilbertElliott(ctx.rng, a["p"], unset("r"), a["loss_bad"], a["loss_good"])
        elif a["model"] == "state":
            model = FourState(ctx.rng, a["p13"], unset("p31"), a["p32"], a["p23"], a["p14"])
        else:
            model = RandomLoss(ctx.rng, a["percent"], a["correlation"])
        ctx.state["loss_model"] = (key, model)
        return model

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        model = self._model(ctx)
        if ctx.link_kind == "frames":
            lost = model.lost()
            ctx.record(
                "loss" if lost else "pass", chunk, model=self.attributes["model"], state=model.met
            )
            if not lost:
                await emit(chunk)
            return
        await self._retransmit(ctx, chunk, emit, model)

    async def _retransmit(
        self,
        ctx: ToxicContext,
        chunk: Chunk,
        emit: Emit,
        model: RandomLoss | GilbertElliott | FourState,
    ) -> None:
        """Hold a lost chunk (and, by holding the link, all behind it) until a try gets through."""
        rto, cap = self.attributes["rto"], self.attributes["rto_max"]
        states: list[Any] = []
        losses = waited_ms = 0
        completed = True
        while True:
            if not model.lost():
                break
            losses += 1
            if len(states) < JOURNALED_STATES:
                states.append(model.met)
            waited_ms += rto
            wait = waited_ms / 1000 - (ctx.now() - chunk.t)
            if wait > 0 and not await ctx.sleep(wait):
                completed = False  # updated or removed: it goes now, after what it waited
                waited_ms = max(0, round((ctx.now() - chunk.t) * 1000))
                break
            rto = min(rto * 2, cap)
        if not losses:
            ctx.record("pass", chunk, model=self.attributes["model"], state=model.met)
        else:
            ctx.record(
                "retransmit",
                chunk,
                model=self.attributes["model"],
                losses=losses,
                delay_ms=waited_ms,
                states=states,
                interrupted=not completed,
            )
        chunk.t += waited_ms / 1000  # later stages count from the retransmission's arrival
        await emit(chunk)
