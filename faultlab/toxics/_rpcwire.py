"""What protocol-aware toxics (rpc_error, fail_first, version_skew) ask of an RPC protocol.

Every answer comes from the protocol's own wire knowledge
(:class:`~faultlab.rpc.base.WireProtocol`): how its frames decode into an editable
:class:`~faultlab.rpc.frames.WireMessage` and re-encode, its native error replies, its
version field. This module only resolves which protocol a toxic speaks and dispatches,
so a new protocol needs no change here.
"""

from __future__ import annotations

from faultlab.rpc.base import WireProtocol, get_protocol, protocol_names
from faultlab.rpc.errors import KINDS
from faultlab.rpc.frames import WireMessage
from faultlab.rpc.messages import ErrorInfo

__all__ = [
    "decode",
    "encode",
    "error_info",
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
