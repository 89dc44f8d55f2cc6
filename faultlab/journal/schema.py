"""The journal's one versioned schema: every event kind and its fields.

Every layer writes events with these kinds and every reader (oracles, reports) reads them
through :mod:`faultlab.journal.timeline`; nothing else names a kind. Every event has ``seq``
(order within one journal), ``t`` (seconds on the journal's monotonic clock, shared by every
process of a Lab) and ``kind``; under xdist a merged journal adds ``worker``. The schema grows
by adding kinds and fields, never by renaming or retyping one: a change that breaks a reader
bumps :data:`SCHEMA` (see ``docs/journal.md``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

__all__ = [
    "ATTEMPT_END",
    "ATTEMPT_START",
    "BREAKER",
    "CALL_END",
    "CALL_START",
    "CHUNK",
    "CLIENT_REPORT",
    "CLIENT_RETRY",
    "CONNECTION",
    "CONNECTION_CLOSED",
    "FALLBACK",
    "FAULT",
    "HOSTILE_ATTACK",
    "HOSTILE_CANARY",
    "HOSTILE_PROBE",
    "HOSTILE_RSS",
    "HOSTILE_RUN",
    "KINDS",
    "MARK",
    "PASSIVE_DECISIONS",
    "PEER_ERROR",
    "PROCESS",
    "PROCESS_CLOSERS",
    "PROCESS_FAULTS",
    "PROCESS_WINDOWS",
    "PROXY_DELETED",
    "PROXY_DISABLED",
    "PROXY_ENABLED",
    "SCHEMA",
    "SERVER_REQUEST",
    "SIDE_EFFECT",
    "TEST",
    "TLS_HANDSHAKE",
    "TOXIC_ADDED",
    "TOXIC_REMOVED",
    "TOXIC_UPDATED",
    "UDP_FLOW_CLOSED",
    "UDP_OVERFLOW",
    "UDP_SESSION",
    "UPSTREAM_FAILED",
    "VERDICT",
    "WIRE_CLIENT_CLOSED",
    "WIRE_REQUEST",
    "WIRE_RESPONSE",
    "WIRE_UNANSWERED",
    "short_repr",
]

SCHEMA = "faultlab.journal/1"
"""The version every journal file carries; readers refuse any other (``docs/journal.md``)."""

# ---- calls and attempts (the instrumented client) -------------------------------------------
CALL_START = "call_start"
CALL_END = "call_end"
ATTEMPT_START = "attempt_start"
ATTEMPT_END = "attempt_end"
FALLBACK = "fallback"
BREAKER = "breaker"
CLIENT_REPORT = "client_report"
CLIENT_RETRY = "client_retry"
# ---- the server and the process it runs in --------------------------------------------------
SERVER_REQUEST = "server_request"
SIDE_EFFECT = "side_effect"
PROCESS = "process"
# ---- the proxy ------------------------------------------------------------------------------
CONNECTION = "connection"
CONNECTION_CLOSED = "connection_closed"
UPSTREAM_FAILED = "upstream_failed"
PEER_ERROR = "peer_error"
CHUNK = "chunk"
FAULT = "fault"
TOXIC_ADDED = "toxic_added"
TOXIC_UPDATED = "toxic_updated"
TOXIC_REMOVED = "toxic_removed"
PROXY_DELETED = "proxy_deleted"
PROXY_DISABLED = "proxy_disabled"
PROXY_ENABLED = "proxy_enabled"
WIRE_REQUEST = "wire_request"
WIRE_RESPONSE = "wire_response"
WIRE_UNANSWERED = "wire_unanswered"
WIRE_CLIENT_CLOSED = "wire_client_closed"
TLS_HANDSHAKE = "tls_handshake"
UDP_OVERFLOW = "udp_overflow"
UDP_FLOW_CLOSED = "udp_flow_closed"
UDP_SESSION = "udp_session"
# ---- the hostile-client suite (faultlab.suites.hostile) ---------------------------------------
HOSTILE_RUN = "hostile_run"
HOSTILE_ATTACK = "hostile_attack"
HOSTILE_CANARY = "hostile_canary"
HOSTILE_RSS = "hostile_rss"
HOSTILE_PROBE = "hostile_probe"
# ---- the test run ---------------------------------------------------------------------------
MARK = "mark"
TEST = "test"
VERDICT = "verdict"

PASSIVE_DECISIONS = frozenset({"toxicity", "pass", "pass_frame"})
"""``fault`` decisions that leave traffic untouched: a toxicity draw or a toxic letting a chunk
pass. A ``delay`` of 0 ms is passive too (see :func:`faultlab.journal.timeline.acted`)."""
PROCESS_FAULTS = frozenset({"pause", "kill", "stop", "restart"})
"""``process`` actions that act on the server (a ``resume`` or a ``partition`` record does not)."""
PROCESS_WINDOWS = frozenset({"pause", "kill", "stop"})
"""``process`` actions that open a fault window, closed by :data:`PROCESS_CLOSERS`."""
PROCESS_CLOSERS = MappingProxyType({"resume": ("pause",), "restart": ("kill", "stop")})
"""The ``process`` action that closes a window, and the windows it closes (a restart ends the
downtime of a kill or of a graceful stop)."""

_F = tuple[str, ...]
KINDS: MappingProxyType[str, _F] = MappingProxyType(
    {
        CALL_START: ("call", "method", "params", "idempotent", "label"),  # also "proxy"
        CALL_END: ("call", "outcome", "value", "error", "error_kind", "duration"),
        ATTEMPT_START: ("call", "attempt", "method", "idempotency_key", "request_id"),
        ATTEMPT_END: ("call", "attempt", "outcome", "error", "error_kind", "transient"),
        FALLBACK: ("call", "reason"),
        BREAKER: ("state", "label"),  # also "library", "previous" when a library reported it
        CLIENT_REPORT: ("library", "label", "attempts", "idle"),
        CLIENT_RETRY: ("library", "label", "retry", "wait"),
        SERVER_REQUEST: ("method", "request_id", "idempotency_key", "outcome", "error_kind"),
        SIDE_EFFECT: ("key", "method"),
        PROCESS: ("action", "pid", "target", "container", "direction"),
        CONNECTION: ("proxy", "connection", "client", "upstream"),
        CONNECTION_CLOSED: ("proxy", "connection"),
        UPSTREAM_FAILED: ("proxy", "connection", "upstream", "error"),
        PEER_ERROR: ("proxy", "connection", "side", "error"),
        CHUNK: ("proxy", "connection", "direction", "index", "size"),
        FAULT: ("proxy", "connection", "direction", "toxic", "type", "decision"),
        TOXIC_ADDED: ("proxy", "toxic", "type", "stream", "toxicity", "attributes"),
        TOXIC_UPDATED: ("proxy", "toxic", "type", "stream", "toxicity", "attributes"),
        TOXIC_REMOVED: ("proxy", "toxic"),
        PROXY_DELETED: ("proxy",),
        PROXY_DISABLED: ("proxy",),
        PROXY_ENABLED: ("proxy", "listen"),
        WIRE_REQUEST: (
            "proxy",
            "connection",
            "exchange",
            "method",
            "target",
            "headers",
            "size",
        ),
        WIRE_RESPONSE: (
            "proxy",
            "connection",
            "exchange",
            "status",
            "headers",
            "size",
            "injected",
        ),
        WIRE_UNANSWERED: ("proxy", "connection", "exchange", "error_kind", "error"),
        WIRE_CLIENT_CLOSED: ("proxy", "connection", "answered"),
        TLS_HANDSHAKE: ("proxy", "connection", "side", "ok", "error"),
        UDP_OVERFLOW: ("proxy", "connection", "side", "client", "dropped"),
        UDP_FLOW_CLOSED: ("proxy", "connection", "client", "reason", "idle"),
        UDP_SESSION: ("proxy", "client"),
        HOSTILE_RUN: ("run", "phase", "target", "protocol", "wire", "seed", "pid", "attacks"),
        HOSTILE_ATTACK: ("run", "attack", "phase", "bad_input", "counts", "answers", "error"),
        HOSTILE_CANARY: ("run", "latency", "ok", "error"),
        HOSTILE_RSS: ("run", "pid", "rss"),
        HOSTILE_PROBE: ("run", "ok", "latency", "error", "alive"),
        MARK: ("proxy",),
        TEST: (
            "nodeid",
            "outcome",
            "duration",
            "transport",
            "protocol",
            "fault",
            "backend",
            "seed",
            "plan",
            "replay",
            "t_start",
            "message",
        ),
        VERDICT: ("nodeid", "oracle", "property", "passed", "vacuous", "message", "evidence"),
    }
)
"""Every kind readers rely on, with its fields (beyond ``seq``, ``t``, ``kind``). Writers may add
fields and kinds (the proxy also journals ``engine_started``, ``proxy_created``, ``reset``...);
what each field means is in ``docs/journal.md``."""


VALUE_LIMIT = 200


def short_repr(value: Any, limit: int = VALUE_LIMIT) -> str:
    """How ``params`` and ``value`` fields hold a Python value: its repr, cut at ``limit``
    characters, so an oracle compares what it expects with what the journal can hold."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
