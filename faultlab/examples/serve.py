"""Run an example service: ``python -m faultlab.examples.serve calc --protocol jsonrpc
--transport unix:///tmp/c.sock``. Prints ``READY <address>`` once it answers, then
serves until SIGTERM/SIGINT or until its stdin closes (with ``--exit-with-stdin``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from faultlab._proc import serve_until_stopped
from faultlab.examples.calc import Calc, CalcV2
from faultlab.examples.kv import KV
from faultlab.rpc.base import get_protocol

__all__ = ["SERVICES", "main", "make_service"]

SERVICES: dict[str, dict[int, type]] = {"calc": {1: Calc, 2: CalcV2}, "kv": {1: KV}}


def make_service(name: str, version: int = 1) -> Any:
    try:
        return SERVICES[name][version]()
    except KeyError:
        raise SystemExit(f"unknown service {name!r} version {version}") from None


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("service", choices=sorted(SERVICES), help="which example service")
    parser.add_argument(
        "--protocol",
        default="jsonrpc",
        help="jsonrpc, xmlrpc, msgpackrpc, binrpc, rest or grpc (default: jsonrpc)",
    )
    parser.add_argument(
        "--transport", default="tcp://127.0.0.1:0", help="address URI (default: tcp://127.0.0.1:0)"
    )
    parser.add_argument(
        "--framing", default=None, help="framing on byte streams (default: the protocol's)"
    )
    parser.add_argument("--schema-version", type=int, default=1, help="service schema version")
    parser.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin closes")
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m faultlab.examples.serve") -> int:
    args = _parser(prog).parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    service = make_service(args.service, args.schema_version)
    protocol = get_protocol(args.protocol)
    server = protocol.serve(
        service,
        address=args.transport,
        framing=args.framing,
        **protocol.version_options(args.schema_version),
    )
    try:
        serve_until_stopped(server.address, watch_stdin=args.exit_with_stdin)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
