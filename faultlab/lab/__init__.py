"""Provisioning: a Lab gives Pairs (server + journaled proxy + client) on any backend."""

from __future__ import annotations

from faultlab.lab.backends.base import BackendError, ServerHandle, ServerSpec, UnsupportedFault
from faultlab.lab.client import CallRecord, InstrumentedClient, logical_call
from faultlab.lab.pair import DEFAULT_SERVICE, Lab, Pair

__all__ = [
    "DEFAULT_SERVICE",
    "BackendError",
    "CallRecord",
    "InstrumentedClient",
    "Lab",
    "Pair",
    "ServerHandle",
    "ServerSpec",
    "UnsupportedFault",
    "logical_call",
]
