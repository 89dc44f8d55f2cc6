"""Protocol Buffers (binary wire format); ``protobuf`` is imported only when used.

Two codecs:

- ``ProtobufCodec(message_type)`` carries messages of one generated class.
  Domain: every message of that class (with its proto2 required fields set).
  Binary protobuf is lossless for what a message can hold; the losses happen
  at assignment (a ``float`` field rounds to 32 bits, out-of-range ints raise),
  so they are the schema's, not the codec's.
- ``StructCodec()`` carries JSON-like Python values as ``google.protobuf.Value``
  (a ``Struct`` is a ``Value`` holding a dict). Domain: ``None``, ``bool``,
  any ``float`` (binary doubles keep NaN, inf and -0.0), ``str`` without lone
  surrogates, ``list``, ``dict`` with ``str`` keys, nesting at most 33. **Every
  number is a double, so an int comes back as a float**: strict mode refuses
  ints (``strict=False`` converts them, losing precision above 2**53).
  The depth limit is upb's 100 message levels: each dict costs three
  (Value, Struct, map entry), so 34 nested dicts encode but never decode.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from faultlab.codecs._rules import ValueRules, nested_list
from faultlab.codecs.base import DEFAULT_MAX_SIZE, Codec, OutsideExample, ValueCodec
from faultlab.codecs.errors import CodecUnavailable, DecodeError, EncodeError
from faultlab.errors import LocalProtocolError

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["STRUCT_MAX_DEPTH", "ProtobufCodec", "StructCodec", "require_protobuf"]

STRUCT_MAX_DEPTH = 33
"""Deepest list/dict nesting a ``google.protobuf.Value`` decodes under upb's limit."""

_SURROGATES = re.compile("[\ud800-\udfff]")
_INSTALL_HINT = "pip install 'faultlab[grpc]' (or just 'protobuf')"


