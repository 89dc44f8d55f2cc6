"""A proxy (or an asyncio echo server) in its own process, for ``faultlab bench proxy``.

``python -m faultlab.bench._proxy_peer proxy LISTEN UPSTREAM [--cpu N] [--toxic T]`` prints
``READY <listen>``; ``echo LISTEN`` runs an asyncio echo server that copes with
thousands of connections; ``http-echo LISTEN`` answers each HTTP/1.1 request with its
body; ``stall LISTEN`` accepts connections and never reads
(the hostile upstream of the stalled-links figure); ``grpc-echo LISTEN`` is a grpcio server
whose unary ``/bench.Echo/Unary`` and bidirectional ``/bench.Echo/Stream`` return what they
get; ``tls-echo LISTEN`` is the echo server behind TLS (the cached test CA's certificate);
``forward LISTEN UPSTREAM`` is a bare uvloop forwarder (the baseline a proxy is held to).
All exit when stdin closes. ``--protocol grpc`` makes the proxy read HTTP/2; ``--tls
intercept`` makes it end and reopen TLS (``--tls passthrough``: relay the records).
``--toxic latency:upstream:latency=100`` adds one toxic (type, stream, attributes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from faultlab.proxy.engine import ProxyEngine
from faultlab.proxy.proxy import to_uri


class _Echo(asyncio.Protocol):
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class _HttpEcho(asyncio.Protocol):
    """HTTP/1.1 keep-alive: each request's body comes back as a 200's body (no parser
    library: this is the baseline server, as cheap as an HTTP server can be)."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )


class _Forward(asyncio.Protocol):
    """One side of the bare forwarder: bytes in, written to the peer, with backpressure.

    The baseline the proxy's no-toxic path is held to: the least a Python (uvloop)
    proxy can do per chunk."""

    peer: _Forward | None = None
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.early: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.transport.write(data)
        else:  # before the upstream connected (one read at most: reading pauses)
            self.early.append(data)

    def eof_received(self) -> bool:
        if self.peer is not None and self.peer.transport.can_write_eof():
            self.peer.transport.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.transport.resume_reading()


async def _forwarder(listen: str, upstream: str) -> None:
    """A bare TCP/unix forwarder: accept, connect upstream, relay both ways."""
    from faultlab.transports import parse_address

    target = parse_address(to_uri(upstream))
    loop = asyncio.get_running_loop()

    def accepted() -> _Forward:
        client = _Forward()

        async def connect() -> None:
            client.transport.pause_reading()
            try:
                if target.scheme == "unix":
                    _, server = await loop.create_unix_connection(_Forward, target.path)
                else:
                    _, server = await loop.create_connection(
                        _Forward, target.host, target.port or 0
                    )
            except OSError:
                client.transport.close()
                return
            client.peer, server.peer = server, client
            for data in client.early:
                server.transport.write(data)
            client.early.clear()
            client.transport.resume_reading()

        loop.call_soon(lambda: loop.create_task(connect()))
        return client

    parsed = parse_address(to_uri(listen))
    if parsed.scheme == "unix":
        server = await loop.create_unix_server(accepted, parsed.path, backlog=2048)
        print(f"READY unix://{parsed.path}", flush=True)
    else:
        server = await loop.create_server(accepted, parsed.host, parsed.port, backlog=2048)
        host, port = server.sockets[0].getsockname()[:2]
        print(f"READY tcp://{host}:{port}", flush=True)
    await loop.run_in_executor(None, _wait_stdin)
    server.close()


def _run(main: Any) -> None:
    try:
        import uvloop

        uvloop.run(main)
    except ImportError:
        asyncio.run(main)


