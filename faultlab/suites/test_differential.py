"""Differential fault transparency: the same calls, clean and faulted, give the same results
or declared transient errors, never different values."""

from __future__ import annotations

from typing import Any

import pytest

FAULTS = [
    {"type": "latency", "stream": "downstream", "latency": 15, "jitter": 5},
    {"type": "latency", "stream": "upstream", "latency": 15},
    {"type": "bandwidth", "stream": "downstream", "rate": 200},
    {"type": "reset_peer", "stream": "upstream", "timeout": 0},
    {"type": "limit_data", "stream": "downstream", "bytes": 10},
    {"type": "slow_close", "stream": "downstream", "delay": 20},
]


def _run_probes(pair: Any, target: Any) -> list[tuple[str, Any]]:
    resilient = target.resilient_for(pair)
    results: list[tuple[str, Any]] = []
    for probe in target.probes:
        if not probe.idempotent:
            continue
        try:
            value = pair.run(lambda _c, p=probe: target.invoke(resilient, p), label=probe.method)
        except Exception as exc:
            results.append(("error", exc))
        else:
            results.append(("value", value))
    return results


@pytest.mark.faultlab(target=True, faults=FAULTS)
def test_faults_never_change_answers(
    faultlab_pair: Any, faultlab_target: Any, faultlab_fault: dict[str, Any]
) -> None:
    clean = _run_probes(faultlab_pair, faultlab_target)
    assert all(kind == "value" for kind, _ in clean), f"clean run failed: {clean}"
    attrs = {k: v for k, v in faultlab_fault.items() if k not in ("type", "stream")}
    faultlab_pair.proxy.add_toxic(faultlab_fault["type"], stream=faultlab_fault["stream"], **attrs)
    faulted = _run_probes(faultlab_pair, faultlab_target)
    for (_, expected), (kind, got), probe in zip(
        clean, faulted, [p for p in faultlab_target.probes if p.idempotent], strict=True
    ):
        if kind == "error":
            assert faultlab_target.is_transient(got), (
                f"{probe.method}{probe.args} under {faultlab_fault['type']} raised "
                f"{type(got).__name__}: {got}, which is not a declared transient error"
            )
        else:
            assert faultlab_target.accepts(got, expected), (
                f"{probe.method}{probe.args} under {faultlab_fault['type']} returned {got!r}, "
                f"but {expected!r} without the fault: a wrong answer"
            )
