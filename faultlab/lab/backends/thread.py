"""The thread backend: the server runs in this process (fastest; no process faults)."""

from __future__ import annotations

import importlib
from typing import Any

from faultlab.journal import Journal
from faultlab.lab import events as ev
from faultlab.lab.backends.base import ServerHandle, ServerSpec, register_backend
from faultlab.rpc.base import Server, get_protocol
from faultlab.rpc.messages import Request, Response

__all__ = ["ThreadServer", "load_factory", "request_hook"]


def load_factory(ref: str) -> Any:
    module, _, name = ref.partition(":")
    if not name:
        raise ValueError(f"factory must be 'module:callable', got {ref!r}")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def request_hook(journal: Journal) -> Any:
    def on_request(request: Request, response: Response) -> None:
        key = request.meta.get("idempotency_key")
        if key is None and isinstance(request.params, dict):
            key = request.params.get("key")
        journal.record(
            ev.SERVER_REQUEST,
            method=request.method,
            request_id=request.id,
            idempotency_key=key,
            outcome="error" if response.error else "ok",
            error_kind=response.error.kind if response.error else None,
        )

    return on_request


def start_server(spec: ServerSpec, service: Any, journal: Journal) -> Server:
    """Serve ``service`` as the protocol serves (faultlab's RpcServer, grpcio, ...)."""
    return get_protocol(spec.protocol).serve(
        service,
        address=spec.address,
        framing=spec.framing,
        on_request=request_hook(journal),
        **spec.options,
    )


class ThreadServer(ServerHandle):
    def __init__(self, spec: ServerSpec, journal: Journal) -> None:
        factory = load_factory(spec.factory) if isinstance(spec.factory, str) else spec.factory
        self.service = factory()
        self.server = start_server(spec, self.service, journal)
        self.address = self.server.address

    def close(self) -> None:
        self.server.close()


register_backend("thread", ThreadServer)
