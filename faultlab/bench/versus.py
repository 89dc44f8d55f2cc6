"""``faultlab bench proxy --versus``: faultlab's proxy beside a real Toxiproxy and a bare
uvloop forwarder, in one run, on the same echo servers, driven through the same HTTP API.

Why side by side: a proxy's cost depends on the machine, the core it wakes on and the
echo server it shares that core with; only figures from one run, measured in interleaved
blocks, can be compared. And a process's own luck (where its memory landed) moves its
latency by a few per cent, so each proxy runs as ``instances`` processes and each row is
the median process. The rows (each goal is a ratio to a same-run baseline):

- added round trip of 64 B over TCP, p50 and p99: faultlab (``faultlab proxy``, as a
  Toxiproxy user runs it), Toxiproxy, the bare forwarder (goal: faultlab <= 1.0x the
  forwarder's added p50);
- the same with one 0 ms ``latency`` toxic (goal: <= 1.1x faultlab's no-toxic added p50),
  and with a ``limit_data`` toxic whose limit is never reached: a toxic that looks at every
  chunk and journals it (no goal; it shows what a working toxic costs on each side);
- bulk echo throughput as a fraction of direct, TCP for all three, unix for faultlab and
  the forwarder (goal: unix >= 0.6x direct; the forwarder shows what any user-space relay
  gets: on one CPU it does the peers' kernel copying a second time);
- proxy RSS after ``bulk_rounds`` bulk transfers and with ``connections`` open connections
  each carrying echo traffic (goal: <= 60 MB).

Toxiproxy is found as :mod:`faultlab.proxy.reference` finds it; without it its rows are
``None`` and the reason is given.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from faultlab._proc import ChildProcess
from faultlab.bench.proxy import _rss_kib, _spawn
from faultlab.bench.stats import header, pin
from faultlab.bench.transports import PLACEMENTS, _bulk
from faultlab.proxy.reference import (
    RealToxiproxy,
    find_toxiproxy,
    missing_reason,
)
from faultlab.proxy.remote import RemoteToxiproxy

__all__ = ["GOALS", "run_versus"]

GOALS = {
    "toxic_over_plain": 1.1,
    "faultlab_over_forwarder": 1.0,
    "unix_bulk_ratio": 0.6,
    "rss_mb": 60.0,
}
PAYLOAD = b"x" * 64


# ---- processes -----------------------------------------------------------------------


FAULTLAB_PROXY = [sys.executable, "-m", "faultlab", "proxy"]
"""``faultlab proxy`` as a Toxiproxy user runs it (it takes ``-host``/``-port`` as Go does)."""


# ---- measurements --------------------------------------------------------------------


def _connect(address: str) -> socket.socket:
    if address.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(address[len("unix://") :])
        return sock
    host, _, port = address.removeprefix("tcp://").rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0", "[::]") else host.strip("[]")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _round_trip(sock: socket.socket) -> Callable[[], None]:
    want = len(PAYLOAD)

    def once() -> None:
        sock.sendall(PAYLOAD)
        got = 0
        while got < want:
            chunk = sock.recv(want - got)
            if not chunk:
                raise ConnectionError("the echo connection closed")
            got += len(chunk)

    return once


def _interleaved(
    targets: dict[str, str], iterations: int, warmup: int, blocks: int
) -> dict[str, dict[str, float]]:
    """p50/p99 of each target's round trips, measured in turns so drift hits all alike."""
    samples: dict[str, list[int]] = {name: [] for name in targets}
    with ExitStack() as stack:
        trips = {}
        for name, address in targets.items():
            sock = stack.enter_context(_connect(address))
            trips[name] = _round_trip(sock)
            for _ in range(warmup):
                trips[name]()
        per_block = max(1, iterations // blocks)
        clock = time.perf_counter_ns
        for _ in range(blocks):
            for name, once in trips.items():
                out = samples[name]
                for _ in range(per_block):
                    t0 = clock()
                    once()
                    out.append(clock() - t0)
    figures = {}
    for name, values in samples.items():
        values.sort()
        figures[name] = {
            "p50_us": values[len(values) // 2] / 1000,
            "p99_us": values[min(len(values) - 1, int(len(values) * 0.99))] / 1000,
        }
    return figures


def _bulk_mb_s(address: str, total: int) -> float:
    """Echo ``total`` bytes in 64 KiB writes while reading them back: MB/s of payload."""
    with _connect(address) as sock:
        sock.settimeout(60)

        def receive(size: int) -> bytes:
            data = sock.recv(size)
            if not data:
                raise ConnectionError("the echo connection closed during the bulk transfer")
            return data

        return _bulk(sock.sendall, receive, total)


def _hold_connections(address: str, count: int) -> tuple[list[socket.socket], int]:
    """Open ``count`` connections and echo one message on each; they stay open."""
    socks: list[socket.socket] = []
    errors = 0
    for _ in range(count):
        try:
            socks.append(_connect(address))
        except OSError:
            errors += 1
    for sock in socks:
        try:
            sock.sendall(PAYLOAD)
        except OSError:
            errors += 1
    for sock in socks:
        try:
            got = 0
            while got < len(PAYLOAD):
                data = sock.recv(len(PAYLOAD) - got)
                if not data:
                    raise ConnectionError("closed")
                got += len(data)
        except OSError:
            errors += 1
    return socks, errors


# ---- the run -------------------------------------------------------------------------


def run_versus(
    *,
    iterations: int = 20_000,
    warmup: int = 1_000,
    blocks: int = 10,
    instances: int = 3,
    bulk_mib: int = 256,
    bulk_rounds: int = 3,
    connections: int = 1000,
    placement: str = "same",
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The comparison, as JSON-ready figures (see the module docstring). ``placement``:
    ``same`` pins the client, the proxies and the echo servers to CPU 0, ``split`` the
    client to CPU 0 and the rest to CPU 1, ``free`` pins nothing."""
    client_cpu, server_cpu = PLACEMENTS[placement]
    say = on_step or (lambda _msg: None)
    before = pin(client_cpu)
    results: dict[str, Any] = {"toxiproxy": None, "toxiproxy_missing": None}
    try:
        with ExitStack() as stack:
            echo = stack.enter_context(_owned(_spawn("echo", "tcp://127.0.0.1:0", cpu=server_cpu)))
            # the unix sockets' files: the processes that bind them are killed, not asked
            # to exit, so the run owns a directory for them and removes it at the end
            unix_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="faultlab-versus-"))
            unix_path = os.path.join(unix_dir, "echo.sock")
            unix_echo = stack.enter_context(
                _owned(_spawn("echo", f"unix://{unix_path}", cpu=server_cpu))
            )
            cpus = {server_cpu} if server_cpu is not None else None
            # Each peer runs as several processes: a process's own luck (where its memory
            # landed, which cache lines collide) moves its latency by a few per cent, as
            # much as the differences measured; the median instance takes that out.
            forwarders = [
                stack.enter_context(
                    _owned(_spawn("forward", "127.0.0.1:0", echo.address, cpu=server_cpu))
                )
                for _ in range(instances)
            ]
            servers: dict[str, list[tuple[RemoteToxiproxy, int]]] = {"faultlab": []}
            for _ in range(instances):
                ours = stack.enter_context(
                    RealToxiproxy(FAULTLAB_PROXY, extra_args=["-seed", "0"], cpus=cpus)
                )
                servers["faultlab"].append((RemoteToxiproxy(ours.url, timeout=10), ours.pid))
            if find_toxiproxy() is not None:
                servers["toxiproxy"] = []
                for _ in range(instances):
                    real = stack.enter_context(RealToxiproxy(cpus=cpus))
                    servers["toxiproxy"].append((RemoteToxiproxy(real.url, timeout=10), real.pid))
            else:
                results["toxiproxy_missing"] = missing_reason()
            upstream = echo.address.removeprefix("tcp://")
            rows: dict[str, list[str]] = {"direct": [echo.address]}
            rows["forwarder"] = [forwarder.address for forwarder in forwarders]
            for name, apis in servers.items():
                for api, _pid in apis:
                    plain = api.create("plain", listen="127.0.0.1:0", upstream=upstream)
                    toxic = api.create("toxic", listen="127.0.0.1:0", upstream=upstream)
                    toxic.add_toxic("latency", latency=0)
                    working = api.create("working", listen="127.0.0.1:0", upstream=upstream)
                    working.add_toxic("limit_data", bytes=1 << 62)
                    rows.setdefault(name, []).append(plain.listen)
                    rows.setdefault(f"{name}+latency", []).append(toxic.listen)
                    rows.setdefault(f"{name}+limit_data", []).append(working.listen)
            targets = {
                f"{row}#{i}": address
                for row, addresses in rows.items()
                for i, address in enumerate(addresses)
            }
            say(
                f"64 B round trips: {', '.join(rows)} ({instances} processes each, "
                f"interleaved, {blocks} blocks)"
            )
            measured = _interleaved(targets, iterations, warmup, blocks)
            latency = {row: _median_instance(measured, row, len(rows[row])) for row in rows}
            direct = latency["direct"]["p50_us"]
            for figures in latency.values():
                figures["added_p50_us"] = figures["p50_us"] - direct
            results["latency"] = latency
            results["latency_per_process"] = measured
            first = {row: addresses[0] for row, addresses in rows.items()}  # bulk and RSS
            say(f"bulk: {bulk_rounds} x {bulk_mib} MiB through each")
            bulk: dict[str, Any] = {}
            for name, address in (
                ("direct", echo.address),
                ("forwarder", first["forwarder"]),
                *((n, first[n]) for n in servers),
            ):
                rates = [_bulk_mb_s(address, bulk_mib << 20) for _ in range(bulk_rounds)]
                bulk[name] = max(rates)
            unix_proxy = servers["faultlab"][0][0].create(
                "unix", listen=f"unix://{unix_path}.proxy", upstream=unix_echo.address
            )
            unix_forwarder = stack.enter_context(
                _owned(
                    _spawn(
                        "forward", f"unix://{unix_path}.forward", unix_echo.address, cpu=server_cpu
                    )
                )
            )
            unix_direct = max(_bulk_mb_s(unix_echo.address, bulk_mib << 20) for _ in range(2))
            unix_proxied = max(_bulk_mb_s(unix_proxy.listen, bulk_mib << 20) for _ in range(2))
            unix_forwarded = max(
                _bulk_mb_s(unix_forwarder.address, bulk_mib << 20) for _ in range(2)
            )
            results["bulk_mb_s"] = bulk
            results["bulk_ratio"] = {
                name: rate / bulk["direct"] for name, rate in bulk.items() if name != "direct"
            }
            results["unix_bulk"] = {
                "direct_mb_s": unix_direct,
                "faultlab_mb_s": unix_proxied,
                "ratio": unix_proxied / unix_direct,
                "forwarder_mb_s": unix_forwarded,
                "forwarder_ratio": unix_forwarded / unix_direct,
            }
            say(f"{connections} open connections through each")
            rss: dict[str, Any] = {}
            for name, apis in servers.items():
                pid = apis[0][1]
                socks, errors = _hold_connections(first[name], connections)
                try:
                    rss[name] = {"rss_mb": _rss_kib(pid) * 1024 / 1e6, "errors": errors}
                finally:
                    for sock in socks:
                        sock.close()
            results["rss"] = rss
            if "toxiproxy" in servers:
                results["toxiproxy"] = True
    finally:
        os.sched_setaffinity(0, before)
    results["goals"] = _judge(results)
    return {**header("proxy-versus", placement, client_cpu, server_cpu, iterations), **results}


def _median_instance(
    measured: dict[str, dict[str, float]], row: str, count: int
) -> dict[str, float]:
    """A row's figures: the median over its processes of each one's p50 (and p99)."""
    per_process = [measured[f"{row}#{i}"] for i in range(count)]
    return {
        key: statistics.median(figures[key] for figures in per_process)
        for key in ("p50_us", "p99_us")
    }


@contextmanager
def _owned(child: ChildProcess) -> Iterator[ChildProcess]:
    try:
        yield child
    finally:
        child.close()


def _judge(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each goal: the measured ratio (or MB), the goal, and whether it is met."""
    latency = results["latency"]
    plain = latency["faultlab"]["added_p50_us"]
    measured = {
        "toxic_over_plain": latency["faultlab+latency"]["added_p50_us"] / plain,
        "faultlab_over_forwarder": plain / latency["forwarder"]["added_p50_us"],
        "unix_bulk_ratio": results["unix_bulk"]["ratio"],
        "rss_mb": results["rss"]["faultlab"]["rss_mb"],
    }
    judged = {}
    for name, value in measured.items():
        goal = GOALS[name]
        met = value >= goal if name == "unix_bulk_ratio" else value <= goal
        judged[name] = {"value": value, "goal": goal, "met": met}
    return judged
