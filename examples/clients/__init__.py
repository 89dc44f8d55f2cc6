"""Resilient calc clients a user would write, each declaring the policy it promises.

- :class:`TenacityCalc`: tenacity retry, exponential backoff, idempotency keys for
  ``counter.incr``;
- :class:`StaminaCalc`: the same with stamina;
- :class:`BreakerCalc`: a pybreaker circuit breaker with a fallback value;
- :class:`DeadlineCalc`: retries inside one overall deadline per call.

Every client wraps a faultlab RPC client (``pair.client`` in a Lab), takes
injectable ``sleep``/``monotonic`` so a test can run it on a virtual clock,
and exposes ``policies()`` for the oracles.
"""

from __future__ import annotations

from examples.clients.breaker_client import BreakerCalc
from examples.clients.common import (
    FALLBACK,
    NON_IDEMPOTENT,
    CalcClient,
    is_business_error,
    is_retryable,
)
from examples.clients.deadline_client import DeadlineCalc
from examples.clients.stamina_client import StaminaCalc
from examples.clients.tenacity_client import TenacityCalc

__all__ = [
    "FALLBACK",
    "NON_IDEMPOTENT",
    "BreakerCalc",
    "CalcClient",
    "DeadlineCalc",
    "StaminaCalc",
    "TenacityCalc",
    "is_business_error",
    "is_retryable",
]
