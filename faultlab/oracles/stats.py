"""Distribution checks for randomised backoff, sound under timing slack.

A single jittered wait can rarely be wrong: full jitter allows anything in
``[0, cap]``. What a wrong client gets wrong is the *distribution*: no
backoff at all (every wait near 0), no jitter (every wait at the cap), a cap
that never grows. So the waits of many retries are pooled and compared with
the declared distributions by a one-sample Kolmogorov-Smirnov test.

Each measured gap ``g`` is only known up to the timing slack (the client
sleeps ``d`` and then spends up to ``eps_late`` more, its timer may fire
``eps_early`` early). The test therefore bounds each probability-integral
transform ``u = F_k(d)`` by an interval ``[F_k(d_min-), F_k(d_max)]`` and
computes the KS statistic on the side of the interval that makes it smallest.
That statistic is never above the exact one, so the false-alarm rate is at
most ``alpha`` whatever the slack within the tolerance (and much lower in
practice). Waits drawn from different distributions (retry 1, 2, 3...) are
pooled through their own CDFs, so growth is tested together with spread.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ALPHA",
    "MIN_SAMPLES",
    "BandSample",
    "KsResult",
    "Uniform",
    "band_ks",
    "kolmogorov_sf",
    "min_samples_for",
]

ALPHA = 1e-5
"""Default significance: at most one false alarm in 100,000 verdicts (the test is conservative,
so fewer in practice). Chosen so the correct clients of a whole CI run (a few hundred
non-vacuous verdicts) stay green with probability above 0.99."""


@dataclass(frozen=True)
class Uniform:
    """``clamp(U(low, high), floor, ceil)``: uniform jitter, possibly cut by a floor or a cap
    (an atom there). ``low == high`` is a fixed wait."""

    low: float
    high: float
    floor: float = -math.inf
    ceil: float = math.inf

    @property
    def degenerate(self) -> bool:
        """A single value, or an unbounded one (a wait that overflowed): nothing to test
        (the bounds check it)."""
        lo = max(self.low, self.floor)
        hi = min(self.high, self.ceil)
        return not (math.isfinite(lo) and math.isfinite(hi)) or hi - lo <= 1e-12

    def cdf(self, x: float, *, left: bool = False) -> float:
        """``P(X <= x)``, or ``P(X < x)`` with ``left``."""
        if x < self.floor or (left and x == self.floor):
            return 0.0
        if x > self.ceil or (not left and x == self.ceil):
            return 1.0
        if self.high <= self.low:
            return 1.0 if (x > self.low or (not left and x == self.low)) else 0.0
        return min(1.0, max(0.0, (x - self.low) / (self.high - self.low)))

    def describe(self) -> str:
        from faultlab.oracles._common import secs

        lo = max(self.low, self.floor)
        hi = min(self.high, self.ceil)
        return f"U({secs(lo)}, {secs(hi)})" if hi > lo else secs(lo)


@dataclass(frozen=True)
class BandSample:
    """One measured wait and the interval its transform ``F(d)`` lies in."""

    retry: int
    gap: float
    u_low: float
    u_high: float
    declared: Uniform


@dataclass(frozen=True)
class KsResult:
    n: int
    statistic: float
    p_value: float
    side: str
    """``"short"``: waits shorter than declared (no backoff, a cap that never grows);
    ``"long"``: longer (no jitter, a wait stuck at the cap)."""


def kolmogorov_sf(d: float, n: int) -> float:
    """``P(D_n >= d)`` for the two-sided KS statistic (Stephens' approximation of the
    Kolmogorov distribution; within a few percent for n >= 5, exact in the tail we use)."""
    if n <= 0 or d <= 0:
        return 1.0
    root = math.sqrt(n)
    lam = (root + 0.12 + 0.11 / root) * d
    if lam < 0.3:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2.0 * (-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-16:
            break
    return min(1.0, max(0.0, total))


MIN_SAMPLES = 6


def min_samples_for(alpha: float) -> int:
    """The fewest waits for which even the most extreme sample (D = 1) is significant."""
    n = 1
    while kolmogorov_sf(1.0, n) > alpha and n < 10_000:
        n += 1
    return n


def band_ks(samples: Sequence[BandSample]) -> KsResult:
    """The KS statistic against U(0, 1) computed from the bounding intervals, on the side of
    each interval that makes it smallest (so it never exceeds the exact statistic)."""
    n = len(samples)
    if n == 0:
        return KsResult(0, 0.0, 1.0, "")
    highs = sorted(s.u_high for s in samples)
    lows = sorted(s.u_low for s in samples)
    # waits too short: the empirical CDF of the upper bounds runs above the diagonal
    d_short = max((i + 1) / n - u for i, u in enumerate(highs))
    # waits too long: the lower bounds sit to the right of the diagonal
    d_long = max(u - i / n for i, u in enumerate(lows))
    statistic = max(0.0, d_short, d_long)
    side = "short" if d_short >= d_long else "long"
    return KsResult(n, statistic, kolmogorov_sf(statistic, n), side)
