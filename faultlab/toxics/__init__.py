"""Toxics, one per module, registered by type name (Toxiproxy's eight and faultlab's own)."""

from __future__ import annotations

from faultlab.toxics.base import (
    Attr,
    Chunk,
    Emit,
    InvalidToxic,
    Toxic,
    ToxicContext,
    get_toxic_class,
    register_toxic,
    toxic_types,
)

__all__ = [
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
