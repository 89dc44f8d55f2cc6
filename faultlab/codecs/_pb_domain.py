"""Hypothesis strategies for any protobuf message class, read from its descriptor.

Imported only by ``ProtobufCodec.domain()``, so neither Hypothesis nor protobuf
is needed at runtime. Each scalar type gets exactly its wire range (a 32-bit
``float`` field draws 32-bit floats), enums draw declared values, and nested
messages stop at ``depth`` so recursive schemas stay finite.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from faultlab.codecs.protobuf import require_protobuf

__all__ = ["messages"]

_I32 = (-(2**31), 2**31 - 1)
_I64 = (-(2**63), 2**63 - 1)


def messages(message_type: type[Any], depth: int = 2) -> st.SearchStrategy[Any]:
    """Messages of ``message_type`` with any subset of fields set (required ones always)."""
    descriptor = message_type.DESCRIPTOR
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in descriptor.fields:
        strategy = _field(field, depth)
        if strategy is None:
            continue
        (required if field.is_required else optional)[field.name] = strategy
    return st.fixed_dictionaries(required, optional=optional).map(
        lambda values: _build(message_type, values)
    )


def _field(field: Any, depth: int) -> st.SearchStrategy[Any] | None:
    if _is_map(field):
        entry = field.message_type
        key = _single(entry.fields_by_name["key"], depth)
        value = _single(entry.fields_by_name["value"], depth)
        if key is None or value is None:
            return None if field.is_required else st.just({})
        return st.dictionaries(key, value, max_size=3)
    single = _single(field, depth)
    if single is None:
        return None
    return st.lists(single, max_size=3) if field.is_repeated else single


def _single(field: Any, depth: int) -> st.SearchStrategy[Any] | None:
    descriptor = require_protobuf("google.protobuf.descriptor").FieldDescriptor
    kind = field.type
    if kind in (descriptor.TYPE_MESSAGE, descriptor.TYPE_GROUP):
        if depth <= 0:
            return None
        factory = require_protobuf("google.protobuf.message_factory")
        return messages(factory.GetMessageClass(field.message_type), depth - 1)
    if kind == descriptor.TYPE_ENUM:
        return st.sampled_from([value.number for value in field.enum_type.values])
    scalars: dict[int, st.SearchStrategy[Any]] = {
        descriptor.TYPE_DOUBLE: st.floats(),
        descriptor.TYPE_FLOAT: st.floats(width=32),
        descriptor.TYPE_BOOL: st.booleans(),
        descriptor.TYPE_STRING: st.text(st.characters(exclude_categories=["Cs"])),
        descriptor.TYPE_BYTES: st.binary(),
        descriptor.TYPE_INT32: st.integers(*_I32),
        descriptor.TYPE_SINT32: st.integers(*_I32),
        descriptor.TYPE_SFIXED32: st.integers(*_I32),
        descriptor.TYPE_INT64: st.integers(*_I64),
        descriptor.TYPE_SINT64: st.integers(*_I64),
        descriptor.TYPE_SFIXED64: st.integers(*_I64),
        descriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
        descriptor.TYPE_FIXED32: st.integers(0, 2**32 - 1),
        descriptor.TYPE_UINT64: st.integers(0, 2**64 - 1),
        descriptor.TYPE_FIXED64: st.integers(0, 2**64 - 1),
    }
    return scalars[kind]


def _is_map(field: Any) -> bool:
    return bool(field.message_type is not None and field.message_type.GetOptions().map_entry)


def _build(message_type: type[Any], values: dict[str, Any]) -> Any:
    message = message_type()
    fields = message_type.DESCRIPTOR.fields_by_name
    for name, value in values.items():
        _assign(message, fields[name], value)
    return message


def _assign(message: Any, field: Any, value: Any) -> None:
    if _is_map(field):
        container = getattr(message, field.name)
        value_is_message = field.message_type.fields_by_name["value"].message_type is not None
        for key, item in value.items():
            if value_is_message:
                container[key].CopyFrom(item)
            else:
                container[key] = item
    elif field.is_repeated:
        getattr(message, field.name).extend(value)
    elif field.message_type is not None:
        sub = getattr(message, field.name)
        sub.SetInParent()
        sub.CopyFrom(value)
    else:
        setattr(message, field.name, value)
