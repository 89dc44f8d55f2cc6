"""Partial I/O: the slicer cuts every message at every framing boundary; results are unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from faultlab.suites._support import message_transport


@pytest.fixture
def raw_pair(
    faultlab_lab: Any, faultlab_target: Any, faultlab_transport: str, faultlab_protocol: str
) -> Any:
    """A pair whose proxy relays raw bytes (no framing), so the slicer sees the byte stream."""
    if message_transport(faultlab_transport):
        pytest.skip("message transports deliver whole messages: nothing to slice")
    pair = faultlab_lab.pair(
        faultlab_target.service,
        protocol=faultlab_protocol,
        transport=faultlab_transport,
        proxy_framing=None,
    )
    yield pair
    pair.close()


@pytest.mark.faultlab(target=True)
@pytest.mark.parametrize("average_size", [1, 4])  # 1 cuts at every byte: every boundary
def test_sliced_stream_gives_the_same_answers(
    raw_pair: Any, faultlab_target: Any, average_size: int
) -> None:
    faultlab_pair = raw_pair
    for stream in ("upstream", "downstream"):
        faultlab_pair.proxy.add_toxic(
            "slicer",
            stream=stream,
            average_size=average_size,
            size_variation=max(0, average_size - 1),
            delay=0,
        )
    resilient = faultlab_target.resilient_for(faultlab_pair)
    for probe in faultlab_target.probes:
        if not probe.check_result or probe.expected is None:
            continue
        got = faultlab_pair.run(lambda _c, p=probe: faultlab_target.invoke(resilient, p))
        assert faultlab_target.accepts(got, probe.expected), (
            f"{probe.method}{probe.args} returned {got!r} through {average_size}-byte slices, "
            f"expected {probe.expected!r}"
        )
    sliced = [
        e
        for e in faultlab_pair.events(kinds=["fault"])
        if e.get("proxy") == faultlab_pair.name
        and e.get("type") == "slicer"
        and e.get("decision") != "toxicity"
    ]
    assert sliced, "the slicer never touched traffic: the test could not have failed"
