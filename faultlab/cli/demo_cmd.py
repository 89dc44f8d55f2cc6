"""``faultlab demo``: the bundled suites against the example services, every transport and
protocol, then the reports (journal.json, report.html, junit.xml) under ``reports/<run-id>/``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "demo",
        help="run the bundled suites on the example services over every transport; write reports/",
        description="Run faultlab's bundled resilience suites against the example calc service "
        "over every transport and protocol available here, then write a JSON journal, an HTML "
        "report and JUnit XML under reports/<run-id>/.",
    )
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="output folder")
    parser.add_argument("--seed", type=int, default=None, help="session seed (default: random)")
    parser.add_argument("--transports", default=None, help="comma-separated subset")
    parser.add_argument("--protocols", default=None, help="comma-separated subset")
    parser.add_argument("--backend", default="thread", help="thread (default) or subprocess")
    parser.add_argument("-k", dest="keyword", default=None, help="pytest -k expression")
    parser.add_argument("--quick", action="store_true", help="tcp and unix only, two protocols")
    parser.add_argument(
        "-n",
        "--workers",
        type=int,
        default=3,
        help="pytest-xdist workers (default 3: most tests wait on faults, not on the CPU)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import pytest

    from faultlab._seed import new_seed

    console = Console()
    seed = args.seed if args.seed is not None else new_seed()
    run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{seed}"
    folder = args.reports / run_id
    folder.mkdir(parents=True, exist_ok=True)
    transports = args.transports or ("tcp,unix" if args.quick else None)
    protocols = args.protocols or ("binrpc,jsonrpc" if args.quick else None)
    pytest_args = [
        "--pyargs",
        "faultlab.suites",
        "-p",
        "no:cacheprovider",
        "-q",
        f"--faultlab-seed={seed}",
        f"--faultlab-report={folder}",
        f"--faultlab-backend={args.backend}",
        f"--junitxml={folder / 'junit.xml'}",
        "-o",
        "junit_family=xunit1",
    ]
    if transports:
        pytest_args.append(f"--faultlab-transports={transports}")
    if protocols:
        pytest_args.append(f"--faultlab-protocols={protocols}")
    if args.keyword:
        pytest_args += ["-k", args.keyword]
    if args.workers > 1:
        import importlib.util

        if importlib.util.find_spec("xdist") is None:
            console.print("[yellow]pytest-xdist is not installed: running in one process[/]")
        else:
            pytest_args += ["-n", str(args.workers)]
    console.rule(f"faultlab demo  seed {seed}")
    console.print(f"running: pytest {' '.join(pytest_args)}")
    started = time.monotonic()
    code = int(pytest.main(pytest_args))
    elapsed = time.monotonic() - started
    html = _render(folder, console)
    latest = args.reports / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(run_id)
    except OSError:
        pass
    console.rule("faultlab demo done")
    console.print(f"suites finished in {elapsed:.0f} s with exit code {code}")
    console.print(f"journals: {', '.join(p.name for p in sorted(folder.glob('journal*.json')))}")
    if html is not None:
        console.print(f"report:  [bold]{html}[/]  (open it in a browser)")
    console.print(f"junit:   {folder / 'junit.xml'}")
    console.print(f"replay:  faultlab demo --seed {seed}")
    return code


def _render(folder: Path, console: Console) -> Path | None:
    journals = sorted(folder.glob("journal*.json"))
    if not journals:
        console.print("[yellow]no journal was written; nothing to render[/]")
        return None
    try:
        from faultlab.cli.report_cmd import render_files
    except ImportError:
        console.print("[yellow]report rendering is not available (install faultlab[report])[/]")
        return None
    out = folder / "report.html"
    try:
        render_files(journals, out)
    except ImportError as exc:
        console.print(f"[yellow]report not rendered: {exc}[/]")
        return None
    return out
