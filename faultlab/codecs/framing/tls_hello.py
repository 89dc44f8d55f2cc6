"""Read a TLS ClientHello's server name (SNI) and ALPN list from the first bytes of a connection.

Why: an intercepting proxy must know which name the client asked for (to present a
certificate for it) and which application protocols it offers (to ask the upstream for the
same and answer with the upstream's choice) *before* it starts its own TLS with the client.
Sans-IO: bytes in, a :class:`ClientHello` (or "need more") out; a bounded read.
"""

from __future__ import annotations

from dataclasses import dataclass

from faultlab.errors import RemoteProtocolError

__all__ = ["MAX_HELLO", "ClientHello", "NotTLS", "parse_client_hello"]

MAX_HELLO = 64 * 1024
"""The largest ClientHello read (a post-quantum key share makes one ~1.5 KiB; 64 KiB is the
most a handshake message of sane size needs)."""
_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_EXT_SNI = 0x0000
_EXT_ALPN = 0x0010


class NotTLS(RemoteProtocolError):
    """The client's first bytes are not a TLS ClientHello (plain HTTP to a TLS port, say)."""


@dataclass(frozen=True)
class ClientHello:
    server_name: str | None
    alpn: tuple[str, ...]


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "big")


def _handshake_bytes(data: bytes) -> bytes | None:
    """The handshake layer's bytes across whole TLS records (None: need more)."""
    out = bytearray()
    at = 0
    while at + 5 <= len(data):
        kind = data[at]
        if kind != _HANDSHAKE:
            raise NotTLS(f"a TLS record of type {kind} came before the ClientHello")
        length = _u16(data, at + 3)
        if at + 5 + length > len(data):
            break
        out += data[at + 5 : at + 5 + length]
        at += 5 + length
        if len(out) >= 4:
            need = int.from_bytes(out[1:4], "big")
            if len(out) >= 4 + need:
                return bytes(out)
    return None


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The ClientHello at the start of ``data``, or None while more bytes are needed.

    Raises :class:`NotTLS` for anything else, and past :data:`MAX_HELLO` bytes."""
    if not data:
        return None
    if data[0] != _HANDSHAKE:
        shown = data[:16].decode("ascii", "replace")
        word = shown.split(" ", 1)[0]
        hint = " (plain HTTP?)" if word.isalpha() and word.isupper() else ""
        raise NotTLS(f"the client did not start a TLS handshake: it sent {shown!r}{hint}")
    if len(data) >= 3 and data[1] != 3:
        raise NotTLS(f"not a TLS record: version byte {data[1]:#x}")
    hello = _handshake_bytes(data)
    if hello is None:
        if len(data) > MAX_HELLO:
            raise NotTLS(f"no whole ClientHello within {MAX_HELLO} bytes")
        return None
    if hello[0] != _CLIENT_HELLO:
        raise NotTLS(f"the first handshake message is of type {hello[0]}, not a ClientHello")
    body = hello[4 : 4 + int.from_bytes(hello[1:4], "big")]
    try:
        return _read_body(body)
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise NotTLS(f"a malformed ClientHello: {exc}") from None


def _read_body(body: bytes) -> ClientHello:
    at = 2 + 32  # client_version, random
    at += 1 + body[at]  # session id
    at += 2 + _u16(body, at)  # cipher suites
    at += 1 + body[at]  # compression methods
    if at >= len(body):
        return ClientHello(None, ())  # no extensions (an old client)
    end = at + 2 + _u16(body, at)
    if end > len(body):
        raise ValueError("extensions run past the message")
    at += 2
    name: str | None = None
    alpn: tuple[str, ...] = ()
    while at + 4 <= end:
        ext, length = _u16(body, at), _u16(body, at + 2)
        data = body[at + 4 : at + 4 + length]
        if len(data) != length:
            raise ValueError("an extension runs past the message")
        if ext == _EXT_SNI and len(data) >= 5 and data[2] == 0:
            size = _u16(data, 3)
            name = data[5 : 5 + size].decode("ascii").lower() or None
        elif ext == _EXT_ALPN and len(data) >= 2:
            protocols: list[str] = []
            pos = 2
            while pos < min(len(data), 2 + _u16(data, 0)):
                size = data[pos]
                protocols.append(data[pos + 1 : pos + 1 + size].decode("ascii"))
                pos += 1 + size
            alpn = tuple(protocols)
        at += 4 + length
    return ClientHello(name, alpn)
