"""What a transport is: a URI scheme, declared capabilities, a listener and a connector."""

from __future__ import annotations

import asyncio
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

from faultlab.errors import AddressError, UnsupportedTransport
from faultlab.streams import AsyncListener, AsyncStream, ByteStream, Listener, MessageStream

__all__ = ["Capabilities", "ParsedAddress", "Transport", "parse_address"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a transport promises, declared rather than guessed.

    ``max_message_size`` is what one ``send`` may carry (``None``: unbounded
    byte stream); ``native_max`` is the mechanism's own unit (datagram,
    queue message, ring size) that faultlab fragments to when smaller.
    """

    kind: Literal["stream", "message"]
    max_message_size: int | None
    native_max: int | None
    ordered: bool
    reliable: bool
    cross_process: bool
    multi_client: bool
    detects_peer_death: bool
    half_close: bool
    mechanism: str

    @classmethod
    def byte_stream(cls, mechanism: str, *, half_close: bool = True) -> Capabilities:
        """An ordered, reliable, cross-process byte stream that notices a dead peer."""
        return cls("stream", None, None, True, True, True, True, True, half_close, mechanism)

    @classmethod
    def messages(
        cls,
        mechanism: str,
        *,
        max_message_size: int,
        native_max: int,
        reliable: bool = True,
        half_close: bool = True,
    ) -> Capabilities:
        """Whole messages across processes; an unreliable one is unordered and cannot
        tell a dead peer from a silent one."""
        return cls(
            "message",
            max_message_size,
            native_max,
            reliable,
            reliable,
            True,
            True,
            reliable,
            half_close,
            mechanism,
        )


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    """A transport URI split into parts; ``host`` keeps IPv6 without brackets."""

    scheme: str
    host: str
    port: int | None
    path: str
    options: dict[str, str]
    uri: str


def parse_address(uri: str) -> ParsedAddress:
    """Split ``scheme://host:port`` or ``scheme:///path`` or ``scheme://@abstract``."""
    if "://" not in uri:
        raise AddressError(f"not a transport URI (expected scheme://...): {uri!r}")
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError as exc:
        raise AddressError(f"bad port in {uri!r}: {exc}") from exc
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    netloc = parts.netloc
    host = parts.hostname or ""
    path = parts.path
    if netloc.startswith("@"):  # Linux abstract socket names: unix://@name
        host, path = "", "@" + netloc[1:] + path
    elif netloc and not host and parts.port is None:
        host = netloc
    return ParsedAddress(parts.scheme, host, port, path, options, uri)


class Transport(ABC):
    """One IPC mechanism. Subclasses register themselves by ``scheme``."""

    scheme: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    description: ClassVar[str]
    platforms: ClassVar[tuple[str, ...]] = ("linux",)

    def unavailable_reason(self) -> str | None:
        """Why this transport cannot run here, or ``None`` if it can."""
        if not any(sys.platform.startswith(p) for p in self.platforms):
            return f"{self.scheme}:// is not supported on platform {sys.platform!r}"
        return None

    def check_available(self) -> None:
        reason = self.unavailable_reason()
        if reason is not None:
            raise UnsupportedTransport(reason)

    @abstractmethod
    def listen(self, address: str, **options: Any) -> Listener[Any]:
        """Bind ``address`` and return a listener whose ``address`` is the real one."""

    @abstractmethod
    def connect(
        self, address: str, *, timeout: float | None = None, **options: Any
    ) -> ByteStream | MessageStream:
        """Connect to a listener at ``address``."""

    @abstractmethod
    def example_address(self, tag: str) -> str:
        """A fresh, unused address for tests and benchmarks (``tag`` keeps them apart)."""

    async def listen_async(self, address: str, **options: Any) -> AsyncListener:
        return AsyncListener(await asyncio.to_thread(lambda: self.listen(address, **options)))

    async def connect_async(
        self, address: str, *, timeout: float | None = None, **options: Any
    ) -> AsyncStream:
        stream = await asyncio.to_thread(lambda: self.connect(address, timeout=timeout, **options))
        return AsyncStream(stream)

    def _parse(self, address: str) -> ParsedAddress:
        parsed = parse_address(address)
        if parsed.scheme != self.scheme:
            raise AddressError(f"{self.scheme} transport cannot use address {address!r}")
        return parsed
