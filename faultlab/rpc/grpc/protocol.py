"""gRPC as a registered protocol: what the lab, the proxy and the bench know of it.

grpcio owns the HTTP/2 connection and its sockets, so gRPC runs over ``tcp://``,
``unix://`` and ``tls://`` only, the proxy relays its bytes without reading frames,
and a server or client is grpcio's (:class:`GrpcServer`, :class:`GrpcClient`), imported
only when one is started: registering gRPC never needs grpcio.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from faultlab.rpc.base import Hook, Server, WireProtocol

__all__ = ["SCHEMES", "Grpc"]

SCHEMES = ("tcp", "unix", "tls")


class Grpc(WireProtocol):
    name = "grpc"
    framings = ()
    message_transports = False
    schemes = SCHEMES
    schemes_reason = "grpcio owns its sockets"
    content_type = "application/grpc"

    def unavailable_reason(self) -> str | None:
        for module in ("grpc", "google.protobuf"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install 'faultlab[grpc]')"
        return None

    def serve(
        self,
        service: object,
        *,
        address: str,
        framing: str | None = None,
        on_request: Hook | None = None,
        **options: Any,
    ) -> Server:
        """A :class:`GrpcServer` (``options``: ``proto``, ``other_versions``, ...); grpcio
        frames its own HTTP/2, so ``framing`` is ignored."""
        from faultlab.rpc.grpc.server import GrpcServer

        return GrpcServer(service, address=address, on_request=on_request, **options)

    def connect(
        self, address: str, *, framing: str | None = None, timeout: float = 10.0, **options: Any
    ) -> Any:
        from faultlab.rpc.grpc.client import GrpcClient

        return GrpcClient(address, timeout=timeout, **options)

    def version_options(self, version: int) -> dict[str, Any]:
        """Schema versions are proto packages: ``faultlab.calc.v2`` is ``proto="v2"``."""
        return {"proto": f"v{version}"}

    def frame_reason(self, framing: str | None, message_based: bool) -> str | None:
        if framing == "h2":
            return None
        return (
            'gRPC travels in HTTP/2: create the proxy with protocol="grpc" (it reads '
            "HTTP/2 then; over tls:// it can only relay encrypted bytes)"
        )
