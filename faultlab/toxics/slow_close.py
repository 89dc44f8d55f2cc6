"""``slow_close``: let data through, but hold the EOF for ``delay`` ms.

Why: clients that wait for the server's close (HTTP/1.0 bodies, ``recv`` until
EOF) see a slow teardown while every byte still arrives on time. As
Toxiproxy, only the close is delayed; an update or removal during the wait
lets the EOF through at once. faultlab keeps half-close: the delayed EOF is a
``shutdown(SHUT_WR)``, not a full close. Any Go int64 is accepted, as
Toxiproxy accepts it: a negative delay closes at once (Go's timer fires at
once); a delay past Go's Duration range (~292 years, where Toxiproxy's wraps
around) waits until the toxic is updated or removed.
"""

from __future__ import annotations

from faultlab.toxics._common import INT64_MAX, INT64_MIN
from faultlab.toxics.base import Attr, Toxic, ToxicContext, register_toxic

__all__ = ["SlowClose"]


@register_toxic
class SlowClose(Toxic):
    type_name = "slow_close"
    description = "delay the EOF by delay ms (data passes unchanged)"
    ignores_unknown_attributes = True  # Toxiproxy's toxic: its clients send extra keys
    attributes_spec = {
        "delay": Attr(
            int, 0, INT64_MIN, INT64_MAX, "milliseconds; 0 or less: no delay", generate=(0, 300)
        ),
    }

    async def on_eof(self, ctx: ToxicContext) -> None:
        delay: int = self.attributes["delay"]
        started = ctx.now()
        completed = await ctx.sleep(delay / 1000)
        ctx.record(
            "delay_close",
            delay_ms=delay,
            waited_ms=round((ctx.now() - started) * 1000, 3),
            interrupted=not completed,
        )
