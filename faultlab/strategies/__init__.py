"""Hypothesis strategies: faults (toxics, timed plans), codec values, and service calls.

Generated from what the registries declare (toxics' attribute declarations, codec
domains, service type hints), so what a plugin registers is drawn too, and
shrinking goes toward what a user wants to read: fewer, shorter, milder
faults.
"""

from __future__ import annotations

from faultlab.strategies.calls import calls, strategy_for
from faultlab.strategies.faults import (
    PLAN_ENV,
    Choice,
    FaultPlan,
    FaultStep,
    Num,
    PlanRunner,
    ToxicSpec,
    attribute_shape,
    fault_plans,
    minimize,
    toxics,
)
from faultlab.strategies.values import PROTOCOL_CODECS, codec_for, values

__all__ = [
    "PLAN_ENV",
    "PROTOCOL_CODECS",
    "Choice",
    "FaultPlan",
    "FaultStep",
    "Num",
    "PlanRunner",
    "ToxicSpec",
    "attribute_shape",
    "calls",
    "codec_for",
    "fault_plans",
    "minimize",
    "strategy_for",
    "toxics",
    "values",
]
