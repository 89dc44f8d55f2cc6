"""netem's loss and delay models against their theory, with fixed seeds and stated tolerances.

Every statistic is compared with a value derived here independently of the model code
(closed forms, or the stationary law of the transition matrix by power iteration), within
a tolerance of at least 4 standard errors: for Markov chains the error uses the chain's
own correlation time (or batch means), for quantiles the binomial error of the empirical
CDF. netem's own correlated source is re-derived here too, to show what the models fix.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from faultlab.toxics._netem import (
    CorrelatedNormal,
    FourState,
    GilbertElliott,
    RandomLoss,
    quantile,
)
from faultlab.toxics.base import Chunk, ToxicContext, get_toxic_class

SEED = 16
N = 200_000
STD = statistics.NormalDist()


# ---- helpers -----------------------------------------------------------------------------------
def run(model: Any, n: int = N) -> list[bool]:
    return [model.lost() for _ in range(n)]


def bursts(losses: Sequence[bool], value: bool = True) -> list[int]:
    """Lengths of the runs of ``value`` (a run cut by the end of the sample is left out)."""
    runs = [(k, len(list(g))) for k, g in itertools.groupby(losses)]
    return [length for k, length in runs[:-1] if k == value]


def lag1(xs: Sequence[float]) -> float:
    mean = statistics.fmean(xs)
    var = sum((x - mean) ** 2 for x in xs)
    return sum((a - mean) * (b - mean) for a, b in itertools.pairwise(xs)) / var


def batch_se(xs: Sequence[float], batches: int = 100) -> float:
    """Standard error of the mean by batch means (right for correlated samples)."""
    size = len(xs) // batches
    means = [statistics.fmean(xs[i * size : (i + 1) * size]) for i in range(batches)]
    return statistics.stdev(means) / math.sqrt(batches)


def two_state_tolerance(rate: float, flip: float, n: int) -> float:
    """4 standard errors of a 2-state chain's occupancy; ``flip`` = p + r (1 - λ)."""
    lam = 1 - flip
    return 4 * math.sqrt(rate * (1 - rate) * (1 + lam) / (1 - lam) / n)


def stationary(matrix: list[list[float]]) -> list[float]:
    """The stationary law of a transition matrix, by power iteration (independent of the model)."""
    pi = [1 / len(matrix)] * len(matrix)
    for _ in range(20_000):
        pi = [sum(pi[i] * matrix[i][j] for i in range(len(matrix))) for j in range(len(matrix))]
    return pi


# ---- Gilbert-Elliott ---------------------------------------------------------------------------
def test_simple_gilbert_rate_and_mean_burst() -> None:
    p, r = 0.05, 0.25
    losses = run(GilbertElliott(random.Random(SEED), p, r))
    rate = sum(losses) / N
    assert abs(rate - p / (p + r)) < two_state_tolerance(p / (p + r), p + r, N), rate
    lost_runs, gaps = bursts(losses), bursts(losses, False)
    # a burst is a stay in the bad state: geometric, mean 1/r, variance (1-r)/r²
    se = math.sqrt((1 - r) / r**2 / len(lost_runs))
    assert abs(statistics.fmean(lost_runs) - 1 / r) < 4 * se, statistics.fmean(lost_runs)
    assert abs(statistics.fmean(gaps) - 1 / p) < 4 * math.sqrt((1 - p) / p**2 / len(gaps))
    ones = lost_runs.count(1) / len(lost_runs)  # P(burst of 1) = r
    assert abs(ones - r) < 4 * math.sqrt(r * (1 - r) / len(lost_runs))


def test_gilbert_elliott_loss_rate_with_loss_in_both_states() -> None:
    p, r, lb, lg = 0.02, 0.30, 0.70, 0.01
    losses = run(GilbertElliott(random.Random(SEED), p, r, lb, lg))
    theory = (r * lg + p * lb) / (p + r)
    rate = sum(losses) / N
    assert abs(rate - theory) < two_state_tolerance(theory, p + r, N), (rate, theory)
    # losses inside a bad stay are thinned by 1-h: more, shorter bursts than simple Gilbert
    assert statistics.fmean(bursts(losses)) < 1 / r


