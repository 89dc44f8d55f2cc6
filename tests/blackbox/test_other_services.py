"""The same clients and oracles against services of other kinds: a Node.js ``http`` server run
as a ``Command``, and the FastAPI app started by the test itself and given as an ``Address``
(a service faultlab does not own). The Docker ``Image`` kind runs in ``tests/docker``."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings

import faultlab
from faultlab.lab.backends.base import UnsupportedFault
from faultlab.strategies import FaultPlan, FaultStep
from tests.blackbox import clients
from tests.blackbox.harness import BLACKBOX, GET_WORKLOAD, WORKLOAD, Env, make_env, plans, run
from tests.blackbox.harness import verdicts as judge

SERVICES = Path(__file__).parent / "services"
REPO = Path(__file__).resolve().parents[2]
BUSY = FaultPlan(
    (FaultStep(0.0, "http_error", "upstream", {"status": 503, "retry_after": 0}, 1.0, 1.0),),
    1.0,
)


def _check_clean_and_caught(env: Env, workload: tuple[object, ...]) -> None:
    """A correct client passes over a few plans; an off-by-one Retry is caught on one 503."""

    @settings(BLACKBOX, max_examples=5)
    @given(plan=plans())
    def correct(plan: FaultPlan) -> None:
        for oracle, verdict in judge(run(env, clients.requests_client, plan, workload)).items():  # type: ignore[arg-type]
            assert verdict.passed, f"{oracle}: {verdict.report()}"

    correct()
    wrong = judge(run(env, lambda: clients.requests_client(total=3), BUSY, workload))  # type: ignore[arg-type]
    assert not wrong["retry"].passed
    assert wrong["retry"].property.startswith("R1"), wrong["retry"].report()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this machine")
def test_a_node_server_run_as_a_command(faultlab_seed: int) -> None:
    node = shutil.which("node")
    assert node is not None
    service = faultlab.Command(
        [node, str(SERVICES / "node_server.js"), "{port}", "{host}"],
        ready=faultlab.ready.http("/health"),
    )
    env = make_env(faultlab_seed, service)
    try:
        _check_clean_and_caught(env, GET_WORKLOAD)
        assert env.pair.server.pid is not None
    finally:
        env.lab.close()


@pytest.fixture
def running_service() -> Iterator[str]:
    """The FastAPI app on uvicorn, started and owned by this test (not by faultlab)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [sys.executable, "-m", "uvicorn", "tests.blackbox.services.fastapi_app:app"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
                assert time.monotonic() < deadline, "uvicorn did not start in 20 s"
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_running_service_given_as_an_address(running_service: str, faultlab_seed: int) -> None:
    env = make_env(faultlab_seed, faultlab.Address(running_service))
    try:
        _check_clean_and_caught(env, WORKLOAD)
        with pytest.raises(UnsupportedFault, match="does not own"):
            env.pair.pause_server()
    finally:
        env.lab.close()
    # faultlab did not own it: the service still answers after the lab is gone
    host, port = running_service.rsplit(":", 1)
    socket.create_connection((host, int(port)), timeout=2).close()
