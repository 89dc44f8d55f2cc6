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
        help="run benchmarks: transports, rpc, proxy",
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
    tp.add_argument("--sizes", default="64,4096", help="comma-separated payload sizes in bytes")
    tp.add_argument(
        "--placement",
        choices=["same", "split", "free"],
        default="same",
        help="same: client and server on CPU 0; split: CPU 0 and 1; free: unpinned",
    )
    tp.add_argument("--bulk-mib", type=int, default=64, help="MiB echoed for throughput (0: skip)")
    tp.add_argument("--json", dest="json_path", type=Path, help="also write results as JSON")
    tp.set_defaults(run=run_transports)

    rp = which.add_parser(
        "rpc", help="calls/s and p50/p99 per protocol x transport; codec encode/decode costs"
    )
    rp.add_argument("--protocols", default=None, help="comma-separated (default: all)")
    rp.add_argument("--transports", default=None, help="comma-separated schemes (default: all)")
    rp.add_argument("-n", "--iterations", type=int, default=1000, help="timed calls per cell")
    rp.add_argument("--warmup", type=int, default=100, help="untimed calls first")
    rp.add_argument("--placement", choices=["same", "split", "free"], default="same")
    rp.add_argument("--json", dest="json_path", type=Path, help="also write results as JSON")
    rp.set_defaults(run=run_rpc)

    pp = which.add_parser(
        "proxy", help="latency and throughput the proxy adds, 1000 connections, API speed"
    )
    pp.add_argument("-n", "--iterations", type=int, default=5000, help="timed round trips")
    pp.add_argument("--warmup", type=int, default=500)
    pp.add_argument("--placement", choices=["same", "split", "free"], default="same")
    pp.add_argument("--bulk-mib", type=int, default=64)
    pp.add_argument("--connections", type=int, default=1000, help="concurrent connections")
    pp.add_argument(
        "--stalled-links",
        type=int,
        default=100,
        help="clients writing into an upstream that never reads: proxy RSS (0: skip)",
    )
    pp.add_argument("--json", dest="json_path", type=Path, help="also write results as JSON")
    pp.add_argument(
        "--versus",
        action="store_true",
        help="instead: faultlab proxy beside a real toxiproxy-server (FAULTLAB_TOXIPROXY_SERVER "
        "or on PATH) and a bare uvloop forwarder, in one run: added latency with and without "
        "a 0 ms latency toxic, bulk throughput (tcp, unix), RSS with 1000 connections",
    )
    pp.add_argument(
        "--blocks", type=int, default=10, help="--versus: interleaved measurement blocks"
    )
    pp.add_argument(
        "--instances",
        type=int,
        default=3,
        help="--versus: processes of each proxy (and forwarder) measured; each row shows the "
        "median process, so one process's luck does not decide a ratio",
    )
    pp.set_defaults(run=run_proxy)


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
    for col in (
        "transport",
        "size",
        "p50 µs",
        "p99 µs",
        "msgs/s",
        "raw p50",
        "raw p99",
        "ratio",
        "MB/s",
        "raw MB/s",
        "tp ratio",
    ):
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


def run_rpc(args: argparse.Namespace) -> int:
    from faultlab.bench.rpc import run_rpc_bench

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    calls = Table(
        title=f"faultlab bench rpc (placement={args.placement}, n={args.iterations})",
        title_justify="left",
    )
    for col in ("protocol", "transport", "p50 µs", "p99 µs", "calls/s"):
        calls.add_column(col, justify="left" if col in ("protocol", "transport") else "right")

    with console.status("measuring...") as status:

        def progress(row: dict[str, Any]) -> None:
            calls.add_row(
                row["protocol"],
                f"{row['transport']}://",
                _fmt(row["p50_us"]),
                _fmt(row["p99_us"]),
                _fmt(row["calls_per_s"], 0),
            )
            status.update(f"measured {row['protocol']} over {row['transport']}://")

        report = run_rpc_bench(
            args.protocols.split(",") if args.protocols else None,
            args.transports.split(",") if args.transports else None,
            iterations=args.iterations,
            warmup=args.warmup,
            placement=args.placement,
            on_result=progress,
        )
    console.print(calls)
    codecs = Table(title="codecs (same values; µs per value)", title_justify="left")
    for col in ("codec", "encode µs", "decode µs", "encode/s", "decode/s", "mean size", "lossless"):
        codecs.add_column(col, justify="left" if col == "codec" else "right")
    for row in report["codecs"]:
        if row.get("error"):
            codecs.add_row(row["codec"], f"[red]{row['error']}[/]", "", "", "", "", "")
            continue
        codecs.add_row(
            row["codec"],
            _fmt(row["encode_us_per_op"], 2),
            _fmt(row["decode_us_per_op"], 2),
            _fmt(row["encode_ops_per_s"], 0),
            _fmt(row["decode_ops_per_s"], 0),
            f"{row['mean_size_bytes']:.0f} B",
            "yes" if row["lossless"] else "[yellow]no[/]",
        )
    console.print(codecs)
    for cell, error in report["errors"].items():
        console.print(f"[red]{cell} failed:[/] {error}")
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps(report, indent=2))
        console.print(f"wrote {args.json_path}")
    return 1 if report["errors"] else 0


