"""What every attack gets (the target, its wire, the bounds, a seeded RNG) and gives back."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from faultlab.suites.hostile._net import Endpoint, Sockets
from faultlab.suites.hostile.config import HostileLimits
from faultlab.suites.hostile.wire import Wire

__all__ = ["Attack", "AttackContext", "AttackReport"]


@dataclass
class AttackContext:
    endpoint: Endpoint
    wire: Wire
    limits: HostileLimits
    rng: random.Random
    seed: int
    stop: threading.Event = field(default_factory=threading.Event)
    """Set on Ctrl-C or when the run is abandoned: every loop checks it."""
    until: float = math.inf
    """``time.monotonic()`` after which the attack starts nothing new (``attack_timeout``)."""

    def over(self) -> bool:
        """Stop now: the run is stopping, or this attack has had its time."""
        return self.stop.is_set() or time.monotonic() > self.until

    def sockets(self) -> Sockets:
        return Sockets(self.endpoint, connect_timeout=self.limits.connect_timeout)

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped; True if stopped."""
        return self.stop.wait(seconds)


@dataclass
class AttackReport:
    """What one attack did (``counts``) and how the server answered (``answers``: one word
    per bad input or held connection, see :mod:`faultlab.suites.hostile._net`)."""

    counts: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)
    samples: list[dict[str, str]] = field(default_factory=list)
    """A few of the inputs with their answers (``input``, ``answer``), for the evidence."""

    def answer(self, what: str, description: str = "") -> None:
        self.answers[what] += 1
        if description and len(self.samples) < 12:
            self.samples.append({"input": description, "answer": what})


@dataclass(frozen=True)
class Attack:
    """One attack: its name, whether it sends bad input (judged by H2), and its body."""

    name: str
    bad_input: bool
    run: Callable[[AttackContext], AttackReport]
    doc: str = ""
