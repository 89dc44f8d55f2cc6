"""``faultlab bench``: benchmarks that report ratios against a same-run baseline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "bench",
        help="run benchmarks (transports)",
        description="Benchmarks. Each figure is measured beside a raw baseline in the same "
        "run and reported as a ratio; processes are pinned (see --placement).",
    )
    which = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    tp = which.add_parser(
        "transports",
        help="ping-pong round trip and bulk throughput per transport vs raw Python",
    )
    tp.add_argument("schemes", nargs="*", help="transports to measure (default: all available)")
    tp.add_argument("-n", "--iterations", type=int, default=5000, help="timed round trips")
    tp.add_argument("--warmup", type=int, default=500, help="untimed round trips first")
    tp.add_argument(
        "--sizes", default="64,4096", help="comma-separated payload sizes in bytes"
    )
    tp.add_argument(
        "--placement",
        choices=["same", "split", "free"],
        default="same",
        help="same: client and server on CPU 0; split: CPU 0 and 1; free: unpinned",
    )
    tp.add_argument("--bulk-mib", type=int, default=64, help="MiB echoed for throughput (0: skip)")
    tp.add_argument("--json", dest="json_path", type=Path, help="also write results as JSON")
    tp.set_defaults(run=run_transports)


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _ratio(x: float | None, goal: float, higher_is_better: bool = False) -> str:
    if x is None:
        return "-"
    ok = x >= goal if higher_is_better else x <= goal
    return f"[{'green' if ok else 'red'}]{x:.2f}x[/]"


def run_transports(args: argparse.Namespace) -> int:
    from faultlab.bench.transports import TransportResult, run_transport_bench

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    table = Table(
        title=f"faultlab bench transports (placement={args.placement}, n={args.iterations})",
        title_justify="left",
        caption="ratio = faultlab / raw (goal <= 1.5x); throughput ratio goal >= 0.67x",
    )
    for col in ("transport", "size", "p50 µs", "p99 µs", "msgs/s", "raw p50", "raw p99",
                "ratio", "MB/s", "raw MB/s", "tp ratio"):
        table.add_column(col, justify="right" if col not in ("transport",) else "left")

    def add(r: TransportResult) -> None:
        table.add_row(
            f"{r.scheme}://",
            f"{r.size} B",
            _fmt(r.faultlab.median_us),
            _fmt(r.faultlab.p99_us),
            _fmt(r.faultlab.msgs_per_s, 0),
            _fmt(r.raw.median_us if r.raw else None),
            _fmt(r.raw.p99_us if r.raw else None),
            _ratio(r.ratio, 1.5),
            _fmt(r.throughput_mb_s, 0),
            _fmt(r.raw_throughput_mb_s, 0),
            _ratio(r.throughput_ratio, 1 / 1.5, higher_is_better=True),
        )

    with console.status("measuring...") as status:

        def progress(r: TransportResult) -> None:
            add(r)
            status.update(f"measured {r.scheme}:// {r.size} B")

        report = run_transport_bench(
            args.schemes or None,
            sizes=sizes,
            iterations=args.iterations,
            warmup=args.warmup,
            placement=args.placement,
            bulk_mib=args.bulk_mib,
            on_result=progress,
        )
    console.print(table)
    errors: dict[str, str] = report["errors"]  # type: ignore[assignment]
    for scheme, error in errors.items():
        console.print(f"[red]{scheme}:// failed:[/] {error}")
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps(report, indent=2))
        console.print(f"wrote {args.json_path}")
    return 1 if errors else 0
