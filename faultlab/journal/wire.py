"""How an exchange seen on the wire becomes an attempt's outcome: the documented mapping.

The proxy journals each HTTP exchange it relays (``wire_request`` / ``wire_response``);
oracles read them as attempts when the client journals none (a black-box client such as
``requests``). An exchange's error *kind* is a string like every other kind in the journal,
so a declared policy names what it retries the same way for both:

- an HTTP status of 400 or more is the kind ``http_<status>`` (``http_503``);
- a JSON-RPC / XML-RPC error carried in a 200 is the RPC kind (``unavailable``,
  ``invalid_params``), as the protocol reads it;
- a gRPC status other than OK is the kind ``grpc_<name>`` (``grpc_unavailable``,
  ``grpc_resource_exhausted``), read from the trailers the client got;
- no response at all is a transport kind: ``TransportTimeout`` when the client closed the
  connection while waiting (it gave up), ``EndOfStream`` when the proxy or the server
  closed it, ``BrokenResourceError`` when it was reset, and ``EndOfStream`` when the
  proxy could not reach the server (the client's connection was closed at once).

Transient (a retry may cure it): 5xx, 429, gRPC UNAVAILABLE, RESOURCE_EXHAUSTED and ABORTED,
and every connection-level failure; every other 4xx and gRPC status is permanent. Override
per policy: :class:`~faultlab.oracles.policies.RetryPolicy`'s
``retry_on`` is what the client is declared to retry, whatever this mapping calls transient.

Credentials are never journaled: a request carrying an ``Authorization`` header (gRPC: the
``authorization`` metadata) gets a ``credential`` fingerprint and its ``credential_scheme``
(:func:`credential_fields`), enough to tell "the same token again" from "a refreshed one".
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "CLIENT_GAVE_UP",
    "CLOSED_WITHOUT_RESPONSE",
    "FINGERPRINT_HEX",
    "GRPC_CODES",
    "GRPC_KIND_PREFIX",
    "GRPC_TRANSIENT",
    "HTTP_KIND_PREFIX",
    "RESET",
    "TRANSIENT_STATUSES",
    "UNREACHABLE",
    "WIRE_FAILURE_KINDS",
    "credential_fields",
    "credential_fingerprint",
    "grpc_code",
    "grpc_kind",
    "http_kind",
    "is_transient_status",
]

HTTP_KIND_PREFIX = "http_"
TRANSIENT_STATUSES = frozenset({429, *range(500, 600)})
"""Statuses a retry may cure: every 5xx and 429 Too Many Requests."""

CLIENT_GAVE_UP = "TransportTimeout"
"""The client closed its connection while a request was unanswered (its timeout fired)."""
CLOSED_WITHOUT_RESPONSE = "EndOfStream"
"""The server or a fault closed the connection before the response."""
RESET = "BrokenResourceError"
"""The connection was reset (a ``reset_peer`` toxic, a server crash)."""
UNREACHABLE = "EndOfStream"
"""The proxy could not reach the server, so it closed the client's connection at once."""
WIRE_FAILURE_KINDS = frozenset({CLIENT_GAVE_UP, CLOSED_WITHOUT_RESPONSE, RESET, UNREACHABLE})


def http_kind(status: int) -> str:
    """``503`` -> ``"http_503"``: the kind of an HTTP error status."""
    return f"{HTTP_KIND_PREFIX}{int(status)}"


def is_transient_status(status: int) -> bool:
    return status in TRANSIENT_STATUSES


GRPC_KIND_PREFIX = "grpc_"
GRPC_CODES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
"""gRPC status names by code (the gRPC spec's ``statuscodes.md``)."""
GRPC_TRANSIENT = frozenset({8, 10, 14})
"""RESOURCE_EXHAUSTED, ABORTED and UNAVAILABLE: the statuses gRPC's guidance calls retryable."""


def grpc_code(value: str | int) -> int:
    """A gRPC status code from its name (``UNAVAILABLE``, ``unavailable``, ``grpc_unavailable``)
    or number (``14``, ``"14"``); ``ValueError`` for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value < len(GRPC_CODES):
            return value
        raise ValueError(f"a gRPC status code is from 0 to {len(GRPC_CODES) - 1}, got {value}")
    text = str(value).strip()
    if text.isascii() and text.isdigit():
        return grpc_code(int(text))
    name = text.upper().removeprefix(GRPC_KIND_PREFIX.upper())
    if name in GRPC_CODES:
        return GRPC_CODES.index(name)
    raise ValueError(
        f"unknown gRPC status {text!r}: use a number from 0 to 16 or one of "
        + ", ".join(GRPC_CODES)
    )


def grpc_kind(code: int) -> str:
    """``14`` -> ``"grpc_unavailable"``: the kind of a gRPC status (an unknown number is
    ``grpc_<number>``)."""
    if 0 <= code < len(GRPC_CODES):
        return GRPC_KIND_PREFIX + GRPC_CODES[code].lower()
    return f"{GRPC_KIND_PREFIX}{int(code)}"


FINGERPRINT_HEX = 12
"""Hex digits of a credential's fingerprint: 48 bits, plenty to tell a test's tokens apart."""


def credential_fingerprint(value: str) -> str:
    """The first :data:`FINGERPRINT_HEX` hex digits of the SHA-256 of an ``Authorization``
    value (scheme included): equal credentials compare equal, the secret is not kept.

    It is unsalted, so a guessable secret (a short password) can be found by hashing
    candidates: a journal is test data, and tests use throwaway credentials."""
    digest = hashlib.sha256(value.strip().encode("utf-8", "surrogateescape")).hexdigest()
    return digest[:FINGERPRINT_HEX]


def credential_fields(value: str | None) -> dict[str, str]:
    """The ``wire_request`` fields for an ``Authorization`` value: ``credential`` (its
    fingerprint) and ``credential_scheme`` (``Bearer``, ``Basic``...; ``?`` when the value
    has no scheme word before the secret, which is then never echoed); none without one."""
    if value is None or not value.strip():
        return {}
    parts = value.strip().split(None, 1)
    scheme = parts[0] if len(parts) == 2 and _SCHEME.fullmatch(parts[0]) else "?"
    return {"credential": credential_fingerprint(value), "credential_scheme": scheme}


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]{0,31}")
"""An auth scheme name (RFC 9110 ``token``, short: a long word is more likely the secret)."""
