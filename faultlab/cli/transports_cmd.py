"""``faultlab transports``: which IPC mechanisms work here, and what each promises."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from faultlab import transports

__all__ = ["add_parser", "describe"]


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "transports",
        help="list transports available on this machine with their capabilities",
        description="List every registered transport, whether it runs here, and its "
        "declared capabilities.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run)


def _size(n: int | None) -> str:
    if n is None:
        return "unbounded"
    for unit, step in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= step and n % step == 0:
            return f"{n // step} {unit}"
    return f"{n} B"


def describe() -> list[dict[str, Any]]:
    rows = []
    for t in transports.all_transports():
        caps = t.capabilities
        reason = t.unavailable_reason()
        rows.append(
            {
                "scheme": t.scheme,
                "description": t.description,
                "available": reason is None,
                "unavailable_reason": reason,
                "kind": caps.kind,
                "max_message_size": caps.max_message_size,
                "native_max": caps.native_max,
                "ordered": caps.ordered,
                "reliable": caps.reliable,
                "cross_process": caps.cross_process,
                "multi_client": caps.multi_client,
                "detects_peer_death": caps.detects_peer_death,
                "half_close": caps.half_close,
                "mechanism": caps.mechanism,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    rows = describe()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="faultlab transports", title_justify="left")
    for col in (
        "scheme",
        "kind",
        "max message",
        "native unit",
        "ordered",
        "reliable",
        "cross-process",
        "multi-client",
        "peer death",
        "available",
    ):
        table.add_column(col)
    yes = {True: "[green]yes[/]", False: "[yellow]no[/]"}
    for r in rows:
        table.add_row(
            f"{r['scheme']}://",
            r["kind"],
            _size(r["max_message_size"]) if r["kind"] == "message" else "stream",
            _size(r["native_max"]) if r["native_max"] else "-",
            yes[r["ordered"]],
            yes[r["reliable"]],
            yes[r["cross_process"]],
            yes[r["multi_client"]],
            "detected" if r["detects_peer_death"] else "timeout only",
            "[green]yes[/]" if r["available"] else "[red]no[/] (see below)",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)
    for r in rows:
        if not r["available"]:
            console.print(f"{r['scheme']}://: {r['unavailable_reason']}", soft_wrap=True)
    return 0
