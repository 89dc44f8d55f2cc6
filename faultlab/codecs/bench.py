"""Codec micro-benchmark: encode/decode speed and size on the same values.

Used by ``faultlab bench rpc``. It runs in-process with no I/O, so numbers
are CPU cost only; on a shared 2-vCPU box expect ±30% between runs and
compare codecs within one run, never against another machine's numbers.
Codecs run with ``strict=False`` by default so all of them see the same values;
the ``lossless`` column then shows which ones changed a value (Struct turns
ints into floats).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from typing import Any

from faultlab.codecs.base import Codec, get_codec, same
from faultlab.codecs.errors import CodecUnavailable, EncodeError

__all__ = ["BENCH_CODECS", "default_values", "measure_codecs"]

BENCH_CODECS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("json", {}),
    ("msgpack", {}),
    ("xmlrpc", {"allow_none": True}),
    ("protobuf-struct", {}),
)


def default_values() -> list[Any]:
    """A small mix of RPC-shaped payloads: a call, a record, a float array, a text blob."""
    record = {
        "id": 12345,
        "name": "Ada Lovelace",
        "email": "ada@example.org",
        "active": True,
        "score": 98.25,
        "tags": ["admin", "ops", "dev"],
        "address": {"city": "London", "zip": "NW1", "lat": 51.5, "lon": -0.12},
        "manager": None,
    }
    return [
        {"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 7},
        record,
        [i * 0.5 for i in range(100)],
        "lorem ipsum dolor sit amet " * 40,
    ]


def measure_codecs(
    values: Sequence[Any] | None = None,
    repeat: int = 200,
    *,
    codecs: Sequence[Codec | tuple[str, dict[str, Any]]] = BENCH_CODECS,
    strict: bool = False,
) -> list[dict[str, Any]]:
    """One row per codec: ops/s and µs per op for encode and decode, mean encoded size.

    An op is one value; each row covers ``repeat`` passes over ``values``.
    A codec that cannot be built (protobuf missing) or cannot encode a value
    gets an ``error`` and no timings.
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    items = list(default_values() if values is None else values)
    rows: list[dict[str, Any]] = []
    for spec in codecs:
        try:
            codec = spec if isinstance(spec, Codec) else _build(spec, strict)
        except CodecUnavailable as exc:
            name = spec[0] if isinstance(spec, tuple) else spec.name
            rows.append({"codec": name, "error": str(exc)})
            continue
        rows.append(_measure(codec, items, repeat))
    return rows


def _build(spec: tuple[str, dict[str, Any]], strict: bool) -> Codec:
    name, options = spec
    if "strict" not in options:
        options = {**options, "strict": strict}
    return get_codec(name, **options)


def _measure(codec: Codec, values: list[Any], repeat: int) -> dict[str, Any]:
    row: dict[str, Any] = {"codec": codec.name, "strict": getattr(codec, "strict", None)}
    try:
        encoded = [codec.encode(value) for value in values]
    except EncodeError as exc:
        return {**row, "error": str(exc)}
    decoded = [codec.decode(data) for data in encoded]
    ops = repeat * len(values)
    encode_s = _time(lambda: [codec.encode(value) for value in values], repeat)
    decode_s = _time(lambda: [codec.decode(data) for data in encoded], repeat)
    return {
        **row,
        "values": len(values),
        "ops": ops,
        "encode_ops_per_s": ops / encode_s,
        "encode_us_per_op": encode_s / ops * 1e6,
        "decode_ops_per_s": ops / decode_s,
        "decode_us_per_op": decode_s / ops * 1e6,
        "mean_size_bytes": sum(map(len, encoded)) / len(encoded),
        "sizes": [len(data) for data in encoded],
        "lossless": all(same(a, b) for a, b in zip(values, decoded, strict=True)),
        "error": None,
    }


def _time(run: Any, repeat: int) -> float:
    """Seconds for ``repeat`` calls of ``run`` after one warm-up, GC paused."""
    run()
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(repeat):
            run()
        return max(time.perf_counter() - start, 1e-9)
    finally:
        if enabled:
            gc.enable()
