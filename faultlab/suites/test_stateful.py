"""A stateful suite: Hypothesis mixes calls, fault injection and healing.

Invariants after every step: an idempotent call gives its expected value or a
declared transient error, and no idempotency key ever produced two side effects.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

FAULTS = st.sampled_from(
    [
        ("latency", "downstream", {"latency": 10}),
        ("latency", "upstream", {"latency": 5, "jitter": 5}),
        ("reset_peer", "upstream", {"timeout": 0}),
        ("bandwidth", "downstream", {"rate": 500}),
        ("slow_close", "downstream", {"delay": 10}),
    ]
)


@pytest.mark.faultlab(target=True)
def test_calls_faults_and_healing(faultlab_pair: Any, faultlab_target: Any) -> None:
    if not any(not p.idempotent for p in faultlab_target.probes) and not any(
        p.expected is not None for p in faultlab_target.probes
    ):
        pytest.skip("target declares no probes with expected results or side effects")
    pair, target = faultlab_pair, faultlab_target
    checked = [p for p in target.probes if p.idempotent and p.expected is not None]
    side_effects = [p for p in target.probes if not p.idempotent]

    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            pair.clear_faults()
            self.resilient = target.resilient_for(pair)
            self.faults = 0

        @rule(probe=st.sampled_from(checked) if checked else st.nothing())
        def call(self, probe: Any) -> None:
            try:
                got = pair.run(lambda _c: target.invoke(self.resilient, probe))
            except Exception as exc:
                assert target.is_transient(exc), f"{probe.method}: undeclared {exc!r}"
                return
            assert target.accepts(got, probe.expected), f"{probe.method} gave {got!r}"

        @rule(probe=st.sampled_from(side_effects) if side_effects else st.nothing())
        def side_effect(self, probe: Any) -> None:
            try:
                pair.run(lambda _c: target.invoke(self.resilient, probe))
            except Exception as exc:
                assert target.is_transient(exc), f"{probe.method}: undeclared {exc!r}"

        @rule(fault=FAULTS)
        def inject(self, fault: tuple[str, str, dict[str, Any]]) -> None:
            kind, stream, attrs = fault
            name = f"{kind}_{stream}_{self.faults}"
            self.faults += 1
            pair.proxy.add_toxic(kind, name=name, stream=stream, **attrs)

        @rule()
        def heal(self) -> None:
            pair.clear_faults()

        @invariant()
        def each_key_at_most_once(self) -> None:
            effects = target.read_effects(pair) if side_effects else None
            if effects is None:
                return
            keys = Counter(e.get("key") for e in effects if e.get("key") is not None)
            duplicated = {k: n for k, n in keys.items() if n > 1}
            assert not duplicated, f"side effects applied more than once per key: {duplicated}"

        def teardown(self) -> None:
            pair.clear_faults()

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=5,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