class _Stall(asyncio.Protocol):
    """Accept and never read: the kernel buffers fill, then the sender must wait."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop starts reading after connection_made returns: pause on the next turn.
        asyncio.get_running_loop().call_soon(transport.pause_reading)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        """At most one read before the pause takes effect."""


async def _echo(
    listen: str, protocol: type[asyncio.Protocol] = _Echo, *, tls: bool = False
) -> None:
    from faultlab.transports import parse_address

    parsed = parse_address(to_uri(listen))
    loop = asyncio.get_running_loop()
    if parsed.scheme == "unix":
        server = await loop.create_unix_server(protocol, parsed.path, backlog=2048)
        print(f"READY unix://{parsed.path}", flush=True)
    else:
        ssl_context = None
        if tls:
            import ssl

            from faultlab.transports.tls import test_ca_files

            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(str(test_ca_files()[1]))
        server = await loop.create_server(
            protocol, parsed.host, parsed.port, backlog=2048, ssl=ssl_context
        )
        host, port = server.sockets[0].getsockname()[:2]
        print(f"READY tcp://{host}:{port}", flush=True)
    await loop.run_in_executor(None, _wait_stdin)
    server.close()


def _grpc_echo(listen: str) -> None:
    """A plain grpcio server (raw bytes, no protobuf): the baseline gRPC peer."""
    from concurrent import futures

    import grpc  # type: ignore[import-untyped]

    class Echo(grpc.GenericRpcHandler):  # type: ignore[misc]
        def service(self, details: Any) -> Any:
            if details.method.endswith("/Stream"):
                return grpc.stream_stream_rpc_method_handler(lambda it, _ctx: iter(it))
            return grpc.unary_unary_rpc_method_handler(lambda request, _ctx: request)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((Echo(),))
    host, _, port = listen.removeprefix("tcp://").rpartition(":")
    bound = server.add_insecure_port(f"{host or '127.0.0.1'}:{port}")
    server.start()
    print(f"READY tcp://{host or '127.0.0.1'}:{bound}", flush=True)
    _wait_stdin()
    server.stop(grace=None)


def _wait_stdin() -> None:
    while os.read(0, 4096):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m faultlab.bench._proxy_peer")
    parser.add_argument(
        "mode",
        choices=["proxy", "echo", "http-echo", "stall", "grpc-echo", "tls-echo", "forward"],
    )
    parser.add_argument("listen")
    parser.add_argument("upstream", nargs="?")
    parser.add_argument("--cpu", type=int)
    parser.add_argument(
        "--no-journal-chunks", action="store_true", help="the default (kept for old scripts)"
    )
    parser.add_argument("--journal-chunks", action="store_true", help="journal every chunk")
    parser.add_argument("--framing", default=None, help="the proxy's framing (http: wire journal)")
    parser.add_argument("--protocol", default=None, help="the proxy's protocol (grpc: HTTP/2)")
    parser.add_argument("--toxic", action="append", default=[], help="TYPE:STREAM:k=v,...")
    parser.add_argument("--tls", default=None, help="the proxy's TLS mode: intercept, passthrough")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.mode == "grpc-echo":
        _grpc_echo(args.listen)
        return
    if args.mode in ("echo", "http-echo", "stall", "tls-echo"):
        kinds: dict[str, type[asyncio.Protocol]] = {
            "echo": _Echo,
            "http-echo": _HttpEcho,
            "stall": _Stall,
            "tls-echo": _Echo,
        }
        _run(_echo(args.listen, kinds[args.mode], tls=args.mode == "tls-echo"))
        return
    if args.mode == "forward":
        _run(_forwarder(args.listen, args.upstream))
        return
    with ProxyEngine(seed=0) as engine:
        handle = engine.create(
            "bench",
            listen=args.listen,
            upstream=args.upstream,
            record_chunks=args.journal_chunks,
            framing=args.framing,
            protocol=args.protocol,
            tls={"mode": args.tls} if args.tls else None,
        )
        for spec in args.toxic:
            type_name, stream, _, attrs = (spec + ":").split(":", 3)
            attributes: dict[str, Any] = {
                k: int(v) for k, v in (kv.split("=") for kv in attrs.strip(":").split(",") if kv)
            }
            handle.add_toxic(type_name, stream=stream or "downstream", **attributes)
        print(f"READY {handle.address}", flush=True)
        _wait_stdin()


if __name__ == "__main__":
    main()
