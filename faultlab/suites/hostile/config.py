"""The declared budget the oracle judges against, and the bounds every attack keeps."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from faultlab.suites.hostile._net import HostileError

__all__ = ["HostileBudget", "HostileLimits"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class HostileBudget:
    """What the server must keep while it is attacked.

    ``min_success_rate``: the share of canary calls made during the attacks that must
    succeed; ``max_p99``: the canary's 99th percentile latency during the attacks, in
    seconds; ``max_rss_growth``: how far the server's resident memory (its process and
    children) may rise above the level measured before the first attack, in bytes.
    """

    min_success_rate: float = 0.95
    max_p99: float = 0.5
    max_rss_growth: int = 64 * MiB

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_success_rate <= 1.0:
            raise HostileError(
                f"min_success_rate is a share in [0, 1], got {self.min_success_rate}"
            )
        if self.max_p99 <= 0 or self.max_rss_growth <= 0:
            raise HostileError("max_p99 and max_rss_growth must be positive")

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class HostileLimits:
    """Bounds on every attack: small defaults so a whole run takes seconds on loopback.

    Counts are connections (or frames, or streams); durations are seconds; bytes are the
    most one attack sends. ``answer_timeout`` is how long to wait for the server's answer
    to one bad input before calling it ``timeout``; after ``attack_timeout`` seconds an
    attack starts nothing new (a server that lets every connect time out cannot stretch a
    run to counts x timeouts).
    """

    slowloris_connections: int = 32
    slowloris_duration: float = 1.5
    dribble_interval: float = 0.1
    slow_read_connections: int = 8
    slow_read_requests: int = 400
    slow_read_duration: float = 1.0
    oversized_bytes: int = 48 * MiB
    oversized_header_bytes: int = 256 * 1024
    malformed_frames: int = 24
    flood_connections: int = 256
    flood_hold: float = 1.0
    half_open_connections: int = 64
    half_open_duration: float = 1.0
    h2_streams: int = 500
    h2_continuation_frames: int = 2000
    answer_timeout: float = 3.0
    connect_timeout: float = 1.0
    attack_timeout: float = 15.0
    baseline: float = 0.5
    cooldown: float = 0.3

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                raise HostileError(f"HostileLimits.{f.name} must not be negative, got {value}")

    def scaled(self, factor: float) -> HostileLimits:
        """Every count and byte bound times ``factor`` (durations unchanged)."""
        changes = {
            f.name: max(1, int(getattr(self, f.name) * factor))
            for f in fields(self)
            if isinstance(getattr(self, f.name), int)
        }
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