def require_protobuf(module: str = "google.protobuf.message") -> ModuleType:
    """Import a protobuf module, or raise :class:`CodecUnavailable` saying how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise CodecUnavailable(f"the protobuf codecs need protobuf: {_INSTALL_HINT}") from exc


def _protobuf_errors() -> tuple[type[BaseException], ...]:
    message = require_protobuf()
    return (message.Error, ValueError, TypeError, RuntimeError, RecursionError, OverflowError)


class ProtobufCodec(Codec):
    """Messages of one class; ``deterministic`` sorts map entries so bytes are stable."""

    name: ClassVar[str] = "protobuf"

    def __init__(
        self,
        message_type: type[Any] | None = None,
        *,
        deterministic: bool = True,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        if message_type is None or not hasattr(message_type, "DESCRIPTOR"):
            raise LocalProtocolError(
                "ProtobufCodec needs message_type=<a generated protobuf message class>"
            )
        self._errors = _protobuf_errors()
        self.message_type = message_type
        self.deterministic = deterministic
        self.max_size = max_size

    def encode(self, value: Any) -> bytes:
        if type(value) is not self.message_type:
            raise EncodeError(
                f"{self.name}: expected {self.message_type.__name__}, got {type(value).__name__}"
            )
        if not value.IsInitialized():
            missing = value.FindInitializationErrors()
            raise EncodeError(f"{self.name}: required fields missing: {missing}")
        try:
            data: bytes = value.SerializeToString(deterministic=self.deterministic)
        except self._errors as exc:
            raise EncodeError(f"{self.name} cannot encode: {exc}") from exc
        return data

    def decode(self, data: bytes) -> Any:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise LocalProtocolError(f"decode expects bytes, got {type(data).__name__}")
        if len(data) > self.max_size:
            raise DecodeError(f"{self.name}: {len(data)} bytes exceed max_size {self.max_size}")
        try:
            message = self.message_type.FromString(bytes(data))
        except self._errors as exc:
            raise DecodeError(f"{self.name}: malformed input: {exc}") from exc
        if not message.IsInitialized():
            raise DecodeError(f"{self.name}: required fields missing")
        return message

    def domain(self) -> SearchStrategy[Any]:
        from faultlab.codecs._pb_domain import messages

        return messages(self.message_type)

    def outside_domain_examples(self) -> list[OutsideExample]:
        struct_pb2 = require_protobuf("google.protobuf.struct_pb2")
        other = struct_pb2.ListValue if self.message_type is struct_pb2.Value else struct_pb2.Value
        return [
            OutsideExample(other(), EncodeError, "another message type"),
            OutsideExample({"a": 1}, EncodeError, "not a message"),
            OutsideExample(b"", EncodeError, "bytes are not a message"),
        ]

    def __repr__(self) -> str:
        return f"<ProtobufCodec {self.message_type.__name__}>"


class StructCodec(ValueCodec):
    """JSON-like values through ``google.protobuf.Value`` (what ``Struct`` fields hold)."""

    name: ClassVar[str] = "protobuf-struct"

    def __init__(self, **options: Any) -> None:
        self._value_type: Any = require_protobuf("google.protobuf.struct_pb2").Value
        self.encode_errors = (*ValueCodec.encode_errors, *_protobuf_errors())
        self.decode_errors = (*ValueCodec.decode_errors, *_protobuf_errors())
        options.setdefault("max_depth", STRUCT_MAX_DEPTH)
        super().__init__(**options)

    def make_rules(self) -> ValueRules:
        return ValueRules(
            leaf_types=frozenset({type(None), bool, float, str}),
            key_types=frozenset({str}),
            max_depth=self.max_depth,
            bad_text=_SURROGATES,
            hints={
                int: "Value numbers are doubles: comes back as float",
                tuple: "ListValue comes back as list",
                bytes: "Value has no bytes kind",
            },
        )

    def _encode(self, value: Any) -> bytes:
        message = self._value_type()
        _fill(message, value)
        data: bytes = message.SerializeToString()
        return data

    def _decode(self, data: bytes) -> Any:
        return _unfill(self._value_type.FromString(data))

    def domain(self) -> SearchStrategy[Any]:
        from hypothesis import strategies as st

        text = st.text(st.characters(exclude_categories=["Cs"]))
        leaves = st.none() | st.booleans() | st.floats() | text
        return st.recursive(
            leaves,
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4)
            ),
            max_leaves=12,
        )

    def outside_domain_examples(self) -> list[OutsideExample]:
        return [
            OutsideExample(1, EncodeError, "would come back as 1.0"),
            OutsideExample({"n": 2**53 + 1}, EncodeError, "would come back rounded"),
            OutsideExample(b"x", EncodeError, "no bytes kind"),
            OutsideExample((1.0,), EncodeError, "would come back as [1.0]"),
            OutsideExample({1: 2.0}, EncodeError, "Struct keys are strings"),
            OutsideExample("\ud800", EncodeError, "lone surrogate is not valid UTF-8"),
            OutsideExample(nested_list(self.max_depth + 1), EncodeError, "deeper than max_depth"),
        ]


def _fill(out: Any, value: Any) -> None:
    """Set ``out`` (a Value) to ``value``; ints become doubles (strict mode refused them)."""
    kind = type(value)
    if value is None:
        out.null_value = 0
    elif kind is bool:
        out.bool_value = value
    elif kind is float or kind is int:
        out.number_value = value
    elif kind is str:
        out.string_value = value
    elif kind is dict:
        struct = out.struct_value
        struct.SetInParent()
        fields = struct.fields
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"Struct keys must be str, not {type(key).__name__}")
            _fill(fields[key], item)
    elif kind is list or kind is tuple:
        values = out.list_value
        values.SetInParent()
        for item in value:
            _fill(values.values.add(), item)
    else:
        raise TypeError(f"google.protobuf.Value cannot hold {kind.__name__}")


def _unfill(message: Any) -> Any:
    kind = message.WhichOneof("kind")
    if kind == "number_value":
        return message.number_value
    if kind == "string_value":
        return message.string_value
    if kind == "bool_value":
        return message.bool_value
    if kind == "null_value":
        return None
    if kind == "struct_value":
        return {key: _unfill(item) for key, item in message.struct_value.fields.items()}
    if kind == "list_value":
        return [_unfill(item) for item in message.list_value.values]
    raise ValueError("google.protobuf.Value has no kind set")
