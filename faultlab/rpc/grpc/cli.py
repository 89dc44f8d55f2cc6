"""``python -m faultlab.rpc.grpc serve --proto v1 --address URI``: the calc example over
gRPC, printing ``READY <address>`` (for cross-process tests)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from faultlab._proc import serve_until_stopped
from faultlab.rpc.grpc.schema import load_schema
from faultlab.rpc.grpc.server import GrpcServer

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``serve``: run the calc example until SIGTERM or stdin closes."""
    parser = argparse.ArgumentParser(prog="python -m faultlab.rpc.grpc")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the calc example and print READY <address>")
    serve.add_argument("--proto", default="v1", help="v1, v2 or a *_pb2 module (default: v1)")
    serve.add_argument("--address", default="tcp://127.0.0.1:0", help="tcp://, unix:// or tls://")
    serve.add_argument(
        "--schema-version", type=int, default=None, help="calc object version (default: proto's)"
    )
    args = parser.parse_args(argv)
    from faultlab.examples.calc import Calc, CalcV2

    schema = load_schema(args.proto)
    version = args.schema_version or schema.version or 1
    obj = CalcV2() if version >= 2 else Calc()
    server = GrpcServer(obj, address=args.address, proto=schema)
    serve_until_stopped(server.address)
    server.close(grace=0.5)
    os._exit(0)  # handler threads still sleeping must not hold up exit
