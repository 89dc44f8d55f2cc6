"""netem's loss and delay models, as pure seeded generators (no I/O, one ``random.Random`` each).

Why here: the ``loss`` and ``latency`` toxics draw from these, and tests check their
statistics against theory without a proxy. References: Linux ``net/sched/sch_netem.c``
(``loss_4state``, ``loss_gilb_ell``, ``get_crandom``, ``tabledist``), iproute2
``tc/q_netem.c`` (parameter defaults) and ``netem/{normal,pareto,paretonormal}.c`` (the
delay tables), and Salsano et al., "Definition of a general and intuitive loss model for
packet networks and its implementation in the Netem module in the Linux kernel" (2012).

Probabilities here are fractions (0..1); the toxics take netem's percentages.

Correlation, and where it departs from netem (on purpose): netem's ``get_crandom`` returns
``u = (1-c)·v + c·u_prev``. That average of uniforms is not uniform: it bunches around 0.5,
so with correlation a loss rate of 1 % becomes ~0 % (``loss random 1% 25%`` loses almost
nothing) and a delay's spread shrinks by ``sqrt((1-c)/(1+c))``. These models keep the
marginal exact instead:

- loss (:class:`RandomLoss`): with probability ``c`` a frame shares the previous frame's
  fate, else it is a fresh Bernoulli(``p``) draw. The loss rate stays ``p``, the lag-1
  autocorrelation of the loss indicator is exactly ``c`` and the mean burst is
  ``1 / ((1-c)(1-p))`` frames;
- delays (:class:`CorrelatedNormal`): a Gaussian AR(1), ``z = c·z_prev + sqrt(1-c²)·e``,
  mapped through the distribution's quantile function (a Gaussian copula). Every delay has
  exactly the chosen distribution (mean and spread unchanged); consecutive delays have
  Pearson correlation ``c`` for ``normal`` and rank (Spearman) correlation
  ``(6/π)·asin(c/2)`` for every distribution.
"""

from __future__ import annotations

import math
import random
from statistics import NormalDist
from typing import Final

__all__ = [
    "DISTRIBUTIONS",
    "CorrelatedNormal",
    "FourState",
    "GilbertElliott",
    "RandomLoss",
    "quantile",
]

_STD: Final = NormalDist()
_TINY: Final = 2.0**-53
TABLE_LIMIT: Final = 4.0
"""netem's tables hold ``value·8192`` in an s16, so a drawn value is at most 4 sigma from the
mean (32767/8192); the quantile functions here keep that cap, as tc's tables do."""
DISTRIBUTIONS: Final = ("uniform", "normal", "pareto", "paretonormal")


def _unit(rng: random.Random) -> float:
    """A uniform draw in (0, 1): ``inv_cdf`` refuses 0."""
    return max(rng.random(), _TINY)


class RandomLoss:
    """``loss random P [CORR]``: Bernoulli(``p``) losses, sticky with probability ``c``.

    One draw per frame: ``u < c`` repeats the last fate; otherwise ``(u-c)/(1-c)``, a fresh
    uniform, is compared with ``p``. Stationary rate ``p``; P(loss | loss) = c + (1-c)p;
    P(loss | pass) = (1-c)p; lag-k autocorrelation ``c**k``.
    """

    def __init__(self, rng: random.Random, p: float, correlation: float = 0.0) -> None:
        self.rng, self.p, self.c = rng, p, correlation
        self.last: bool | None = None
        self.met = "fresh"
        """What decided the last frame: ``fresh`` (a Bernoulli draw) or ``repeat``."""

    def lost(self) -> bool:
        u = self.rng.random()
        if self.last is not None and u < self.c:
            self.met = "repeat"
            return self.last  # shares the previous frame's fate
        self.met = "fresh"
        fresh = (u - self.c) / (1.0 - self.c) if self.last is not None and self.c else u
        self.last = fresh < self.p
        return self.last


class GilbertElliott:
    """``loss gemodel p [r [1-h [1-k]]]``: two states, good and bad, as ``loss_gilb_ell``.

    A frame is lost with probability ``1-k`` in the good state and ``1-h`` in the bad one,
    decided by the state it meets; then the state moves (good→bad with ``p``, bad→good
    with ``r``). Starts good. tc's defaults: ``r = 1-p``, ``1-h = 1``, ``1-k = 0`` (with
    ``p`` only: Bernoulli losses at rate ``p``). Gilbert: ``1-k = 0``; simple Gilbert: also
    ``1-h = 1``, so a burst of losses is a stay in the bad state, geometric with mean
    ``1/r``. Stationary P(bad) = p/(p+r); loss rate = (r(1-k) + p(1-h))/(p+r).
    """

    def __init__(
        self,
        rng: random.Random,
        p: float,
        r: float | None = None,
        loss_bad: float = 1.0,
        loss_good: float = 0.0,
    ) -> None:
        self.rng, self.p = rng, p
        self.r = 1.0 - p if r is None else r
        self.loss_bad, self.loss_good = loss_bad, loss_good
        self.bad = False
        self.met = "good"
        """The state the last frame met (its loss probability's)."""

    def lost(self) -> bool:
        # netem's order: the transition draw, then the loss draw with the state met
        self.met = "bad" if self.bad else "good"
        if self.bad:
            self.bad = not self.rng.random() < self.r
            return self.rng.random() < self.loss_bad
        self.bad = self.rng.random() < self.p
        return self.rng.random() < self.loss_good


