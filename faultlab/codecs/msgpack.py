"""MessagePack via the ``msgpack`` package (the msgpack-RPC payload format).

Domain: ``None``, ``bool``, ``int`` in [-2**63, 2**64-1], any ``float``
(float64: NaN, inf and -0.0 survive), ``str`` without lone surrogates,
``bytes`` (bin type), ``msgpack.ExtType``, UTC ``datetime`` (as the Timestamp
extension, microsecond precision), ``list``, and ``dict`` with keys of type
``str``, ``bytes``, ``int``, ``float``, ``bool`` or ``None``.

Options are fixed for a lossless round trip: ``use_bin_type=True`` and
``raw=False`` keep bytes and str apart; ``strict_map_key=False`` lets int keys
decode (msgpack packs them but by default refuses them back); arrays decode
as lists, so tuples are refused. With ``datetimes=False`` the Timestamp
extension decodes as ``msgpack.Timestamp`` instead and datetimes are refused.
A peer's Timestamp with sub-microsecond digits decodes truncated to
microseconds (Python's datetime resolution).
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any, ClassVar

import msgpack  # type: ignore[import-untyped]

from faultlab.codecs._rules import ValueRules, nested_list
from faultlab.codecs.base import OutsideExample, ValueCodec
from faultlab.codecs.errors import EncodeError
from faultlab.codecs.json import SURROGATES

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["INT_RANGE", "MsgpackCodec", "unpacker_options"]

INT_RANGE = (-(2**63), 2**64 - 1)
"""msgpack ints are int64 or uint64; anything else raises OverflowError on pack."""


def unpacker_options(*, datetimes: bool = True) -> dict[str, Any]:
    """The Unpacker options that make decoding the inverse of our packing."""
    return {
        "raw": False,
        "strict_map_key": False,
        "use_list": True,
        "timestamp": 3 if datetimes else 0,
    }


def _utc_only(value: _dt.datetime) -> str | None:
    if type(value.tzinfo) is not _dt.timezone or value.utcoffset() != _dt.timedelta(0):
        return "only UTC datetimes survive (the Timestamp extension carries no offset)"
    if value.fold:
        return "fold=1 is not carried (comes back as fold=0)"
    return None


class MsgpackCodec(ValueCodec):
    """msgpack with the options above; ``datetimes`` maps UTC datetimes to Timestamps."""

    name: ClassVar[str] = "msgpack"
    encode_errors = (*ValueCodec.encode_errors, msgpack.PackException)
    decode_errors = (*ValueCodec.decode_errors, msgpack.UnpackException)

    def __init__(self, *, datetimes: bool = True, **options: Any) -> None:
        self.datetimes = datetimes
        self._unpack_options = unpacker_options(datetimes=datetimes)
        super().__init__(**options)

    def make_rules(self) -> ValueRules:
        time_type: type = _dt.datetime if self.datetimes else msgpack.Timestamp
        scalar_keys = {str, bytes, int, float, bool, type(None)}
        return ValueRules(
            leaf_types=frozenset({*scalar_keys, msgpack.ExtType, time_type}),
            key_types=frozenset(scalar_keys),
            max_depth=self.max_depth,
            int_range=INT_RANGE,
            bad_text=SURROGATES,
            extra={_dt.datetime: _utc_only},
            hints={
                tuple: "msgpack arrays come back as list",
                bytearray: "comes back as bytes",
                set: "msgpack has no set type",
                frozenset: "msgpack has no set type",
                _dt.datetime: "datetimes=False: decodes as msgpack.Timestamp",
                msgpack.Timestamp: "datetimes=True: decodes as datetime",
            },
        )

    def _encode(self, value: Any) -> bytes:
        packed: bytes = msgpack.packb(value, use_bin_type=True, datetime=self.datetimes)
        return packed

    def _decode(self, data: bytes) -> Any:
        return msgpack.unpackb(data, **self._unpack_options)

    def domain(self) -> SearchStrategy[Any]:
        from hypothesis import strategies as st

        text = st.text(st.characters(exclude_categories=["Cs"]))
        ints = st.integers(*INT_RANGE)
        keys = text | st.binary(max_size=8) | ints | st.floats() | st.booleans() | st.none()
        ext = st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=16))
        times: SearchStrategy[Any]
        if self.datetimes:
            times = st.datetimes(timezones=st.just(_dt.UTC)).map(lambda d: d.replace(fold=0))
        else:
            times = st.builds(
                msgpack.Timestamp, st.integers(-(2**63), 2**63 - 1), st.integers(0, 10**9 - 1)
            )
        leaves = st.none() | st.booleans() | ints | st.floats() | text | st.binary() | ext | times
        return st.recursive(
            leaves,
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)
            ),
            max_leaves=12,
        )

    def outside_domain_examples(self) -> list[OutsideExample]:
        naive = _dt.datetime(2024, 1, 2, 3, 4, 5)
        offset = naive.replace(tzinfo=_dt.timezone(_dt.timedelta(hours=5, minutes=30)))
        return [
            OutsideExample(2**64, EncodeError, "above uint64"),
            OutsideExample(-(2**63) - 1, EncodeError, "below int64"),
            OutsideExample((1, 2), EncodeError, "would come back as [1, 2]"),
            OutsideExample("\ud800", EncodeError, "lone surrogate is not valid UTF-8"),
            OutsideExample({(1, 2): 3}, EncodeError, "tuple key decodes as unhashable list"),
            OutsideExample(naive, EncodeError, "naive datetime has no instant"),
            OutsideExample(offset, EncodeError, "offset would come back as UTC"),
            OutsideExample(bytearray(b"x"), EncodeError, "would come back as bytes"),
            OutsideExample({1, 2}, EncodeError, "msgpack has no set"),
            OutsideExample(nested_list(self.max_depth + 1), EncodeError, "deeper than max_depth"),
        ]
