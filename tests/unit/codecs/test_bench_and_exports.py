"""The codec benchmark runs and reports what it promises; the public names exist."""

from __future__ import annotations

import faultlab.codecs
from faultlab.codecs.bench import measure_codecs


def test_measure_codecs_reports_every_codec() -> None:
    rows = measure_codecs([{"a": [1.5, "x", True]}, [0.25] * 10], repeat=3)
    by_name = {row["codec"]: row for row in rows}
    assert set(by_name) >= {"json", "msgpack", "xmlrpc"}
    for row in rows:
        if row["error"] is None:
            assert row["encode_ops_per_s"] > 0
            assert row["decode_us_per_op"] > 0
            assert row["mean_size_bytes"] > 0
    assert by_name["json"]["lossless"] is True


def test_struct_is_flagged_lossy_on_ints() -> None:
    rows = measure_codecs([{"n": 1}], repeat=1, codecs=[("protobuf-struct", {})])
    assert rows[0].get("lossless") is False or "protobuf" in rows[0]["error"]


def test_strict_bench_reports_the_domain_error() -> None:
    rows = measure_codecs([(1, 2)], repeat=1, codecs=[("json", {})], strict=True)
    assert "tuple" in rows[0]["error"]


def test_public_names() -> None:
    for name in faultlab.codecs.__all__:
        assert hasattr(faultlab.codecs, name), name
    assert sorted(faultlab.codecs.__all__) == sorted(set(faultlab.codecs.__all__))
