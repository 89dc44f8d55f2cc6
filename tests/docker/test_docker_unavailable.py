"""Without an engine the backend says why (and Docker tests skip); this runs everywhere."""

from __future__ import annotations

import os

import pytest

from faultlab.journal import Journal
from faultlab.lab.backends import docker as docker_backend
from faultlab.lab.backends.base import ServerSpec


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh session pointed at a socket nobody serves (monkeypatch restores the real one)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/faultlab-no-docker.sock")
    monkeypatch.setattr(docker_backend, "_session", None)


def test_available_gives_the_reason(no_engine: None) -> None:
    reason = docker_backend.available()
    assert reason is not None
    assert "docker" in reason.lower()


def test_server_refuses_with_docker_unavailable(no_engine: None) -> None:
    spec = ServerSpec("faultlab.examples.calc:Calc", "binrpc", "tcp://127.0.0.1:0")
    with pytest.raises(docker_backend.DockerUnavailable):
        docker_backend.DockerServer(spec, Journal())


def test_labels_name_the_owner() -> None:
    found = docker_backend.labels(role="x")
    assert found[docker_backend.LABEL] == "1"
    assert found[docker_backend.OWNER_LABEL].endswith(f":{os.getpid()}")
    assert found["role"] == "x"
