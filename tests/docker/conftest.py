"""Docker backend fixtures: skip with the reason when no engine answers; run for real otherwise.

Start an engine with ``bash .ci/docker.sh`` (root: installs docker.io + iptables and starts
dockerd). The first test builds the local faultlab image (a few seconds, cached after).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faultlab.lab import Lab
from faultlab.lab.backends import docker as docker_backend

CLIENT_TIMEOUT = 1.0


@pytest.fixture(scope="session")
def docker_ready() -> Iterator[None]:
    """Skip (never fail) without an engine; at the end, check this session left nothing."""
    reason = docker_backend.available()
    if reason is not None:
        pytest.skip(f"Docker backend unavailable: {reason}")
    yield
    leftovers = session_resources()
    if leftovers:
        docker_backend.sweep(everything=True)  # a leak must not outlive the failing run
        pytest.fail(f"Docker resources left behind by this session: {leftovers}")


def session_resources() -> list[str]:
    """Names of this session's containers and networks still present."""
    api = docker_backend.docker_client().api
    flt = {"label": f"{docker_backend.SESSION_LABEL}={docker_backend.labels()['faultlab.session']}"}
    names = [c["Names"][0] for c in api.containers(all=True, filters=flt)]
    return names + [n["Name"] for n in api.networks(filters=flt)]


@pytest.fixture
def lab(docker_ready: None) -> Iterator[Lab]:
    with Lab(backend="docker", client_timeout=CLIENT_TIMEOUT) as lab:
        yield lab
