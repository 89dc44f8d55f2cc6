"""What protocol-aware toxics (rpc_error, fail_first, version_skew) ask of an RPC protocol.

Every answer comes from the protocol's own wire knowledge
(:class:`~faultlab.rpc.base.WireProtocol`): how its frames decode into an editable
:class:`~faultlab.rpc.frames.WireMessage` and re-encode, its native error replies, its
version field. This module only resolves which protocol a toxic speaks and dispatches,
so a new protocol needs no change here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from faultlab.rpc.base import WireProtocol, get_protocol, protocol_names
from faultlab.rpc.errors import KINDS
from faultlab.rpc.frames import Item, WireMessage, http_reply, parse_http
from faultlab.rpc.messages import ErrorInfo

__all__ = [
    "BatchMerge",
    "decode",
    "encode",
    "error_info",
    "error_items",
    "error_reply",
    "protocol_reason",
    "protocols",
    "resolve_protocol",
    "wire_protocol",
]


def protocols() -> tuple[str, ...]:
    """The registered protocols whose frames the proxy can read."""
    return tuple(n for n in protocol_names() if get_protocol(n).frames_readable)


def resolve_protocol(attribute: str, proxy_protocol: str | None) -> str | None:
    """The toxic's own ``protocol`` attribute, else the proxy's declared one."""
    return attribute or proxy_protocol or None


def wire_protocol(name: str) -> WireProtocol:
    return get_protocol(name)


def protocol_reason(protocol: str | None, framing: str | None, message_based: bool) -> str | None:
    """Why frames of ``protocol`` cannot be read on such a proxy, or ``None``."""
    readable = protocols()
    if protocol is None:
        return (
            "it needs the RPC protocol: set its 'protocol' attribute "
            f"({'|'.join(readable)}) or create the proxy with protocol=..."
        )
    if protocol not in protocol_names():
        return f"protocol {protocol!r} is not supported; choose from {', '.join(readable)}"
    return get_protocol(protocol).frame_reason(framing, message_based)


def error_info(kind: str, code: int, message: str) -> ErrorInfo:
    """The error to inject: ``code`` 0 means the kind's standard code."""
    cls = KINDS[kind]
    return ErrorInfo(
        kind, code or cls.default_code, message or f"{kind.replace('_', ' ')} (injected)"
    )


def decode(protocol: str, data: bytes, *, http: bool, request: bool) -> WireMessage | None:
    """The frame as an editable message, or ``None`` if it is not a ``request``/reply of it."""
    return get_protocol(protocol).read_frame(data, request=request, http=http)


def encode(message: WireMessage) -> bytes:
    """The frame for ``message`` (after edits), in its protocol and HTTP carriage."""
    return get_protocol(message.protocol).write_frame(message)


def error_reply(message: WireMessage, info: ErrorInfo) -> bytes | None:
    """What the server would answer to the request(s) in ``message`` with error ``info``;
    for a reply, the reply turned into ``info`` (ids and version kept)."""
    return get_protocol(message.protocol).error_reply(message, info)


# ---- part of a batch answered by the proxy, the rest by the server ---------------------------
def error_items(protocol: str, items: list[Item], info: ErrorInfo) -> list[Item]:
    """The reply items the server would send for the calls in ``items`` failing with
    ``info`` (notifications get none), read back from the protocol's own error body."""
    body = get_protocol(protocol).error_body(WireMessage(protocol, True, items, batch=True), info)
    if body is None:
        return []
    reply = decode(protocol, body, http=False, request=False)
    return [] if reply is None else reply.items


def _key(rpc_id: Any) -> str:
    """An RPC id as a dict key (ids are JSON values: compare them as JSON)."""
    return json.dumps(rpc_id, sort_keys=True, default=repr)


@dataclass(frozen=True)
class BatchMerge:
    """Merges the server's reply to the entries of a batch it was sent with the errors the
    proxy answered the other entries with: one batch reply, in the request's order.

    ``entries`` lists the request's calls that expect a reply, in order, each with its id
    and the error item injected for it (``None``: the server answers it). Used as a
    :attr:`~faultlab.toxics.base.Chunk.reply_edit`: over HTTP the reply is the one in the
    request's place; otherwise it is the first batch reply carrying a served entry's id.
    """

    protocol: str
    entries: tuple[tuple[Any, Item | None], ...]
    http: bool

    @property
    def errors(self) -> list[Item]:
        return [error for _, error in self.entries if error is not None]

    def errors_only(self) -> bytes:
        """The batch reply when the server answers nothing (every entry it got was a
        notification): the injected errors alone, without HTTP."""
        return encode(WireMessage(self.protocol, False, self.errors, batch=True))

    def __call__(self, data: bytes) -> bytes | None:
        """``data`` (the server's reply) merged with the errors; ``None``: not this batch's
        reply (not HTTP), or one that cannot be merged (HTTP: forwarded as it is)."""
        reply = decode(self.protocol, data, http=self.http, request=False)
        served = {_key(rid) for rid, error in self.entries if error is None}
        if reply is None:
            if not self.http:
                return None
            carriage = parse_http(data, False)
            status = getattr(carriage.head, "status_code", 0) if carriage is not None else 0
            if carriage is None or not 200 <= status < 300 or carriage.body.strip():
                return None  # the server failed the whole request: its answer stands
            # the server had nothing to say (every entry it got was a notification)
            content_type = get_protocol(self.protocol).content_type
            return http_reply(200, self.errors_only(), content_type)
        if not reply.batch:
            return None  # one reply for the whole batch (it was refused): it stands
        if not self.http and not any(_key(item.id) in served for item in reply.items):
            return None  # another request's reply
        by_id: dict[str, Item] = {}
        others: list[Item] = []
        for item in reply.items:
            key = _key(item.id)
            if key in served and key not in by_id:
                by_id[key] = item
            else:
                others.append(item)
        items: list[Item] = []
        for rid, error in self.entries:
            if error is not None:
                items.append(error)
            elif (found := by_id.pop(_key(rid), None)) is not None:
                items.append(found)
        reply.items = [*items, *by_id.values(), *others]
        return encode(reply)
