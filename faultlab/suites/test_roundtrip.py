"""Round trip: values of each codec's lossless domain survive the codec, and a real pair.

Compared type-strict and NaN-aware with :func:`faultlab.codecs.same`, never
with ``==`` (``1 == 1.0 == True`` would hide changes).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from faultlab.codecs import explain_difference, get_codec, same

PROTOCOL_CODEC = {
    "jsonrpc": ("json", {}),
    "msgpackrpc": ("msgpack", {}),
    "binrpc": ("msgpack", {}),
    "xmlrpc": ("xmlrpc", {"allow_none": True}),
}
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("codec_name", ["json", "msgpack", "xmlrpc"])
def test_codec_round_trips_its_domain(faultlab_target: Any, codec_name: str) -> None:
    if codec_name not in faultlab_target.codecs:
        pytest.skip(f"target does not use {codec_name}")
    codec = get_codec(codec_name)

    @SETTINGS
    @given(value=codec.domain())
    def check(value: Any) -> None:
        back = codec.decode(codec.encode(value))
        assert same(back, value), explain_difference(back, value)

    check()


@pytest.mark.parametrize("protocol", sorted(PROTOCOL_CODEC))
def test_values_survive_a_real_pair(faultlab_lab: Any, faultlab_target: Any, protocol: str) -> None:
    if protocol not in faultlab_target.protocols or not faultlab_target.roundtrip_method:
        pytest.skip(f"target does not speak {protocol} or has no echo method")
    name, options = PROTOCOL_CODEC[protocol]
    codec = get_codec(name, **options)
    pair = faultlab_lab.pair(faultlab_target.service, protocol=protocol)
    method = faultlab_target.roundtrip_method
    try:

        @SETTINGS
        @given(value=codec.domain())
        def check(value: Any) -> None:
            back = pair.run(lambda c: c.call(method, value), label="roundtrip")
            assert same(back, value), f"{protocol}: {explain_difference(back, value)}"

        check()
    finally:
        pair.close()