def run_proxy(args: argparse.Namespace) -> int:
    from faultlab.bench.proxy import run_proxy_bench

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    if args.versus:
        return _run_versus(args, console)
    with console.status("measuring...") as status:
        report = run_proxy_bench(
            iterations=args.iterations,
            warmup=args.warmup,
            placement=args.placement,
            bulk_mib=args.bulk_mib,
            connections=args.connections,
            stalled_links=args.stalled_links,
            on_step=lambda msg: status.update(msg),
        )
    table = Table(
        title=f"faultlab bench proxy (placement={args.placement})",
        title_justify="left",
        caption="goals: added p50 <= 50 µs; throughput >= 50 % of direct; "
        "100 stalled links < 500 MiB RSS",
    )
    for col in (
        "transport",
        "direct p50 µs",
        "proxied p50 µs",
        "added p50 µs",
        "added p99 µs",
        "direct MB/s",
        "proxied MB/s",
        "tp ratio",
    ):
        table.add_column(col, justify="left" if col == "transport" else "right")
    for scheme, lat in report["latency"].items():
        tp = report["throughput"][scheme]
        added = lat["added_p50_us"]
        table.add_row(
            f"{scheme}://",
            _fmt(lat["direct"]["p50_us"]),
            _fmt(lat["proxied"]["p50_us"]),
            f"[{'green' if added <= 50 else 'red'}]{added:.1f}[/]",
            _fmt(lat["added_p99_us"]),
            _fmt(tp["direct_mb_s"], 0),
            _fmt(tp["proxied_mb_s"], 0),
            _ratio(tp["ratio"], 0.5, higher_is_better=True),
        )
    console.print(table)
    conc = report["concurrency"]
    if conc:
        console.print(
            f"{conc['connections']} concurrent connections x {conc['rounds_each']} echoes: "
            f"errors {conc['errors']}, {conc['seconds']:.1f} s, proxy RSS "
            f"{conc['proxy_rss_kib_before'] / 1024:.1f} -> "
            f"{conc['proxy_rss_kib_after'] / 1024:.1f} MiB"
        )
    for label, stalled in report.get("stalled", {}).items():
        grown = (stalled["proxy_rss_kib_after"] - stalled["proxy_rss_kib_before"]) / 1024
        links = report["stalled_links"]
        console.print(
            f"{links} stalled links ({label}): proxy RSS "
            f"{stalled['proxy_rss_kib_before'] / 1024:.1f} -> "
            f"[{'green' if stalled['proxy_rss_kib_after'] < 500 * 1024 else 'red'}]"
            f"{stalled['proxy_rss_kib_after'] / 1024:.1f}[/] MiB "
            f"({grown / links:.2f} MiB per link; clients got "
            f"{stalled['sent_mib_per_link_max']:.1f} MiB in at most, kernel buffers included)"
        )
    http = report.get("http")
    if http:
        ratio = http["ratio"]
        colour = "green" if ratio is not None and ratio <= 1.5 else "red"
        console.print(
            f"HTTP/1.1 64 B POST, p50 µs: direct {http['direct']['p50_us']:.1f}, raw relay "
            f"{http['raw_relay']['p50_us']:.1f} (+{http['added_raw_p50_us']:.1f}), HTTP framing "
            f"+ wire journal {http['http_framing']['p50_us']:.1f} "
            f"(+{http['added_http_p50_us']:.1f}): [{colour}]{_fmt(ratio, 2)}x[/] the raw "
            "relay's added latency (goal <= 1.5x)"
        )
    grpc_figure = report.get("grpc")
    if grpc_figure:
        ratio = grpc_figure["ratio"]
        colour = "green" if ratio is not None and ratio <= 1.3 else "red"
        console.print(
            f"gRPC unary 64 B, p50 µs: direct {grpc_figure['direct']['p50_us']:.1f}, raw relay "
            f"{grpc_figure['raw_relay']['p50_us']:.1f} (+{grpc_figure['added_raw_p50_us']:.1f}), "
            f"HTTP/2-aware relay + wire journal {grpc_figure['h2_relay']['p50_us']:.1f} "
            f"(+{grpc_figure['added_h2_p50_us']:.1f}): [{colour}]{_fmt(ratio, 2)}x[/] the raw "
            "relay's added latency (goal <= 1.3x)"
        )
        sets = grpc_figure.get("per_set") or []
        if len(sets) > 1:
            each = ", ".join(f"{_fmt(s['ratio'], 2)}x" for s in sets)
            console.print(f"  (medians over {len(sets)} sets of server and relays: {each})")
        console.print(
            "gRPC bidi stream, 1 KiB messages/s: direct "
            f"{grpc_figure['direct']['stream_msgs_per_s']:.0f}, raw relay "
            f"{grpc_figure['raw_relay']['stream_msgs_per_s']:.0f} "
            f"({_fmt(grpc_figure['stream_ratio_raw'], 2)}x), HTTP/2-aware relay "
            f"{grpc_figure['h2_relay']['stream_msgs_per_s']:.0f} "
            f"({_fmt(grpc_figure['stream_ratio_h2'], 2)}x)"
        )
    tls_figure = report.get("tls")
    if tls_figure:
        console.print(
            f"TLS echo 64 B, p50 µs: direct {tls_figure['direct']['p50_us']:.1f}, passthrough "
            f"{tls_figure['passthrough']['p50_us']:.1f} "
            f"(+{tls_figure['added_passthrough_p50_us']:.1f}), interception "
            f"{tls_figure['intercept']['p50_us']:.1f} "
            f"(+{tls_figure['added_intercept_p50_us']:.1f}): {_fmt(tls_figure['ratio'], 2)}x "
            "passthrough's added latency (two TLS sessions in the proxy instead of none)"
        )
    api = report["api"]
    console.print(
        f"toxic add + remove (engine facade): p50 {api['engine_add_remove_p50_us']:.0f} µs"
    )
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps(report, indent=2))
        console.print(f"wrote {args.json_path}")
    return 1 if conc and conc["errors"] else 0


