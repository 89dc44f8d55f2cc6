"""Values a codec (or an RPC protocol's codec) promises to carry unchanged.

The codec owns its domain (``Codec.domain()``): the strategy here only looks
it up by name, so a value drawn for a round-trip test is one the codec has
promised to round-trip, and anything it changes is a finding, not noise.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from faultlab.codecs import Codec, UnknownCodec, codec_names, get_codec

__all__ = ["PROTOCOL_CODECS", "codec_for", "values"]

PROTOCOL_CODECS = {
    "binrpc": "msgpack",
    "msgpackrpc": "msgpack",
    "jsonrpc": "json",
    "rest": "json",
    "xmlrpc": "xmlrpc",
}
"""The codec whose domain an RPC protocol's params and results travel in."""


def codec_for(codec: Codec | str) -> Codec:
    """A codec instance from an instance, a codec name, or an RPC protocol name."""
    if isinstance(codec, Codec):
        return codec
    if codec in PROTOCOL_CODECS and codec not in codec_names():
        return get_codec(PROTOCOL_CODECS[codec])
    try:
        return get_codec(codec)
    except UnknownCodec:
        known = ", ".join(sorted({*codec_names(), *PROTOCOL_CODECS}))
        raise UnknownCodec(f"no codec or protocol named {codec!r}; known: {known}") from None


def values(codec: Codec | str) -> st.SearchStrategy[Any]:
    """The codec's declared lossless domain (``values("json")``, ``values("binrpc")``)."""
    return codec_for(codec).domain()
