"""Which gRPC status a faultlab error kind is, by number (no grpcio needed).

One table for the server (:mod:`faultlab.rpc.grpc.status`, which needs grpcio) and for the
proxy's gRPC faults, which answer in a server's place without grpcio.
"""

from __future__ import annotations

__all__ = ["STATUS_CODE_FOR_KIND"]

STATUS_CODE_FOR_KIND: dict[str, int] = {
    "method_not_found": 12,  # UNIMPLEMENTED
    "invalid_params": 3,  # INVALID_ARGUMENT
    "invalid_request": 3,
    "parse_error": 3,
    "application_error": 9,  # FAILED_PRECONDITION
    "internal_error": 13,  # INTERNAL
    "unavailable": 14,  # UNAVAILABLE
    "deadline_exceeded": 4,  # DEADLINE_EXCEEDED
    "version_mismatch": 9,
}