def test_gemodel_with_p_only_is_bernoulli_as_tc_sets_it() -> None:
    """tc's defaults r = 1-p, 1-h = 100 %, 1-k = 0: independent losses at rate p."""
    p = 0.1
    losses = run(GilbertElliott(random.Random(SEED), p))
    assert abs(sum(losses) / N - p) < 4 * math.sqrt(p * (1 - p) / N)
    assert abs(lag1([float(x) for x in losses])) < 4 / math.sqrt(N)


# ---- 4-state -----------------------------------------------------------------------------------
def test_four_state_occupancy_and_loss_rate() -> None:
    p13, p31, p32, p23, p14 = 0.03, 0.40, 0.20, 0.10, 0.01
    matrix = [  # states 1..4 as rows 0..3
        [1 - p13 - p14, 0, p13, p14],
        [0, 1 - p23, p23, 0],
        [p31, p32, 1 - p31 - p32, 0],
        [1, 0, 0, 0],
    ]
    pi = stationary(matrix)
    model = FourState(random.Random(SEED), p13, p31, p32, p23, p14)
    states, losses = [], []
    for _ in range(N):
        losses.append(model.lost())
        states.append(model.met)
    for s in (1, 2, 3, 4):
        seen = [1.0 if x == s else 0.0 for x in states]
        share = statistics.fmean(seen)
        assert abs(share - pi[s - 1]) < 5 * batch_se(seen), (s, share, pi[s - 1])
    rate = statistics.fmean([float(x) for x in losses])
    assert abs(rate - (pi[2] + pi[3])) < 5 * batch_se([float(x) for x in losses])
    assert all(lost == (s in (3, 4)) for lost, s in zip(losses, states, strict=True))
    # an isolated loss (state 4) is always followed by a transmission in the gap
    after_isolated = [b for a, b in itertools.pairwise(states) if a == 4]
    assert after_isolated
    assert set(after_isolated) == {1}


def test_four_state_defaults_as_tc_sets_them() -> None:
    """p13 only: Bernoulli(p13); p13 and p31: simple Gilbert, bursts of mean 1/p31."""
    losses = run(FourState(random.Random(SEED), 0.1))
    assert abs(sum(losses) / N - 0.1) < 4 * math.sqrt(0.1 * 0.9 / N)
    p13, p31 = 0.04, 0.5
    losses = run(FourState(random.Random(SEED), p13, p31))
    theory = p13 / (p13 + p31)
    assert abs(sum(losses) / N - theory) < two_state_tolerance(theory, p13 + p31, N)
    runs = bursts(losses)
    se = math.sqrt((1 - p31) / p31**2 / len(runs))
    assert abs(statistics.fmean(runs) - 1 / p31) < 4 * se


# ---- correlated random loss --------------------------------------------------------------------
@pytest.mark.parametrize(("p", "c"), [(0.1, 0.5), (0.01, 0.25), (0.3, 0.0)])
def test_correlated_random_loss_keeps_the_rate_and_has_lag1_correlation_c(
    p: float, c: float
) -> None:
    losses = run(RandomLoss(random.Random(SEED), p, c))
    # a 2-state chain: P(L|L) = c + (1-c)p, P(L|pass) = (1-c)p, so λ = c
    assert abs(sum(losses) / N - p) < two_state_tolerance(p, 1 - c, N)
    assert abs(lag1([float(x) for x in losses]) - c) < 4 / math.sqrt(N) * (1 + c)
    runs = bursts(losses)
    stay = c + (1 - c) * p
    se = math.sqrt(stay / (1 - stay) ** 2 / len(runs))
    assert abs(statistics.fmean(runs) - 1 / ((1 - c) * (1 - p))) < 4 * se


def netem_crandom(rng: random.Random, rho: float) -> Callable[[], float]:
    """sch_netem.c ``get_crandom``, in fractions: ``u = (1-rho)·v + rho·u_prev``."""
    last = rng.random()

    def draw() -> float:
        nonlocal last
        last = (1 - rho) * rng.random() + rho * last
        return last

    return draw


