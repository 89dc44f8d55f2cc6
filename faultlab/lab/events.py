"""Event kinds for calls, attempts, server work and process faults: re-exported from the
journal's schema (:mod:`faultlab.journal.schema`, documented in ``docs/journal.md``), where
every kind is defined, so code that imports them from here keeps working."""

from __future__ import annotations

from faultlab.journal.schema import (
    ATTEMPT_END,
    ATTEMPT_START,
    BREAKER,
    CALL_END,
    CALL_START,
    FALLBACK,
    PROCESS,
    SERVER_REQUEST,
    SIDE_EFFECT,
    TEST,
    VERDICT,
)

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
