"""Conversions between Python values and protobuf messages, exact or refused.

A value the schema cannot hold exactly raises :class:`Unfit`, never a rounded message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf import message, struct_pb2  # type: ignore[import-untyped]

__all__ = [
    "CONVERSION_ERRORS",
    "Unfit",
    "field_to_python",
    "fill",
    "from_value",
    "params_to_request",
    "reply_to_python",
    "request_to_params",
    "result_to_reply",
    "set_field",
    "to_python",
    "to_value",
]

_VALUE = "google.protobuf.Value"
_STRUCT = "google.protobuf.Struct"
_LIST = "google.protobuf.ListValue"
_EMPTY = "google.protobuf.Empty"
_JSON_TYPES = (_VALUE, _STRUCT, _LIST)
_EXACT_DOUBLE = 2**53


class Unfit(ValueError):
    """A Python value the schema cannot hold exactly (so it must not be sent rounded)."""


def _is_map(field: Any) -> bool:
    return bool(
        field.is_repeated
        and field.message_type is not None
        and field.message_type.GetOptions().map_entry
    )


def to_value(obj: Any) -> Any:
    """A JSON-like Python value as ``google.protobuf.Value`` (ints only up to 2**53)."""
    value = struct_pb2.Value()
    if obj is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        value.bool_value = obj
    elif isinstance(obj, int):
        if abs(obj) > _EXACT_DOUBLE:
            raise Unfit(f"{obj} does not fit a double exactly (google.protobuf.Value)")
        value.number_value = obj
    elif isinstance(obj, float):
        value.number_value = obj
    elif isinstance(obj, str):
        value.string_value = obj
    elif isinstance(obj, Mapping):
        value.struct_value.SetInParent()
        for key, item in obj.items():
            if not isinstance(key, str):
                raise Unfit(f"google.protobuf.Struct keys are strings, not {type(key).__name__}")
            value.struct_value.fields[key].CopyFrom(to_value(item))
    elif isinstance(obj, list | tuple):
        value.list_value.SetInParent()
        for item in obj:
            value.list_value.values.add().CopyFrom(to_value(item))
    else:
        raise Unfit(f"google.protobuf.Value cannot hold a {type(obj).__name__}")
    return value


def from_value(value: Any) -> Any:
    """``google.protobuf.Value`` as Python; every number comes back a float."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {k: from_value(v) for k, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [from_value(v) for v in value.list_value.values]
    return None


def _scalar(field: Any, value: Any) -> Any:
    fd = field
    if fd.type == fd.TYPE_BYTES:
        if not isinstance(value, bytes | bytearray):
            raise Unfit(f"{fd.name} must be bytes, got {type(value).__name__}")
        return bytes(value)
    cpp = fd.cpp_type
    if cpp in (fd.CPPTYPE_INT32, fd.CPPTYPE_INT64, fd.CPPTYPE_UINT32, fd.CPPTYPE_UINT64):
        if isinstance(value, bool) or not isinstance(value, int):
            raise Unfit(f"{fd.name} must be int, got {type(value).__name__}")
        return value
    if cpp in (fd.CPPTYPE_DOUBLE, fd.CPPTYPE_FLOAT):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Unfit(f"{fd.name} must be a number, got {type(value).__name__}")
        if isinstance(value, int) and abs(value) > _EXACT_DOUBLE:
            raise Unfit(f"{fd.name}: {value} does not fit a double exactly")
        return float(value)
    if cpp == fd.CPPTYPE_BOOL:
        if not isinstance(value, bool):
            raise Unfit(f"{fd.name} must be bool, got {type(value).__name__}")
        return value
    if cpp == fd.CPPTYPE_ENUM:
        if isinstance(value, str):
            named = fd.enum_type.values_by_name.get(value)
            if named is None:
                raise Unfit(f"{fd.name}: no enum value {value!r}")
            return named.number
        if isinstance(value, bool) or not isinstance(value, int):
            raise Unfit(f"{fd.name} must be an enum name or number")
        return value
    if not isinstance(value, str):
        raise Unfit(f"{fd.name} must be str, got {type(value).__name__}")
    return value


def _assign(target: Any, value: Any) -> None:
    """Fill the (sub)message ``target`` from ``value``; marks it present."""
    full = target.DESCRIPTOR.full_name
    if isinstance(value, message.Message):
        if value.DESCRIPTOR.full_name != full:
            raise Unfit(f"expected {full}, got {value.DESCRIPTOR.full_name}")
        target.CopyFrom(value)
    elif full == _VALUE:
        target.CopyFrom(to_value(value))
    elif full == _STRUCT:
        if not isinstance(value, Mapping):
            raise Unfit(f"{full} needs a dict, got {type(value).__name__}")
        target.CopyFrom(to_value(value).struct_value)
    elif full == _LIST:
        if not isinstance(value, list | tuple):
            raise Unfit(f"{full} needs a list, got {type(value).__name__}")
        target.CopyFrom(to_value(value).list_value)
    else:
        if not isinstance(value, Mapping):
            raise Unfit(f"{full} needs a dict, got {type(value).__name__}")
        target.SetInParent()
        fill(target, value, strict=True)


