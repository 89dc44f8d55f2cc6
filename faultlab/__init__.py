"""faultlab: resilience testing for RPC and IPC services."""

from __future__ import annotations

from faultlab import errors, transports
from faultlab.streams import ByteStream, Listener, MessageStream

__all__ = ["ByteStream", "Listener", "MessageStream", "__version__", "errors", "transports"]

__version__ = "0.1.0"
