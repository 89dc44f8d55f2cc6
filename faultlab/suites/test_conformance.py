"""Conformance through a clean proxy: the proxy itself changes nothing."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from faultlab.suites._support import equivalent


@pytest.mark.faultlab(target=True)
def test_clean_proxy_changes_nothing(faultlab_pair: Any, faultlab_target: Any) -> None:
    target = faultlab_target
    resilient = target.resilient_for(faultlab_pair)
    direct = target.direct_for(faultlab_pair)
    with contextlib.ExitStack() as stack:
        if direct is None:
            faultlab_direct = stack.enter_context(faultlab_pair.direct_client())
        for probe in target.probes:
            through = faultlab_pair.run(
                lambda _c, p=probe: target.invoke(resilient, p), label=probe.method
            )
            if not probe.check_result:
                continue
            if direct is None:
                straight = faultlab_direct.call(probe.method, *probe.args)
            else:
                straight = target.invoke(direct, probe)
            assert equivalent(through, straight), (
                f"{probe.method}{probe.args}: {through!r} through the proxy, {straight!r} direct"
            )
            if probe.expected is not None:
                assert equivalent(through, probe.expected), (
                    f"{probe.method}{probe.args} returned {through!r}, expected {probe.expected!r}"
                )
    seen = [
        e
        for e in faultlab_pair.events(kinds=["connection"])
        if e.get("proxy") == faultlab_pair.name
    ]
    assert seen, "no traffic went through the proxy: the test could not have failed"