def set_field(msg: Any, field: Any, value: Any) -> None:
    """Set one field from a Python value; ``None`` leaves a field with presence unset."""
    name = field.name
    if _is_map(field):
        if not isinstance(value, Mapping):
            raise Unfit(f"{name} needs a dict, got {type(value).__name__}")
        target = getattr(msg, name)
        entry = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            if entry.message_type is not None:
                _assign(target[key], item)
            else:
                target[key] = _scalar(entry, item)
        return
    if field.is_repeated:
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            raise Unfit(f"{name} needs a list, got {type(value).__name__}")
        target = getattr(msg, name)
        for item in value:
            if field.message_type is not None:
                _assign(target.add(), item)
            else:
                target.append(_scalar(field, item))
        return
    if value is None and (field.has_presence or field.message_type is not None):
        if field.message_type is not None and field.message_type.full_name == _VALUE:
            _assign(getattr(msg, name), None)  # a Value field holds null explicitly
        return
    if field.message_type is not None:
        _assign(getattr(msg, name), value)
        return
    if value is None:
        raise Unfit(f"{name} cannot be null")
    setattr(msg, name, _scalar(field, value))


def fill(msg: Any, data: Mapping[str, Any], *, strict: bool) -> None:
    """Set fields by name; ``strict`` refuses names the message lacks, else skips them."""
    fields = msg.DESCRIPTOR.fields_by_name
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            if strict:
                raise Unfit(f"{msg.DESCRIPTOR.full_name} has no field {key!r}")
            continue
        set_field(msg, field, value)


def _python(field: Any, value: Any) -> Any:
    if field.message_type is not None:
        return to_python(value)
    if field.cpp_type == field.CPPTYPE_ENUM:
        named = field.enum_type.values_by_number.get(value)
        return named.name if named is not None else value
    return value


def field_to_python(msg: Any, field: Any) -> Any:
    """One field's Python value; an unset field with presence is ``None``."""
    value = getattr(msg, field.name)
    if _is_map(field):
        entry = field.message_type.fields_by_name["value"]
        return {k: _python(entry, v) for k, v in value.items()}
    if field.is_repeated:
        return [_python(field, v) for v in value]
    if field.has_presence and not msg.HasField(field.name):
        return None
    return _python(field, value)


def to_python(msg: Any) -> Any:
    """A message as Python: JSON types as values, Empty as None, the rest as dicts."""
    full = msg.DESCRIPTOR.full_name
    if full == _VALUE:
        return from_value(msg)
    if full == _STRUCT:
        return {k: from_value(v) for k, v in msg.fields.items()}
    if full == _LIST:
        return [from_value(v) for v in msg.values]
    if full == _EMPTY:
        return None
    return {f.name: field_to_python(msg, f) for f in msg.DESCRIPTOR.fields}


def reply_to_python(msg: Any) -> Any:
    """A reply as the method's result: a single-field reply is just that field."""
    fields = msg.DESCRIPTOR.fields
    if msg.DESCRIPTOR.full_name not in _JSON_TYPES and len(fields) == 1:
        return field_to_python(msg, fields[0])
    return to_python(msg)


def request_to_params(msg: Any) -> list[Any] | dict[str, Any]:
    """A request as call params; unset fields with presence are left to Python defaults."""
    full = msg.DESCRIPTOR.full_name
    if full in _JSON_TYPES:
        return [to_python(msg)]
    params: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        if field.is_repeated or not field.has_presence or msg.HasField(field.name):
            params[field.name] = field_to_python(msg, field)
    return params


def params_to_request(cls: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Call arguments as a request: positional args fill fields in declaration order."""
    msg = cls()
    full = msg.DESCRIPTOR.full_name
    if full in _JSON_TYPES:
        values = [*args, *kwargs.values()]
        if len(values) != 1:
            raise Unfit(f"{full} carries exactly one value, got {len(values)}")
        _assign(msg, values[0])
        return msg
    names = [f.name for f in msg.DESCRIPTOR.fields]
    if len(args) > len(names):
        raise Unfit(f"{full} takes at most {len(names)} params ({names}), got {len(args)}")
    data = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key in data:
            raise Unfit(f"param {key!r} given twice")
        data[key] = value
    fill(msg, data, strict=True)
    return msg


def result_to_reply(cls: Any, result: Any) -> Any:
    """A method's result as its reply: a dict fills fields, else the single field holds it."""
    msg = cls()
    full = msg.DESCRIPTOR.full_name
    if full == _EMPTY:
        return msg
    if full in _JSON_TYPES:
        _assign(msg, result)
        return msg
    fields = msg.DESCRIPTOR.fields
    names = {f.name for f in fields}
    if isinstance(result, Mapping) and result and set(result) <= names:
        fill(msg, result, strict=True)
    elif len(fields) == 1:
        set_field(msg, fields[0], result)
    elif isinstance(result, Mapping) and set(result) & names:
        fill(msg, result, strict=False)  # a newer service's extra keys: this schema's view
    else:
        raise Unfit(f"cannot fit a {type(result).__name__} into {full}")
    return msg


CONVERSION_ERRORS = (Unfit, ValueError, TypeError, OverflowError, RecursionError)
