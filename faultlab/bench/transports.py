"""``faultlab bench transports``: ping-pong and bulk throughput per transport vs raw Python.

For every transport, the echo peer runs in another process and both are
pinned as ``placement`` says (``same`` CPU by default: cross-CPU wake-ups on
a 2-core machine swing results between 14 and 50 µs). The raw baseline is the
same mechanism with bare syscalls (:mod:`faultlab.bench.raw`), measured in
the same run, and each figure is reported as a ratio to it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from faultlab import transports
from faultlab._proc import spawn_ready
from faultlab.bench import raw
from faultlab.bench.stats import LatencyStats, header, measure_round_trips, pin
from faultlab.streams import ByteStream, MessageStream, Stream, receive_exactly

__all__ = ["PLACEMENTS", "TransportResult", "run_transport_bench"]

PLACEMENTS = {"same": (0, 0), "split": (0, 1), "free": (None, None)}


@dataclass
class TransportResult:
    scheme: str
    size: int
    faultlab: LatencyStats
    raw: LatencyStats | None
    raw_mechanism: str
    ratio: float | None
    throughput_mb_s: float | None = None
    raw_throughput_mb_s: float | None = None
    throughput_ratio: float | None = None
    errors: list[str] = field(default_factory=list)


def _faultlab_round_trip(stream: Stream) -> Callable[[bytes], bytes]:
    if isinstance(stream, MessageStream):

        def rt_msg(payload: bytes) -> bytes:
            stream.send(payload)
            return stream.receive()

        return rt_msg
    assert isinstance(stream, ByteStream)

    def rt_bytes(payload: bytes) -> bytes:
        stream.send(payload)
        data = stream.receive(len(payload))
        if len(data) < len(payload):
            data += receive_exactly(stream, len(payload) - len(data))
        return data

    return rt_bytes


def _bulk(send: Callable[[bytes], None], recv: Callable[[int], bytes], total: int) -> float:
    """Echo ``total`` bytes in 64 KiB writes while reading back; MB/s of payload."""
    chunk = b"\xab" * 65536
    errors: list[BaseException] = []

    def sender() -> None:
        try:
            for _ in range(total // len(chunk)):
                send(chunk)
        except BaseException as exc:
            errors.append(exc)

    started = time.perf_counter()
    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    got = 0
    while got < total:
        got += len(recv(min(65536, total - got)))
    thread.join(60)
    if errors:
        raise errors[0]
    return total / (time.perf_counter() - started) / 1e6


def _peer_cmd(module: str, address: str, cpu: int | None, *mode: str) -> list[str]:
    cmd = [sys.executable, "-m", module, *mode, address]
    return cmd + (["--cpu", str(cpu)] if cpu is not None else [])


def _bench_one(
    scheme: str,
    sizes: Sequence[int],
    iterations: int,
    warmup: int,
    server_cpu: int | None,
    bulk_bytes: int,
) -> list[TransportResult]:
    transport = transports.get(scheme)
    address = transport.example_address("bench")
    stats: dict[int, LatencyStats] = {}
    raw_stats: dict[int, LatencyStats] = {}
    bulk: float | None = None
    raw_bulk: float | None = None
    peer = spawn_ready(_peer_cmd("faultlab.transports._peer", address, server_cpu, "echo"))
    try:
        with transport.connect(peer.address or address, timeout=10) as stream:
            rt = _faultlab_round_trip(stream)
            for size in sizes:
                stats[size] = measure_round_trips(rt, b"\x5a" * size, iterations, warmup)
            if isinstance(stream, ByteStream) and bulk_bytes:
                bulk = _bulk(stream.send, stream.receive, bulk_bytes)
    finally:
        peer.close()
    mechanism, _, _ = raw.BASELINES.get(scheme, ("", None, None))
    if mechanism:
        raw_address = transport.example_address("rawbench")
        server = spawn_ready(_peer_cmd("faultlab.bench.raw", raw_address, server_cpu))
        try:
            rt_raw, close = raw.client(server.address or raw_address)
            try:
                for size in sizes:
                    raw_stats[size] = measure_round_trips(
                        rt_raw, b"\x5a" * size, iterations, warmup
                    )
            finally:
                close()
            if transport.capabilities.kind == "stream" and bulk_bytes:
                raw_bulk = _raw_bulk(server.address or raw_address, bulk_bytes)
        finally:
            server.close()
            raw.cleanup(server.address or raw_address)
    results = []
    for size in sizes:
        base = raw_stats.get(size)
        results.append(
            TransportResult(
                scheme=scheme,
                size=size,
                faultlab=stats[size],
                raw=base,
                raw_mechanism=mechanism,
                ratio=stats[size].median_us / base.median_us if base else None,
                throughput_mb_s=bulk,
                raw_throughput_mb_s=raw_bulk,
                throughput_ratio=bulk / raw_bulk if bulk and raw_bulk else None,
            )
        )
    return results


def _raw_bulk(address: str, total: int) -> float | None:
    """Bulk echo through the raw baseline: a socket or FIFO pair with bare syscalls."""
    scheme = transports.parse_address(address).scheme
    if scheme in ("tcp", "tls", "unix"):
        sock, target = raw._sock_pair(address)
        sock.connect(target)  # type: ignore[arg-type]
        if scheme == "tls":
            ctx = raw._tls_contexts()[1]
            sock = ctx.wrap_socket(sock, server_hostname=transports.parse_address(address).host)
        try:
            return _bulk(sock.sendall, sock.recv, total)
        finally:
            sock.close()
    if scheme == "fifo":
        c2s, s2c = raw._fifo_names(address)
        wfd, rfd = os.open(c2s, os.O_WRONLY), os.open(s2c, os.O_RDONLY)

        def write_all(data: bytes) -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(wfd, view) :]

        try:
            return _bulk(write_all, lambda n: os.read(rfd, n), total)
        finally:
            os.close(wfd)
            os.close(rfd)
    return None


def run_transport_bench(
    schemes: Sequence[str] | None = None,
    *,
    sizes: Sequence[int] = (64, 4096),
    iterations: int = 5000,
    warmup: int = 500,
    placement: str = "same",
    bulk_mib: int = 64,
    on_result: Callable[[TransportResult], None] | None = None,
) -> dict[str, object]:
    """Run the benchmark; return a JSON-ready dict (machine, placement, results)."""
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {sorted(PLACEMENTS)}, got {placement!r}")
    client_cpu, server_cpu = PLACEMENTS[placement]
    if schemes is None:
        schemes = [t.scheme for t in transports.all_transports() if t.unavailable_reason() is None]
    before = pin(client_cpu)
    results: list[TransportResult] = []
    errors: dict[str, str] = {}
    try:
        for scheme in schemes:
            try:
                for result in _bench_one(
                    scheme, sizes, iterations, warmup, server_cpu, bulk_mib << 20
                ):
                    results.append(result)
                    if on_result:
                        on_result(result)
            except Exception as exc:  # one broken transport must not hide the others
                errors[scheme] = f"{type(exc).__name__}: {exc}"
    finally:
        os.sched_setaffinity(0, before)
    return {
        **header("transports", placement, client_cpu, server_cpu, iterations),
        "warmup": warmup,
        "results": [asdict(r) for r in results],
        "errors": errors,
    }
