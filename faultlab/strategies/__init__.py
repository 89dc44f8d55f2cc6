"""Hypothesis strategies: faults (toxics, timed plans, plan search), codec values, service calls.

Generated from what the registries declare (toxics' attribute declarations, codec
domains, service type hints), so what a plugin registers is drawn too, and
shrinking goes toward what a user wants to read: fewer, shorter, milder
faults.
"""

from __future__ import annotations

from faultlab.strategies.calls import calls, strategy_for
from faultlab.strategies.faults import (
    PLAN_ENV,
    STEP_KINDS,
    CallOutcome,
    Choice,
    FaultPlan,
    FaultStep,
    Num,
    PlanError,
    PlanRunError,
    PlanRunner,
    ToxicSpec,
    UnsupportedStep,
    attribute_shape,
    fault_plans,
    minimize,
    toxics,
)
from faultlab.strategies.search import FlakyPlan, Outcome, PlanFailed, PlanSearch, search_plans
from faultlab.strategies.values import PROTOCOL_CODECS, codec_for, values

__all__ = [
    "PLAN_ENV",
    "PROTOCOL_CODECS",
    "STEP_KINDS",
    "CallOutcome",
    "Choice",
    "FaultPlan",
    "FaultStep",
    "FlakyPlan",
    "Num",
    "Outcome",
    "PlanError",
    "PlanFailed",
    "PlanRunError",
    "PlanRunner",
    "PlanSearch",
    "ToxicSpec",
    "UnsupportedStep",
    "attribute_shape",
    "calls",
    "codec_for",
    "fault_plans",
    "minimize",
    "search_plans",
    "strategy_for",
    "toxics",
    "values",
]
