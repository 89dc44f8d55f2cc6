"""Typed errors shared by every layer.

Like h11, we say whose fault an error is: ``LocalProtocolError`` is our own
misuse, ``RemoteProtocolError`` is something the peer sent. Transport errors
follow anyio's names so users recognise them.
"""

from __future__ import annotations

__all__ = [
    "AddressError",
    "BrokenResourceError",
    "ClosedResourceError",
    "EndOfStream",
    "FaultlabError",
    "LocalProtocolError",
    "MessageTooLarge",
    "RemoteProtocolError",
    "TransportError",
    "TransportTimeout",
    "UnsafeRuntimeDir",
    "UnsupportedOperation",
    "UnsupportedTransport",
]


class FaultlabError(Exception):
    """Base of every error faultlab raises on purpose."""


class TransportError(FaultlabError):
    """Something went wrong moving bytes or messages."""


class EndOfStream(TransportError):
    """The peer closed its sending side; no more data will arrive."""


class BrokenResourceError(TransportError):
    """The peer vanished (reset, killed, pipe broken) while we used the stream."""


class ClosedResourceError(TransportError):
    """This side already closed the stream or listener and then used it."""


class TransportTimeout(TransportError, TimeoutError):
    """A blocking call did not complete within its timeout."""


class MessageTooLarge(TransportError, ValueError):
    """A message exceeds the transport's or the framing's declared maximum."""


class AddressError(TransportError, ValueError):
    """An address (URI) is malformed, unusable, or already taken."""


class UnsafeRuntimeDir(AddressError):
    """The runtime directory (or an entry faultlab keeps in it) is not private to us.

    Raised rather than written into: another user could read keys or swap files.
    """


class UnsupportedTransport(TransportError):
    """The scheme is unknown, or the mechanism does not exist on this platform."""


class UnsupportedOperation(TransportError):
    """The transport cannot express this operation (e.g. half-close over TLS)."""


class LocalProtocolError(FaultlabError):
    """We tried to send something the protocol forbids (our own misuse)."""


class RemoteProtocolError(FaultlabError):
    """The peer sent something the protocol forbids (malformed, oversize, ...)."""