class FourState:
    """``loss state p13 [p31 [p32 [p23 [p14]]]]``: the GI model's 4-state Markov chain.

    States (sch_netem.c ``loss_4state``): 1 transmitted in a gap, 2 transmitted in a burst,
    3 lost in a burst, 4 an isolated loss in a gap. From 1: to 4 with ``p14``, to 3 with
    ``p13``, else stay; from 2: to 3 with ``p23``; from 3: to 2 with ``p32``, to 1 with
    ``p31``, else stay; from 4: back to 1. A frame is lost when the chain *enters* (or
    stays in) 3 or 4. Starts in 1. tc's defaults: ``p31 = 1-p13``, ``p32 = 0``,
    ``p23 = 1``, ``p14 = 0``. Ranges are contiguous (the fixed kernel: no value of the
    draw falls between two branches). Stationary, with D = p31·p23 + p13·p23 +
    p13·p32 + p14·p31·p23: π1 = p31·p23/D, π3 = p13·p23/D, π2 = p13·p32/D,
    π4 = p14·p31·p23/D; loss rate π3 + π4.
    """

    def __init__(
        self,
        rng: random.Random,
        p13: float,
        p31: float | None = None,
        p32: float = 0.0,
        p23: float = 1.0,
        p14: float = 0.0,
    ) -> None:
        self.rng, self.p13 = rng, p13
        self.p31 = 1.0 - p13 if p31 is None else p31
        self.p32, self.p23, self.p14 = p32, p23, p14
        self.current = 1

    @property
    def met(self) -> int:
        """The state the last frame entered (3 or 4: it was lost)."""
        return self.current

    def lost(self) -> bool:
        u = self.rng.random()
        s = self.current
        if s == 1:
            s = 4 if u < self.p14 else 3 if u < self.p14 + self.p13 else 1
        elif s == 2:
            s = 3 if u < self.p23 else 2
        elif s == 3:
            s = 2 if u < self.p32 else 1 if u < self.p32 + self.p31 else 3
        else:
            s = 1
        self.current = s
        return s in (3, 4)


class CorrelatedNormal:
    """Standard normal draws with lag-1 correlation ``c``: ``z = c·z_prev + sqrt(1-c²)·e``.

    Stationary from the first draw (``z_0`` ~ N(0, 1)), so every draw is N(0, 1) whatever
    ``c``; one uniform per draw (inverse CDF), so a seed replays. ``c = 1`` repeats ``z_0``.
    """

    def __init__(self, rng: random.Random, correlation: float = 0.0) -> None:
        self.rng, self.c = rng, correlation
        self.z: float | None = None

    def next(self) -> float:
        e = _STD.inv_cdf(_unit(self.rng))
        if self.z is None or not self.c:
            self.z = e
        else:
            self.z = self.c * self.z + math.sqrt(1.0 - self.c * self.c) * e
        return self.z

    def uniform(self) -> float:
        """The same draw as a uniform in (0, 1) (the copula)."""
        return _STD.cdf(self.next())


def _pareto(q: float) -> float:
    """netem's pareto table: ``(4/3)·(X - 1.5)`` for X ~ Pareto(1, alpha=3), capped at 4.

    Mean 1.5 and stdev √3/2 of X make the uncapped value mean 0, stdev 2/√3; netem's cap
    (X ≤ 4.5, 1.1 % of draws) brings it to mean -0.0329 and stdev 0.8209 (the table's).
    """
    x: float = max(1.0 - q, _TINY) ** (-1.0 / 3.0)
    return min(TABLE_LIMIT, (4.0 / 3.0) * (x - 1.5))


def quantile(distribution: str, z: float) -> float:
    """A table distribution's value (in units of sigma, around the mean) for a normal draw ``z``.

    ``normal``: ``z`` itself, capped at ±4. ``pareto``: :func:`_pareto` at the quantile
    Φ(z). ``paretonormal``: netem's table is ``(normal + 3·pareto)/4`` at the *same*
    quantile (a blend of quantile functions, not a mixture): mean -0.0254, stdev 0.834 of
    sigma. ``uniform`` is not a table: callers map Φ(z) to [mean-sigma, mean+sigma) themselves.
    """
    normal = max(-TABLE_LIMIT, min(TABLE_LIMIT, z))
    if distribution == "normal":
        return normal
    q = _STD.cdf(z)
    if distribution == "pareto":
        return _pareto(q)
    if distribution == "paretonormal":
        return (normal + 3.0 * _pareto(q)) / 4.0
    raise ValueError(f"unknown distribution {distribution!r}; known: {', '.join(DISTRIBUTIONS)}")
