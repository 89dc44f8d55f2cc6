"""Sans-IO codecs: serialization formats and framings, bytes in and values out.

Nothing here touches a socket (after h11), so transports, the RPC layer and
the proxy's frame-aware toxics all reuse it, and Hypothesis tests it over
each codec's declared lossless domain. protobuf is imported only when a
protobuf codec is built.
"""

from __future__ import annotations

from faultlab.codecs.base import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_SIZE,
    Codec,
    OutsideExample,
    ValueCodec,
    codec_names,
    get_codec,
    register_codec,
)
from faultlab.codecs.equality import explain_difference, same
from faultlab.codecs.errors import (
    CodecUnavailable,
    DecodeError,
    EncodeError,
    FrameTooLarge,
    MalformedFrame,
    PayloadTooLarge,
    TruncatedFrame,
    UnknownCodec,
)
from faultlab.codecs.framing import (
    CLOSED,
    DEFAULT_MAX_FRAME,
    NEED_DATA,
    PAUSED,
    DatagramFramer,
    FrameEvent,
    Framer,
    GrpcFramer,
    HttpFramer,
    HttpMessage,
    LengthPrefixFramer,
    LinesFramer,
    MsgpackStreamFramer,
    framer_names,
    get_framer,
    register_framer,
)
from faultlab.codecs.json import JsonCodec
from faultlab.codecs.msgpack import MsgpackCodec
from faultlab.codecs.protobuf import ProtobufCodec, StructCodec
from faultlab.codecs.xml import XmlRpcCodec

__all__ = [
    "CLOSED",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_FRAME",
    "DEFAULT_MAX_SIZE",
    "NEED_DATA",
    "PAUSED",
    "Codec",
    "CodecUnavailable",
    "DatagramFramer",
    "DecodeError",
    "EncodeError",
    "FrameEvent",
    "FrameTooLarge",
    "Framer",
    "GrpcFramer",
    "HttpFramer",
    "HttpMessage",
    "JsonCodec",
    "LengthPrefixFramer",
    "LinesFramer",
    "MalformedFrame",
    "MsgpackCodec",
    "MsgpackStreamFramer",
    "OutsideExample",
    "PayloadTooLarge",
    "ProtobufCodec",
    "StructCodec",
    "TruncatedFrame",
    "UnknownCodec",
    "ValueCodec",
    "XmlRpcCodec",
    "codec_names",
    "explain_difference",
    "framer_names",
    "get_codec",
    "get_framer",
    "register_codec",
    "register_framer",
    "same",
]