def test_netems_own_correlation_would_lose_the_rate_and_the_spread() -> None:
    """Why the models depart from netem: its average of uniforms bunches around 0.5."""
    draw = netem_crandom(random.Random(SEED), 0.25)
    netem = [draw() for _ in range(N)]
    assert sum(u < 0.01 for u in netem) / N < 0.002  # `loss random 1% 25%` loses ~nothing
    expected = math.sqrt(1 / 12) * math.sqrt((1 - 0.25) / (1 + 0.25))
    assert abs(statistics.pstdev(netem) - expected) < 0.005  # spread shrunk by 23 %
    ours = run(RandomLoss(random.Random(SEED), 0.01, 0.25))
    assert sum(ours) / N > 0.008  # the rate kept


# ---- delay distributions -----------------------------------------------------------------------
def capped_pareto_moments(cap: float = 4.5) -> tuple[float, float]:
    """Mean and stdev of (4/3)(min(X, cap) - 1.5), X ~ Pareto(1, 3): netem's pareto table."""
    m1 = 1.5 - 0.5 / cap**2  # E[min(X,c)] = 3/2 (1 - c⁻²) + c⁻²
    m2 = 3 - 2 / cap  # E[min(X,c)²] = 3 (1 - 1/c) + 1/c
    return (4 / 3) * (m1 - 1.5), (4 / 3) * math.sqrt(m2 - m1 * m1)


def pareto_q(q: float) -> float:
    return min(4.0, (4 / 3) * ((1 - q) ** (-1 / 3) - 1.5))


def paretonormal_q(q: float) -> float:
    return (max(-4.0, min(4.0, STD.inv_cdf(q))) + 3 * pareto_q(q)) / 4


def numeric_moments(q_of: Callable[[float], float], points: int = 400_000) -> tuple[float, float]:
    xs = [q_of((k + 0.5) / points) for k in range(points)]
    return statistics.fmean(xs), statistics.pstdev(xs)


THEORY: dict[str, tuple[Callable[[float], float], tuple[float, float]]] = {
    "normal": (lambda q: max(-4.0, min(4.0, STD.inv_cdf(q))), (0.0, 1.0)),
    "pareto": (pareto_q, capped_pareto_moments()),
    "paretonormal": (paretonormal_q, numeric_moments(paretonormal_q)),
}


@pytest.mark.parametrize("distribution", sorted(THEORY))
def test_distribution_mean_stdev_and_quantiles(distribution: str) -> None:
    q_of, (mean, sd) = THEORY[distribution]
    source = CorrelatedNormal(random.Random(SEED))
    xs = [quantile(distribution, source.next()) for _ in range(N)]
    assert abs(statistics.fmean(xs) - mean) < 4 * sd / math.sqrt(N)
    assert abs(statistics.pstdev(xs) - sd) < 0.015 * sd  # > 4 SE for these tails at N
    for q in (0.05, 0.25, 0.5, 0.75, 0.9, 0.98):
        below = sum(x <= q_of(q) for x in xs) / N  # the empirical CDF at the true quantile
        assert abs(below - q) < 4 * math.sqrt(q * (1 - q) / N), (q, below)
    assert min(xs) >= min(q_of(1e-9), -4.0)
    assert max(xs) <= 4.0


def test_netem_spreads_as_tc_gives_them() -> None:
    """jitter J gives netem's table spreads: normal J, pareto 0.82 J, paretonormal 0.83 J."""
    assert capped_pareto_moments() == pytest.approx((-0.0329, 0.8209), abs=1e-4)
    assert THEORY["paretonormal"][1] == pytest.approx((-0.0254, 0.834), abs=2e-3)


