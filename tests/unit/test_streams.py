from __future__ import annotations

import math
import time

import pytest

from faultlab.errors import TransportTimeout
from faultlab.streams import Deadline


def test_deadline_counts_down_and_expires() -> None:
    d = Deadline.after(0.05)
    assert 0 < d.remaining() <= 0.05
    time.sleep(0.06)
    assert d.remaining_or_zero() == 0
    with pytest.raises(TransportTimeout):
        d.remaining()


@pytest.mark.parametrize("bad", [-1.0, math.nan])
def test_deadline_rejects_nonsense(bad: float) -> None:
    with pytest.raises(ValueError, match="timeout must be"):
        Deadline.after(bad)


def test_inf_is_allowed_when_asked_for() -> None:
    assert Deadline.after(math.inf).remaining() == math.inf
