"""Latency statistics: median and p99, never a lone mean (placement makes results bimodal)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LatencyStats", "header", "machine_info", "measure_round_trips", "pin"]


@dataclass(frozen=True, slots=True)
class LatencyStats:
    median_us: float
    p99_us: float
    msgs_per_s: float
    samples: int
    sample_us: tuple[float, ...] = ()
    """Every round trip, sorted (for pooling blocks measured in turn)."""


def measure_round_trips(
    round_trip: Callable[[bytes], bytes], payload: bytes, iterations: int, warmup: int
) -> LatencyStats:
    """Time each round trip with ``perf_counter_ns``; check every echo."""
    for _ in range(warmup):
        if len(round_trip(payload)) != len(payload):
            raise AssertionError("echo returned a different size during warm-up")
    samples = [0] * iterations
    clock = time.perf_counter_ns
    started = clock()
    for i in range(iterations):
        t0 = clock()
        echoed = round_trip(payload)
        samples[i] = clock() - t0
        if len(echoed) != len(payload):
            raise AssertionError("echo returned a different size")
    wall = (clock() - started) / 1e9
    samples.sort()
    return LatencyStats(
        median_us=samples[iterations // 2] / 1000,
        p99_us=samples[min(iterations - 1, int(iterations * 0.99))] / 1000,
        msgs_per_s=iterations / wall if wall > 0 else float("inf"),
        samples=iterations,
        sample_us=tuple(x / 1000 for x in samples),
    )


def pin(cpu: int | None) -> set[int]:
    """Pin this process to ``cpu`` (None: leave it); return the previous affinity."""
    before = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    return before


def machine_info() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def header(
    name: str, placement: str, client_cpu: int | None, server_cpu: int | None, iterations: int
) -> dict[str, object]:
    """The fields every benchmark's JSON starts with (schema version 1)."""
    return {
        "benchmark": name,
        "version": 1,
        "machine": machine_info(),
        "placement": {"name": placement, "client_cpu": client_cpu, "server_cpu": server_cpu},
        "iterations": iterations,
    }
