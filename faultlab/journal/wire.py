"""How an exchange seen on the wire becomes an attempt's outcome: the documented mapping.

The proxy journals each HTTP exchange it relays (``wire_request`` / ``wire_response``);
oracles read them as attempts when the client journals none (a black-box client such as
``requests``). An exchange's error *kind* is a string like every other kind in the journal,
so a declared policy names what it retries the same way for both:

- an HTTP status of 400 or more is the kind ``http_<status>`` (``http_503``);
- a JSON-RPC / XML-RPC error carried in a 200 is the RPC kind (``unavailable``,
  ``invalid_params``), as the protocol reads it;
- no response at all is a transport kind: ``TransportTimeout`` when the client closed the
  connection while waiting (it gave up), ``EndOfStream`` when the proxy or the server
  closed it, ``BrokenResourceError`` when it was reset, and ``EndOfStream`` when the
  proxy could not reach the server (the client's connection was closed at once).

Transient (a retry may cure it): 5xx, 429 and every connection-level failure; every other
4xx is permanent. Override per policy: :class:`~faultlab.oracles.policies.RetryPolicy`'s
``retry_on`` is what the client is declared to retry, whatever this mapping calls transient.
"""

from __future__ import annotations

__all__ = [
    "CLIENT_GAVE_UP",
    "CLOSED_WITHOUT_RESPONSE",
    "HTTP_KIND_PREFIX",
    "RESET",
    "TRANSIENT_STATUSES",
    "UNREACHABLE",
    "WIRE_FAILURE_KINDS",
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
