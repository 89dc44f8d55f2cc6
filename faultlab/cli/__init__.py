"""The ``faultlab`` command: thin wiring over the library (one module per subcommand)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from faultlab import __version__
from faultlab.cli import bench, demo_cmd, proxy_cmd, report_cmd, transports_cmd

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faultlab",
        description="Resilience testing for RPC and IPC services.",
    )
    parser.add_argument("--version", action="version", version=f"faultlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    transports_cmd.add_parser(sub)
    bench.add_parser(sub)
    proxy_cmd.add_parser(sub)
    demo_cmd.add_parser(sub)
    report_cmd.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code
