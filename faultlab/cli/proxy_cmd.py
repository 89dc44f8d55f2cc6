"""``faultlab proxy``: a standalone fault proxy speaking Toxiproxy's HTTP API.

A drop-in for ``toxiproxy-server``: the same flags (also in Go's single-dash
spelling: ``-host``, ``-port``, ``-config``, ``-seed``, ``-proxy-metrics``,
``-runtime-metrics``), the same config file (a ``/populate`` body), ``LOG_LEVEL``
honoured. Unlike Toxiproxy, ``-seed``
works: it is printed at startup so a run's fault decisions can be replayed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

from rich.console import Console

__all__ = ["add_parser", "run"]

_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
JOURNAL_EVENTS = 10_000
"""The standalone server's journal bound (an in-process engine keeps 200,000)."""
_LEVELS = {"warning": "WARNING", "warn": "WARNING", "panic": "CRITICAL", "fatal": "CRITICAL"}


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "proxy",
        help="run the fault proxy with a Toxiproxy-compatible HTTP API",
        description="Run faultlab's fault proxy standalone. It speaks Toxiproxy's HTTP API "
        "(v2.12), so toxiproxy-cli and every Toxiproxy client work against it; faultlab's "
        "own toxics and endpoints are there too. Stops cleanly on SIGINT or SIGTERM.",
    )
    parser.add_argument(
        "--host", "-host", default="127.0.0.1", help="API listen host (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", "-port", type=int, default=8474, help="API port (default 8474; 0: any free)"
    )
    parser.add_argument(
        "--config",
        "-config",
        metavar="FILE",
        help="JSON file of proxies to create at startup (a /populate body); errors are "
        "logged and startup continues, as toxiproxy-server does",
    )
    parser.add_argument(
        "--seed", "-seed", type=int, help="seed for every random fault decision (replayable)"
    )
    parser.add_argument(
        "--proxy-metrics",
        "-proxy-metrics",
        nargs="?",
        const=True,
        default=False,
        type=_go_bool,
        metavar="BOOL",
        help="serve /metrics with Toxiproxy's byte counters (toxiproxy_proxy_*) and "
        "faultlab's own (faultlab_proxy_*); without either metrics flag /metrics is a 404",
    )
    parser.add_argument(
        "--runtime-metrics",
        "-runtime-metrics",
        nargs="?",
        const=True,
        default=False,
        type=_go_bool,
        metavar="BOOL",
        help="serve /metrics with the process's metrics (process_*, python_*)",
    )
    parser.add_argument(
        "--journal-events",
        type=_positive,
        default=JOURNAL_EVENTS,
        metavar="N",
        help=f"keep the newest N journal events (default {JOURNAL_EVENTS:,}; about 0.7 KB "
        "each): a server that runs for days holds bounded memory. Poll /faultlab/events "
        "with since=next to keep them all; its 'dropped' says how many fell off",
    )
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _go_bool(text: str) -> bool:
    """A boolean flag's value as Go's ``flag`` package reads ``-flag=value``."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def _configure_logging() -> None:
    level_name = os.environ.get("LOG_LEVEL", "info").lower()
    level = getattr(logging, _LEVELS.get(level_name, level_name.upper()), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run(args: argparse.Namespace) -> int:
    from faultlab.journal import Journal
    from faultlab.proxy.engine import ProxyEngine
    from faultlab.proxy.server import ApiServer

    _configure_logging()
    console = Console(highlight=False)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    engine = ProxyEngine(seed=args.seed, journal=Journal(max_events=args.journal_events))
    server = ApiServer(
        engine,
        host=args.host,
        port=args.port,
        proxy_metrics=args.proxy_metrics,
        runtime_metrics=args.runtime_metrics,
    )
    try:
        if args.config:
            server.load_config(args.config)
        try:
            server.start()
        except OSError as exc:
            console.print(
                f"[red]faultlab proxy: cannot listen on {args.host}:{args.port}[/]: {exc}"
            )
            return 1
        console.print(f"faultlab proxy: seed [bold]{engine.seed}[/]")
        console.print(f"faultlab proxy: Toxiproxy API at [bold]{server.url}[/]")
        console.file.flush()
        while not stop.wait(0.5):
            pass
        console.print("faultlab proxy: stopping")
        return 0
    finally:
        server.close()
        engine.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
