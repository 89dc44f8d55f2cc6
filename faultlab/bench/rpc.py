"""``faultlab bench rpc``: calls/s and latency per protocol x transport, plus codec costs.

Each server runs as an example-service subprocess; the client calls
``add(1, 2)`` in this process. Both are pinned as ``placement`` says. The codec
table comes from :func:`faultlab.codecs.bench.measure_codecs` on the same values
for every codec.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from faultlab import transports
from faultlab._proc import spawn_ready
from faultlab.bench.stats import header, pin
from faultlab.bench.transports import PLACEMENTS
from faultlab.rpc.base import get_protocol, protocol_names

__all__ = ["rpc_matrix", "run_rpc_bench"]


def rpc_matrix(
    protocols: Sequence[str] | None = None, schemes: Sequence[str] | None = None
) -> list[tuple[str, str]]:
    """Every (protocol, scheme) pair that can run here."""
    protocols = list(protocols or protocol_names())
    available = [t for t in transports.all_transports() if t.unavailable_reason() is None]
    pairs = []
    for protocol in protocols:
        proto = get_protocol(protocol)
        for transport in available:
            if schemes and transport.scheme not in schemes:
                continue
            if (
                proto.incompatibility(transport.scheme) is None
                and proto.unavailable_reason() is None
            ):
                pairs.append((protocol, transport.scheme))
    return pairs


def _client(protocol: str, address: str) -> Any:
    return get_protocol(protocol).connect(address, timeout=10)


def _measure(call: Callable[[], Any], iterations: int, warmup: int) -> dict[str, float]:
    import time

    for _ in range(warmup):
        call()
    samples = []
    clock = time.perf_counter_ns
    start = clock()
    for _ in range(iterations):
        t0 = clock()
        call()
        samples.append(clock() - t0)
    wall = (clock() - start) / 1e9
    samples.sort()
    return {
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000,
        "calls_per_s": iterations / wall,
    }


def run_rpc_bench(
    protocols: Sequence[str] | None = None,
    schemes: Sequence[str] | None = None,
    *,
    iterations: int = 1000,
    warmup: int = 100,
    placement: str = "same",
    codec_repeat: int = 200,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    client_cpu, server_cpu = PLACEMENTS[placement]
    before = pin(client_cpu)
    results: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    try:
        for protocol, scheme in rpc_matrix(protocols, schemes):
            address = transports.get(scheme).example_address("benchrpc")
            cmd = [
                sys.executable,
                "-m",
                "faultlab.examples.serve",
                "calc",
                "--protocol",
                protocol,
                "--transport",
                address,
                "--exit-with-stdin",
            ]
            if server_cpu is not None:
                cmd += ["--cpu", str(server_cpu)]
            try:
                server = spawn_ready(cmd, timeout=30)
                try:
                    client = _client(protocol, server.address)
                    try:
                        stats = _measure(partial(client.call, "add", 1, 2), iterations, warmup)
                        row = {"protocol": protocol, "transport": scheme, **stats}
                    finally:
                        client.close()
                finally:
                    server.close()
            except Exception as exc:  # one broken cell must not hide the others
                errors[f"{protocol}/{scheme}"] = f"{type(exc).__name__}: {exc}"
                continue
            results.append(row)
            if on_result:
                on_result(row)
    finally:
        os.sched_setaffinity(0, before)
    from faultlab.codecs.bench import measure_codecs

    codecs = [
        {k: v for k, v in row.items() if k != "sizes"}
        for row in measure_codecs(repeat=codec_repeat)
    ]
    return {
        **header("rpc", placement, client_cpu, server_cpu, iterations),
        "results": results,
        "codecs": codecs,
        "errors": errors,
    }
