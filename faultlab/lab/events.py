"""The journal's event kinds for calls, attempts, server work and process faults.

Oracles read these; the proxy adds its own (``connection``, ``chunk``,
``fault``, ``toxic_added``...). Every event has ``seq``, ``t`` (seconds on the
journal's monotonic clock, shared by every process of a Lab) and ``kind``.

=================  ===========================================================
kind               fields
=================  ===========================================================
``call_start``     ``call`` (logical call id), ``method``, ``params``,
                   ``idempotent`` (bool), ``label`` (free text)
``call_end``       ``call``, ``outcome`` ("value" | "error" | "fallback"),
                   ``value`` (repr, truncated), ``error`` (exception type name),
                   ``error_kind`` (RPC kind or transport error name),
                   ``duration``
``attempt_start``  ``call``, ``attempt`` (1-based within the call), ``method``,
                   ``idempotency_key``, ``request_id``
``attempt_end``    ``call``, ``attempt``, ``outcome`` ("ok" | "error"),
                   ``error``, ``error_kind``, ``transient`` (bool)
``server_request`` ``method``, ``request_id``, ``idempotency_key``,
                   ``outcome`` ("ok" | "error"), ``error_kind``
``side_effect``    ``key`` (idempotency key or None), ``method``
``breaker``        ``state`` ("closed" | "open" | "half_open"), ``label``
``fallback``       ``call``, ``reason``
``process``        ``action`` ("pause" | "resume" | "kill" | "restart" |
                   "stop" | "partition" | "heal"), ``pid``, ``target``,
                   ``container`` and ``direction`` (Docker backend)
``test``           ``nodeid``, ``outcome`` ("passed" | "failed" | "skipped"),
                   ``duration``, ``transport``, ``protocol``, ``fault`` (JSON or
                   None), ``backend``, ``seed``, ``plan`` (fault plan JSON or
                   None), ``replay`` (command line), ``t_start``, ``message``
``verdict``        ``nodeid``, ``oracle``, ``property``, ``passed``, ``vacuous``,
                   ``message``, ``evidence`` (list of event seqs)
=================  ===========================================================
"""

from __future__ import annotations

__all__ = [
    "ATTEMPT_END",
    "ATTEMPT_START",
    "BREAKER",
    "CALL_END",
    "CALL_START",
    "FALLBACK",
    "PROCESS",
    "SERVER_REQUEST",
    "SIDE_EFFECT",
    "TEST",
    "VERDICT",
]

CALL_START = "call_start"
CALL_END = "call_end"
ATTEMPT_START = "attempt_start"
ATTEMPT_END = "attempt_end"
SERVER_REQUEST = "server_request"
SIDE_EFFECT = "side_effect"
BREAKER = "breaker"
FALLBACK = "fallback"
PROCESS = "process"
TEST = "test"
VERDICT = "verdict"
