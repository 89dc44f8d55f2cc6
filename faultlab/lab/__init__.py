"""Provisioning: a Lab gives Pairs (server + journaled proxy + client) on any backend.

The service is a Python factory, or a black box: a :class:`Command` faultlab runs, an
:class:`Address` somebody else runs, an :class:`Image` run in a container, ready when a
declared check (:mod:`ready`) passes.
"""

from __future__ import annotations

from faultlab.lab import readiness as ready
from faultlab.lab.backends.base import BackendError, ServerHandle, ServerSpec, UnsupportedFault
from faultlab.lab.client import CallRecord, InstrumentedClient, logical_call
from faultlab.lab.pair import DEFAULT_SERVICE, BlackBoxError, Lab, NoClientError, Pair
from faultlab.lab.readiness import ReadinessTimeout, ServiceExited, ServiceStartError
from faultlab.lab.services import Address, Command, Image

__all__ = [
    "DEFAULT_SERVICE",
    "Address",
    "BackendError",
    "BlackBoxError",
    "CallRecord",
    "Command",
    "Image",
    "InstrumentedClient",
    "Lab",
    "NoClientError",
    "Pair",
    "ReadinessTimeout",
    "ServerHandle",
    "ServerSpec",
    "ServiceExited",
    "ServiceStartError",
    "UnsupportedFault",
    "logical_call",
    "ready",
]
