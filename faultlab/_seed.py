"""Deterministic randomness: every decision draws from an RNG derived from a key.

``derive(seed, "proxy", name, conn, "upstream", "latency_downstream")`` gives the
same ``random.Random`` for the same key in every run, independent of the order
in which other RNGs were made, so replaying a seed replays every decision.
"""

from __future__ import annotations

import hashlib
import os
import random

__all__ = ["derive", "new_seed"]


def new_seed() -> int:
    """A fresh 32-bit session seed (printed, so a run can be replayed)."""
    return int.from_bytes(os.urandom(4), "big")


def derive(seed: int, *key: object) -> random.Random:
    digest = hashlib.blake2b(repr((seed, *key)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))
