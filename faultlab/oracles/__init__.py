"""Oracles: plain functions from a journal and a declared policy to a :class:`Verdict`.

``check_retry(journal, RetryPolicy(...))`` and its siblings read the events a
Lab journals (logical calls, attempts, server requests, faults) and say
whether the client kept the resilience properties documented in
``docs/oracles.md`` (R#, C#, F#, T#, I#; V# for what a library reports of
itself; A# for token refresh and credentials), with a message a user
understands and the journal excerpt that proves it. Suites and the pytest
plugin are thin wrappers around these functions.
"""

from __future__ import annotations

from faultlab.journal.timeline import Attempt, Call, Timeline, timeline
from faultlab.oracles.auth import AuthPolicy, auth_checks, check_auth
from faultlab.oracles.breaker import breaker_checks, check_breaker
from faultlab.oracles.clock import ClockJournal, VirtualClock
from faultlab.oracles.deadline import check_deadline, deadline_checks
from faultlab.oracles.fallback import check_fallback, fallback_checks, fell_back
from faultlab.oracles.idempotency import check_idempotency, idempotency_checks
from faultlab.oracles.policies import (
    ALL_KINDS,
    DEFAULT_RETRY_ON,
    DEFAULT_TOLERANCE,
    NOT_SET,
    PROTOCOL_ERROR_KINDS,
    TRANSIENT_RPC_KINDS,
    TRANSPORT_ERROR_KINDS,
    Bounds,
    BreakerPolicy,
    Chain,
    Combined,
    DeadlinePolicy,
    Decorrelated,
    Exponential,
    FallbackPolicy,
    Fixed,
    GrpcBackoff,
    Incrementing,
    PolicyImportError,
    RandomWait,
    RetryPolicy,
    ServiceConfigError,
    Tolerance,
    Urllib3Backoff,
    Wait,
    kinds_accepted_by,
    kinds_of,
    non_idempotent_methods,
)
from faultlab.oracles.reported import check_reported, reported_checks
from faultlab.oracles.reporters import (
    pybreaker_listener,
    report_attempts,
    report_tenacity,
    stamina_hook,
    tenacity_before_sleep,
)
from faultlab.oracles.retry import check_backoff_distribution, check_retry, retry_checks
from faultlab.oracles.roundtrip import check_roundtrip, check_roundtrip_pair, check_roundtrip_pairs
from faultlab.oracles.streams import check_stream_resume, stream_attempts, stream_checks
from faultlab.oracles.tls import check_mtls_enforced, check_tls_verification, tls_checks
from faultlab.oracles.verdict import OracleFailure, Verdict, combine, format_evidence

__all__ = [
    "ALL_KINDS",
    "DEFAULT_RETRY_ON",
    "DEFAULT_TOLERANCE",
    "NOT_SET",
    "PROTOCOL_ERROR_KINDS",
    "TRANSIENT_RPC_KINDS",
    "TRANSPORT_ERROR_KINDS",
    "Attempt",
    "AuthPolicy",
    "Bounds",
    "BreakerPolicy",
    "Call",
    "Chain",
    "ClockJournal",
    "Combined",
    "DeadlinePolicy",
    "Decorrelated",
    "Exponential",
    "FallbackPolicy",
    "Fixed",
    "GrpcBackoff",
    "Incrementing",
    "OracleFailure",
    "PolicyImportError",
    "RandomWait",
    "RetryPolicy",
    "ServiceConfigError",
    "Timeline",
    "Tolerance",
    "Urllib3Backoff",
    "Verdict",
    "VirtualClock",
    "Wait",
    "auth_checks",
    "breaker_checks",
    "check_auth",
    "check_backoff_distribution",
    "check_breaker",
    "check_deadline",
    "check_fallback",
    "check_idempotency",
    "check_mtls_enforced",
    "check_reported",
    "check_retry",
    "check_roundtrip",
    "check_roundtrip_pair",
    "check_roundtrip_pairs",
    "check_stream_resume",
    "check_tls_verification",
    "combine",
    "deadline_checks",
    "fallback_checks",
    "fell_back",
    "format_evidence",
    "idempotency_checks",
    "kinds_accepted_by",
    "kinds_of",
    "non_idempotent_methods",
    "pybreaker_listener",
    "report_attempts",
    "report_tenacity",
    "reported_checks",
    "retry_checks",
    "stamina_hook",
    "stream_attempts",
    "stream_checks",
    "tenacity_before_sleep",
    "timeline",
    "tls_checks",
]
