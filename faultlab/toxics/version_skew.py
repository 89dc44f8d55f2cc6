"""``version_skew``: make one peer look like another version: a header byte or a schema field.

Why: rolling upgrades put v1 clients in front of v2 servers (and back), and
the only acceptable outcomes are a typed :class:`~faultlab.rpc.VersionMismatch`
or a compatible answer, never a silently wrong value. With the proxy's
framing (or a message transport) and a protocol, each frame is decoded:

- ``to_version`` (binrpc only) rewrites the header's version byte: the server
  answers ``version_mismatch``, or the client refuses a reply of another
  version, both typed;
- ``drop_field`` / ``rename_field="old:new"`` remove or rename a field (a
  dotted path) in the params of requests (``upstream``) or the results of
  replies (``downstream``), then re-encode with the protocol's codec.

Frames it does not change pass byte for byte; every decision is journaled.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from faultlab.toxics import _rpcwire as wire
from faultlab.toxics._common import check_choice
from faultlab.toxics.base import (
    Attr,
    Chunk,
    Emit,
    InvalidToxic,
    Toxic,
    ToxicContext,
    register_toxic,
)

__all__ = ["VersionSkew", "edit_field"]


def edit_field(value: Any, path: str, new_name: str | None) -> bool:
    """Drop (``new_name`` None) or rename the field at dotted ``path``; True if it was there.

    Lists are searched element by element (positional params, lists of records).
    """
    if isinstance(value, list):
        found = False
        for element in value:  # every element, not just the first match
            found = edit_field(element, path, new_name) or found
        return found
    if not isinstance(value, dict):
        return False
    head, _, rest = path.partition(".")
    if head not in value:
        return False
    if rest:
        return edit_field(value[head], rest, new_name)
    field = value.pop(head)
    if new_name is not None:
        value[new_name] = field
    return True


def _version_fields() -> str:
    """``binrpc's header version byte`` (and any other protocol's version field)."""
    fields = []
    for name in wire.protocols():
        field = wire.wire_protocol(name).version_field
        if field is not None:
            fields.append(f"{name}'s {field}")
    return " or ".join(fields) or "a protocol version field"


@register_toxic
class VersionSkew(Toxic):
    type_name = "version_skew"
    description = "rewrite the binrpc version byte, or drop/rename a schema field"
    needs_frames = True
    attributes_spec = {
        "protocol": Attr(str, "", help="jsonrpc|xmlrpc|msgpackrpc|binrpc|rest; default: proxy's"),
        "to_version": Attr(
            int, -1, -1, 255, "binrpc header version to write (-1: keep)", options=(2, 0, 255)
        ),
        "drop_field": Attr(str, "", help="dotted path of a field to remove"),
        "rename_field": Attr(str, "", help="'old:new': dotted path, new last name"),
        "method": Attr(str, "*", help="glob over method names (upstream only)"),
    }

    def validate(self, attributes: dict[str, Any]) -> None:
        if attributes["protocol"]:
            check_choice(self.type_name, "protocol", attributes["protocol"], wire.protocols())
        rename = attributes["rename_field"]
        if rename:
            old, sep, new = rename.partition(":")
            if not sep or not old or not new or ":" in new or "." in new:
                raise InvalidToxic(
                    f"{self.type_name}: rename_field must be 'old.path:new_name', got {rename!r}"
                )
        if attributes["to_version"] < 0 and not attributes["drop_field"] and not rename:
            raise InvalidToxic(
                f"{self.type_name}: set to_version, drop_field or rename_field (nothing to skew)"
            )

    def unsupported_reason(
        self, *, stream: str, framing: str | None, protocol: str | None, message_based: bool
    ) -> str | None:
        resolved = wire.resolve_protocol(self.attributes["protocol"], protocol)
        reason = wire.protocol_reason(resolved, framing, message_based)
        if reason is not None:
            return reason
        assert resolved is not None  # protocol_reason refuses a missing protocol
        if (
            self.attributes["to_version"] >= 0
            and wire.wire_protocol(resolved).version_field is None
        ):
            return (
                f"to_version rewrites {_version_fields()}; {resolved} has none "
                "(use drop_field or rename_field)"
            )
        if stream == "downstream" and self.attributes["method"] != "*":
            return "replies carry no method name: on the downstream stream 'method' must be '*'"
        return None

    async def process(self, ctx: ToxicContext, chunk: Chunk, emit: Emit) -> None:
        attrs = self.attributes
        protocol = wire.resolve_protocol(attrs["protocol"], ctx.protocol)
        request = ctx.direction == "upstream"
        message = (
            None
            if protocol is None
            else wire.decode(protocol, chunk.data, http=ctx.framing == "http", request=request)
        )
        if message is None:
            ctx.record("pass", chunk, reason="not a message of the protocol")
            await emit(chunk)
            return
        if request and not any(fnmatchcase(i.method or "", attrs["method"]) for i in message.items):
            ctx.record("pass", chunk, reason="method")
            await emit(chunk)
            return
        changes: list[str] = []
        fields_changed = False
        path, new_name = attrs["drop_field"], None
        if attrs["rename_field"]:
            path, _, new_name = attrs["rename_field"].partition(":")
        for item in message.items:
            if request:
                target = item.params
            elif item.error is None:
                target = item.result
            else:
                continue
            if path and edit_field(target, path, new_name):
                fields_changed = True
        if fields_changed:
            changes.append(f"{'rename' if new_name else 'drop'} {path}")
        version = attrs["to_version"]
        old_version = message.version
        if version >= 0 and old_version is not None and old_version != version:
            changes.append(f"version {old_version}->{version}")
            message.version = version
        if not changes:
            ctx.record("pass", chunk, reason="nothing to change")
            await emit(chunk)
            return
        if fields_changed:
            chunk.data = wire.encode(message)
        else:  # only the version field: patch it, keep every other byte
            chunk.data = wire.wire_protocol(message.protocol).rewrite_version(
                chunk.data, message, version
            )
        ctx.record("skew", chunk, changes=changes)
        await emit(chunk)