def _run_versus(args: argparse.Namespace, console: Console) -> int:
    from faultlab.bench.versus import run_versus

    with console.status("measuring...") as status:
        report = run_versus(
            iterations=max(args.iterations, 1000),
            warmup=args.warmup,
            blocks=args.blocks,
            instances=max(args.instances, 1),
            bulk_mib=max(args.bulk_mib, 1),
            connections=args.connections,
            placement=args.placement,
            on_step=lambda msg: status.update(msg),
        )
    table = Table(
        title=f"faultlab bench proxy --versus (placement={args.placement})",
        title_justify="left",
    )
    for col in ("path", "p50 µs", "p99 µs", "added p50 µs", "bulk MB/s", "bulk / direct"):
        table.add_column(col, justify="left" if col == "path" else "right")
    bulk = report["bulk_mb_s"]
    for name, figures in report["latency"].items():
        rate = bulk.get(name)
        table.add_row(
            name,
            _fmt(figures["p50_us"]),
            _fmt(figures["p99_us"]),
            _fmt(figures["added_p50_us"]),
            _fmt(rate, 0),
            _fmt(report["bulk_ratio"].get(name), 2),
        )
    console.print(table)
    unix = report["unix_bulk"]
    console.print(
        f"unix bulk: direct {unix['direct_mb_s']:.0f} MB/s, through faultlab "
        f"{unix['faultlab_mb_s']:.0f} MB/s ({unix['ratio']:.2f}x), through the bare forwarder "
        f"{unix['forwarder_mb_s']:.0f} MB/s ({unix['forwarder_ratio']:.2f}x)"
    )
    for name, rss in report["rss"].items():
        console.print(
            f"{name}: RSS {rss['rss_mb']:.1f} MB after the bulk transfers, with "
            f"{args.connections} open connections (errors {rss['errors']})"
        )
    if report["toxiproxy_missing"]:
        console.print(f"[yellow]toxiproxy rows left out[/]: {report['toxiproxy_missing']}")
    labels = {
        "toxic_over_plain": "0 ms latency toxic's added p50 / no toxic's",
        "faultlab_over_forwarder": "added p50 / the bare forwarder's",
        "unix_bulk_ratio": "unix bulk / direct",
        "rss_mb": "RSS MB",
    }
    for name, judged in report["goals"].items():
        colour = "green" if judged["met"] else "red"
        sign = ">=" if name == "unix_bulk_ratio" else "<="
        console.print(
            f"{labels[name]}: [{colour}]{judged['value']:.2f}[/] (goal {sign} {judged['goal']})"
        )
    if args.json_path:
        args.json_path.parent.mkdir(parents=True, exist_ok=True)
        args.json_path.write_text(json.dumps(report, indent=2))
        console.print(f"wrote {args.json_path}")
    errors = sum(rss["errors"] for rss in report["rss"].values())
    return 1 if errors else 0
