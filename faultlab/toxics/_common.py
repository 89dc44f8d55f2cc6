"""Small pieces toxics share: a chain lock, detached flushes, match counting, Go's int64 range.

Why: reorder and delay (``keep_order=false``) emit from timer tasks as well
as from the link's processor, so the stages after them must never run twice
at once (a chain lock); and frames they hold must be flushed when the toxic
is removed, although the link cancels the context's own tasks right after
``stop`` (``ctx.detach``: a task the link owns, not the toxic context).
"""

from __future__ import annotations

import asyncio

from faultlab.toxics.base import InvalidToxic, ToxicContext

__all__ = ["INT64_MAX", "INT64_MIN", "SCOPES", "chain_lock", "check_choice", "count"]

SCOPES = ("connection", "proxy")
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
"""The range of Toxiproxy's integer attributes (Go ``int64``, and ``int`` on 64-bit): every
value in it is accepted, as Toxiproxy accepts it; the toxic gives each a safe meaning."""


def chain_lock(ctx: ToxicContext) -> asyncio.Lock:
    """One lock per (toxic, link), kept across updates with the context's state."""
    lock = ctx.state.get("chain_lock")
    if not isinstance(lock, asyncio.Lock):
        lock = ctx.state["chain_lock"] = asyncio.Lock()
    return lock


def count(ctx: ToxicContext, scope: str, key: str) -> int:
    """Increment and return a counter per link (``connection``) or per toxic (``proxy``)."""
    store = ctx.shared if scope == "proxy" else ctx.state
    value = int(store.get(key, 0)) + 1
    store[key] = value
    return value


def check_choice(toxic: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidToxic(f"{toxic}: attribute {name!r} must be one of {', '.join(choices)}")
