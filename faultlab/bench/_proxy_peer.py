"""A proxy (or an asyncio echo server) in its own process, for ``faultlab bench proxy``.

``python -m faultlab.bench._proxy_peer proxy LISTEN UPSTREAM [--cpu N]`` prints
``READY <listen>``; ``echo LISTEN`` runs an asyncio echo server that copes with
thousands of connections. Both exit when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from faultlab.proxy.engine import ProxyEngine
from faultlab.proxy.proxy import to_uri


class _Echo(asyncio.Protocol):
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def _echo(listen: str) -> None:
    from faultlab.transports import parse_address

    parsed = parse_address(to_uri(listen))
    loop = asyncio.get_running_loop()
    if parsed.scheme == "unix":
        server = await loop.create_unix_server(_Echo, parsed.path, backlog=2048)
        print(f"READY unix://{parsed.path}", flush=True)
    else:
        server = await loop.create_server(_Echo, parsed.host, parsed.port, backlog=2048)
        host, port = server.sockets[0].getsockname()[:2]
        print(f"READY tcp://{host}:{port}", flush=True)
    await loop.run_in_executor(None, _wait_stdin)
    server.close()


def _wait_stdin() -> None:
    while os.read(0, 4096):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m faultlab.bench._proxy_peer")
    parser.add_argument("mode", choices=["proxy", "echo"])
    parser.add_argument("listen")
    parser.add_argument("upstream", nargs="?")
    parser.add_argument("--cpu", type=int)
    parser.add_argument("--no-journal-chunks", action="store_true")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.mode == "echo":
        try:
            import uvloop

            uvloop.run(_echo(args.listen))
        except ImportError:
            asyncio.run(_echo(args.listen))
        return
    with ProxyEngine(seed=0) as engine:
        handle = engine.create(
            "bench",
            listen=args.listen,
            upstream=args.upstream,
            record_chunks=not args.no_journal_chunks,
        )
        print(f"READY {handle.address}", flush=True)
        _wait_stdin()


if __name__ == "__main__":
    main()
