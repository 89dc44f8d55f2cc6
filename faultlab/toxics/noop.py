"""``noop``: passes everything through (Toxiproxy's hidden chain head, addable too)."""

from __future__ import annotations

from faultlab.toxics.base import Toxic, register_toxic

__all__ = ["Noop"]


@register_toxic
class Noop(Toxic):
    type_name = "noop"
    description = "pass-through"
    drawn_by_default = False  # no fault to find: generated tests leave it out
    ignores_unknown_attributes = True  # Toxiproxy's toxic: its clients send extra keys

    def passes_everything(self) -> bool:
        return True
