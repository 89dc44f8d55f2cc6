"""The public names of oracles, strategies and the example clients exist and do not repeat."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("name", ["faultlab.oracles", "faultlab.strategies", "examples.clients"])
def test_all_lists_exist_without_repeats(name: str) -> None:
    module = importlib.import_module(name)
    names = module.__all__
    assert len(names) == len(set(names)), f"{name}.__all__ repeats a name"
    for attr in names:
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr}"


def test_example_clients_declare_their_policies() -> None:
    from examples.clients import BreakerCalc, DeadlineCalc, StaminaCalc, TenacityCalc
    from faultlab.rpc.client import Client

    rpc = Client("tcp://127.0.0.1:9", "binrpc")  # never connected
    assert set(TenacityCalc(rpc).policies()) == {"retry"}
    assert set(StaminaCalc(rpc).policies()) == {"retry"}
    assert set(BreakerCalc(rpc).policies()) == {"breaker", "fallback"}
    assert set(DeadlineCalc(rpc).policies()) == {"deadline", "retry"}
    policy = TenacityCalc(rpc).retry_policy
    assert policy.max_attempts == 4
    assert policy.non_idempotent == {"counter.incr"}
    assert "TransportTimeout" in policy.retry_on
    assert "application_error" not in policy.retry_on
