"""Where a Pair's server runs: in a thread, a subprocess, or (later) a Docker container.

A backend starts a service on an address and returns a :class:`ServerHandle`;
process faults (pause, kill, restart, stop) are methods of the handle, and
each backend says which it supports.
"""

from __future__ import annotations

from faultlab.lab.backends.base import ServerHandle, ServerSpec, get_backend, register_backend

__all__ = ["ServerHandle", "ServerSpec", "get_backend", "register_backend"]
