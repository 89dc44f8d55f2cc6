"""Feeding framers the way a transport would: arbitrary chunk boundaries."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from faultlab.codecs import FrameEvent, Framer

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""Modest budgets: CI is a shared 2-core box."""


@st.composite
def chunked(draw: st.DrawFn, data: bytes, max_chunks: int = 12) -> list[bytes]:
    """``data`` split at arbitrary points (possibly empty-free, possibly one byte each)."""
    cuts = draw(st.lists(st.integers(1, max(len(data) - 1, 1)), max_size=max_chunks, unique=True))
    points = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def feed_all(framer: Framer[Any], chunks: list[bytes], *, eof: bool = True) -> list[Any]:
    """Feed each chunk, collecting frames as they complete; then EOF."""
    frames: list[Any] = []
    for chunk in chunks:
        framer.receive_data(chunk)
        frames.extend(framer.frames())
    if eof:
        framer.receive_data(b"")
        frames.extend(framer.frames())
    return frames


def drain(framer: Framer[Any]) -> FrameEvent:
    """Take frames until the framer has none; return the event it stopped on."""
    while True:
        item = framer.next_frame()
        if isinstance(item, FrameEvent):
            return item
