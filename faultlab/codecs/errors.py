"""Errors of the codecs layer, each saying whose fault it is (after h11).

``EncodeError`` and ``PayloadTooLarge`` are our own misuse (a value outside a
codec's lossless domain, a payload a framing cannot carry); ``DecodeError``,
``FrameTooLarge``, ``TruncatedFrame`` and ``MalformedFrame`` are what a peer
sent. Decoders and framers raise nothing else on arbitrary input.
"""

from __future__ import annotations

from faultlab.errors import (
    FaultlabError,
    LocalProtocolError,
    MessageTooLarge,
    RemoteProtocolError,
)

__all__ = [
    "CodecUnavailable",
    "DecodeError",
    "EncodeError",
    "FrameTooLarge",
    "MalformedFrame",
    "PayloadTooLarge",
    "TruncatedFrame",
    "UnknownCodec",
]


class EncodeError(LocalProtocolError, ValueError):
    """The value is outside the codec's lossless domain; encoding it would change it."""


class DecodeError(RemoteProtocolError, ValueError):
    """The bytes are not a valid encoding (or decode to a value outside the domain)."""


class FrameTooLarge(RemoteProtocolError, MessageTooLarge):
    """The peer announced or sent a frame above the configured maximum."""


class TruncatedFrame(RemoteProtocolError):
    """The stream ended in the middle of a frame: a partial frame is never a value."""


class MalformedFrame(RemoteProtocolError):
    """The bytes break the framing's grammar (bad flag, bad header, bad HTTP)."""


class PayloadTooLarge(LocalProtocolError, MessageTooLarge):
    """We asked a framing to send a payload above its maximum."""


class UnknownCodec(LocalProtocolError, LookupError):
    """No codec or framing is registered under that name."""


class CodecUnavailable(FaultlabError, ImportError):
    """The codec needs an optional dependency that is not installed."""
