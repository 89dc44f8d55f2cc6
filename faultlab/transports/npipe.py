"""``npipe://name``: Windows named pipes.

They exist only on Windows; on any other platform this transport is listed
as unavailable and every use raises :class:`UnsupportedTransport` with that
reason, instead of pretending with a stub.
"""

from __future__ import annotations

from typing import Any, NoReturn

from faultlab.errors import UnsupportedTransport
from faultlab.transports import register
from faultlab.transports.base import Capabilities, Transport

__all__ = ["NamedPipeTransport"]


class NamedPipeTransport(Transport):
    scheme = "npipe"
    description = "Windows named pipe (Windows only)"
    capabilities = Capabilities.byte_stream("Windows named pipe", half_close=False)
    platforms = ("win32",)

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        return reason or "npipe:// is not implemented yet on Windows"

    def _refuse(self) -> NoReturn:
        raise UnsupportedTransport(self.unavailable_reason())

    def listen(self, address: str, **options: Any) -> NoReturn:
        self._refuse()

    def connect(self, address: str, *, timeout: float | None = None, **options: Any) -> NoReturn:
        self._refuse()

    def example_address(self, tag: str) -> str:
        return f"npipe://{tag}"


register(NamedPipeTransport())