def test_correlated_delays_keep_their_spread_and_correlate() -> None:
    c, n = 0.6, 100_000
    source = CorrelatedNormal(random.Random(SEED), c)
    zs = [source.next() for _ in range(n)]
    assert abs(lag1(zs) - c) < 4 * (1 - c * c) / math.sqrt(n)  # Pearson = c for normal
    assert abs(statistics.fmean(zs)) < 5 * batch_se(zs)
    assert abs(statistics.pstdev(zs) - 1) < 0.03  # spread kept (netem: x0.5 at c = 0.6)
    pareto = [quantile("pareto", z) for z in zs]  # rank correlation (6/π)·asin(c/2)
    ranks = {i: r for r, i in enumerate(sorted(range(n), key=pareto.__getitem__))}
    spearman = lag1([float(ranks[i]) for i in range(n)])
    assert abs(spearman - 6 / math.pi * math.asin(c / 2)) < 4 * (1 - c * c) / math.sqrt(n)


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: GilbertElliott(rng, 0.05, 0.3),
        lambda rng: FourState(rng, 0.03, 0.4, 0.2, 0.1, 0.01),
        lambda rng: RandomLoss(rng, 0.2, 0.5),
    ],
    ids=["gemodel", "state", "random"],
)
def test_a_seed_replays(make: Callable[[random.Random], Any]) -> None:
    first, again, other = (run(make(random.Random(s)), 2000) for s in (1, 1, 2))
    assert first == again
    assert first != other


# ---- the latency toxic -------------------------------------------------------------------------
def delays(attributes: dict[str, Any], chunks: int, seed: int = SEED) -> tuple[list[float], float]:
    """The journaled delay of each chunk through ``latency`` (chunks stamped in the past, so
    nothing sleeps), and the RNG's next draw after them."""
    out: list[float] = []
    rng = random.Random(seed)

    async def main() -> None:
        toxic = get_toxic_class("latency")(**attributes)
        ctx = ToxicContext(
            rng=rng,
            record=lambda decision, **f: out.append(f["delay_ms"]),
            close=lambda: None,
            reset=lambda: None,
            direction="downstream",
            link_kind="bytes",
            loop=asyncio.get_running_loop(),
        )

        async def emit(chunk: Chunk) -> None:
            pass

        for i in range(chunks):
            await toxic.process(ctx, Chunk(b"x", -1e9, i), emit)

    asyncio.run(main())
    return out, rng.random()


def test_latency_keeps_toxiproxys_draws() -> None:
    """With only latency and jitter: Toxiproxy's randrange, the same draws, no others."""
    got, _ = delays({"latency": 100, "jitter": 20}, 500)
    rng = random.Random(SEED)
    assert got == [100 + rng.randrange(40) - 20 for _ in range(500)]
    same, _ = delays({"latency": 100, "jitter": 20, "distribution": "uniform"}, 500)
    assert same == got
    flat, after = delays({"latency": 100, "jitter": 0}, 50)
    assert flat == [100] * 50
    assert after == random.Random(SEED).random()  # jitter 0: no draw at all
    toxic = get_toxic_class("latency")(latency=5, distribution="uniform", correlation=0)
    assert toxic.attributes == {"latency": 5, "jitter": 0}  # Toxiproxy's JSON


@pytest.mark.parametrize("distribution", ["normal", "pareto", "paretonormal"])
def test_latency_distribution_has_netems_mean_and_spread(distribution: str) -> None:
    latency, jitter = 200, 20
    got, _ = delays({"latency": latency, "jitter": jitter, "distribution": distribution}, 40_000)
    mean, sd = THEORY[distribution][1]
    assert abs(statistics.fmean(got) - (latency + jitter * mean)) < 4 * jitter * sd / 200
    assert abs(statistics.pstdev(got) - jitter * sd) < 0.03 * jitter * sd
    assert min(got) >= 0
    assert max(got) <= latency + 4 * jitter


def test_latency_correlation_correlates_without_shrinking() -> None:
    attrs = {"latency": 100, "jitter": 10, "distribution": "normal", "correlation": 60}
    got, _ = delays(attrs, 40_000)
    assert abs(lag1(got) - 0.6) < 0.03
    assert abs(statistics.pstdev(got) - 10) < 0.6
    uniform, _ = delays({"latency": 100, "jitter": 10, "correlation": 60}, 40_000)
    assert min(uniform) >= 90
    assert max(uniform) <= 109
    assert abs(lag1(uniform) - 6 / math.pi * math.asin(0.3)) < 0.03
    assert abs(statistics.pstdev(uniform) - math.sqrt((20**2 - 1) / 12)) < 0.3
