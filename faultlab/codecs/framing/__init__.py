"""Sans-IO framings: byte stream in, whole frames out, and frames back to bytes.

Look one up by name (``get_framer("length-prefix", max_size=...)``) or use the
classes directly. Third parties add framings through the
``faultlab.framings`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faultlab._registry import Registry
from faultlab.codecs.errors import UnknownCodec
from faultlab.codecs.framing.base import (
    CLOSED,
    DEFAULT_MAX_FRAME,
    NEED_DATA,
    PAUSED,
    FrameEvent,
    Framer,
    ReceiveBuffer,
)
from faultlab.codecs.framing.datagram import DatagramFramer
from faultlab.codecs.framing.http import HttpFramer, HttpMessage
from faultlab.codecs.framing.http_split import HttpFrame, HttpSplitter
from faultlab.codecs.framing.lines import LinesFramer
from faultlab.codecs.framing.msgpack_stream import MsgpackStreamFramer
from faultlab.codecs.framing.prefixed import GrpcFramer, LengthPrefixFramer

__all__ = [
    "CLOSED",
    "DEFAULT_MAX_FRAME",
    "NEED_DATA",
    "PAUSED",
    "DatagramFramer",
    "FrameEvent",
    "Framer",
    "GrpcFramer",
    "HttpFrame",
    "HttpFramer",
    "HttpMessage",
    "HttpSplitter",
    "LengthPrefixFramer",
    "LinesFramer",
    "MsgpackStreamFramer",
    "ReceiveBuffer",
    "framer_names",
    "get_framer",
    "register_framer",
]

_framers: Registry[Callable[..., Framer[Any]]] = Registry(
    "framing",
    "faultlab.framings",
    builtins={
        "length-prefix": "faultlab.codecs.framing.prefixed:LengthPrefixFramer",
        "lines": "faultlab.codecs.framing.lines:LinesFramer",
        "msgpack-stream": "faultlab.codecs.framing.msgpack_stream:MsgpackStreamFramer",
        "grpc": "faultlab.codecs.framing.prefixed:GrpcFramer",
        "datagram": "faultlab.codecs.framing.datagram:DatagramFramer",
        "http": "faultlab.codecs.framing.http:HttpFramer",
        "h2": "faultlab.codecs.framing.h2:H2Splitter",
    },
    missing=lambda name: UnknownCodec(f"unknown framing {name!r}; known: {_framers.known()}"),
)


def register_framer(
    name: str, factory: Callable[..., Framer[Any]], *, replace: bool = False
) -> None:
    """Make ``get_framer(name, **options)`` call ``factory(**options)``."""
    _framers.register(name, factory, replace=replace)


def get_framer(name: str, **options: Any) -> Framer[Any]:
    """A new framer by name; each connection direction needs its own instance."""
    return _framers.build(name, **options)


def framer_names() -> list[str]:
    """Every registered framing name, built-in and from entry points."""
    return sorted(_framers.names())
