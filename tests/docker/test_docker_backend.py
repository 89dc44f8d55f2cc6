"""The calc service in a container behind the faultlab proxy: calls, process and network faults.

Each test gets its own Lab; each Pair its own container and bridge network, reached on
the container's bridge IP. Faults must show the client a typed error within its deadline
and heal, and every fault must be journaled as a ``process`` event.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from faultlab.errors import BrokenResourceError, EndOfStream, TransportError, TransportTimeout
from faultlab.lab import Lab
from faultlab.lab import events as ev
from faultlab.lab.backends import docker as docker_backend
from faultlab.lab.backends.base import BackendError, UnsupportedFault, get_backend
from faultlab.lab.pair import Pair
from tests.docker.conftest import CLIENT_TIMEOUT, session_resources

pytest_plugins = ["pytester"]

# the client's deadline plus scheduling slack on a shared 2-core machine
DEADLINE_SLACK = 0.75


def server(pair: Pair) -> docker_backend.DockerServer:
    assert isinstance(pair.server, docker_backend.DockerServer)
    return pair.server


def timed_failure(pair: Pair, method: str = "add", *args: Any) -> tuple[BaseException, float]:
    start = time.monotonic()
    with pytest.raises(TransportError) as info:
        pair.client.call(method, *(args or (1, 1)))
    return info.value, time.monotonic() - start


def call_after_reconnect(pair: Pair) -> Any:
    """One call; a connection the fault left half-dead may fail once, then the client reconnects."""
    try:
        return pair.client.call("add", 2, 3)
    except (BrokenResourceError, EndOfStream):
        return pair.client.call("add", 2, 3)


def process_actions(pair: Pair) -> list[tuple[str, str | None]]:
    return [(e["action"], e.get("direction")) for e in pair.events(kinds=[ev.PROCESS])]


def test_backend_is_registered() -> None:
    assert get_backend("docker") is docker_backend.DockerServer


def test_calls_work_through_the_proxy(lab: Lab) -> None:
    pair = lab.pair()
    srv = server(pair)
    assert srv.address == f"tcp://{srv.ip}:{docker_backend.CONTAINER_PORT}"
    assert pair.proxy.address.startswith("tcp://127.0.0.1:")
    assert pair.client.call("add", 2, 3) == 5
    assert pair.client.call("counter.incr", 2) == 2
    srv.merge_events()
    requests = pair.events(kinds=[ev.SERVER_REQUEST])
    methods = [e["method"] for e in requests]
    assert "add" in methods
    assert "counter.incr" in methods
    # the container's clock is the host's: its events fall inside the lab's timeline
    assert all(0 <= e["t"] <= lab.journal.now() for e in requests)


def test_pause_times_out_within_deadline_then_resume_heals(lab: Lab) -> None:
    pair = lab.pair()
    pair.pause_server()
    assert pair.server.paused
    error, elapsed = timed_failure(pair)
    assert isinstance(error, TransportTimeout)
    assert elapsed < CLIENT_TIMEOUT + DEADLINE_SLACK
    pair.resume_server()
    assert call_after_reconnect(pair) == 5


def test_kill_breaks_the_connection_and_restart_keeps_the_address(lab: Lab) -> None:
    pair = lab.pair()
    assert pair.client.call("add", 1, 2) == 3
    address, pid = pair.server.address, pair.server.pid
    pair.kill_server()
    assert not pair.server.alive
    error, _ = timed_failure(pair)
    assert isinstance(error, (BrokenResourceError, EndOfStream))
    pair.restart_server()
    assert pair.server.address == address
    assert pair.server.pid != pid
    assert call_after_reconnect(pair) == 5


def test_graceful_stop_then_restart(lab: Lab) -> None:
    pair = lab.pair()
    pair.stop_server()
    assert not pair.server.alive
    pair.restart_server()
    assert call_after_reconnect(pair) == 5
    assert [a for a, _ in process_actions(pair)] == ["stop", "restart"]


def test_partition_both_ways_then_heal(lab: Lab) -> None:
    pair = lab.pair()
    srv = server(pair)
    assert pair.client.call("add", 1, 1) == 2
    srv.partition()
    assert srv.partitioned == "both"
    error, elapsed = timed_failure(pair)
    assert isinstance(error, TransportTimeout)
    assert elapsed < CLIENT_TIMEOUT + DEADLINE_SLACK
    srv.heal()
    assert srv.partitioned is None
    assert call_after_reconnect(pair) == 5


@pytest.mark.parametrize(("direction", "applied"), [("outbound", True), ("inbound", False)])
def test_one_way_partition(lab: Lab, direction: str, applied: bool) -> None:
    """outbound: the request is applied but its reply lost; inbound: it never arrives."""
    pair = lab.pair()
    srv = server(pair)
    assert pair.client.call("add", 1, 1) == 2
    try:
        srv.partition(direction)  # type: ignore[arg-type]
    except UnsupportedFault as exc:
        pytest.skip(f"one-way partition unsupported here: {exc}")
    error, _ = timed_failure(pair, "counter.incr", 1)
    assert isinstance(error, TransportTimeout)
    srv.heal()
    assert call_after_reconnect(pair) == 5
    assert len(pair.server_effects()) == (1 if applied else 0)


def test_journal_has_the_process_events(lab: Lab) -> None:
    """Oracle-style: every fault is one ``process`` event, in order, on the lab's clock."""
    pair = lab.pair()
    srv = server(pair)
    start = lab.journal.now()
    pair.pause_server()
    pair.resume_server()
    pair.kill_server()
    pair.restart_server()
    srv.partition()
    srv.heal()
    pair.stop_server()
    events = pair.events(kinds=[ev.PROCESS])
    assert [e["action"] for e in events] == [
        "pause",
        "resume",
        "kill",
        "restart",
        "partition",
        "heal",
        "stop",
    ]
    assert all(e["target"] == "server" and e["container"] == srv.name for e in events)
    assert all(isinstance(e["pid"], int) and e["pid"] > 0 for e in events)
    times = [e["t"] for e in events]
    assert times == sorted(times)
    assert times[0] >= start


def test_deadline_oracle_over_a_paused_container(lab: Lab) -> None:
    """The oracles read a container's faults like a subprocess's: T2 holds, not vacuously."""
    oracles = pytest.importorskip("faultlab.oracles")
    pair = lab.pair()
    assert pair.run(lambda client: client.call("add", 1, 1), method="add") == 2
    pair.pause_server()
    with pytest.raises(TransportTimeout):
        pair.run(lambda client: client.call("add", 1, 1), method="add")
    pair.resume_server()
    policy = oracles.DeadlinePolicy(deadline=CLIENT_TIMEOUT + DEADLINE_SLACK)
    verdict = oracles.check_deadline(pair, policy)
    assert verdict.passed, verdict.message
    assert not verdict.vacuous, verdict.message


@pytest.mark.parametrize("transport", ["udp", "unix"])
def test_other_transports(lab: Lab, transport: str) -> None:
    pair = lab.pair(transport=transport, protocol="jsonrpc")
    assert pair.client.call("add", 2, 3) == 5
    pair.pause_server()
    error, _ = timed_failure(pair)
    assert isinstance(error, TransportTimeout)
    pair.resume_server()
    assert call_after_reconnect(pair) == 5
    if transport == "unix":
        with pytest.raises(UnsupportedFault, match="IP transport"):
            server(pair).partition()


def test_unsupported_transport_is_refused(lab: Lab) -> None:
    with pytest.raises(BackendError, match="docker backend serves"):
        lab.pair(transport="shm")


def test_nothing_left_after_close(docker_ready: None) -> None:
    with Lab(backend="docker") as lab:
        pair = lab.pair()
        name = server(pair).name
        assert any(name in n for n in session_resources())
        workdir = server(pair).workdir
        assert workdir.is_dir()
    assert not any(name in n for n in session_resources())
    assert not workdir.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sweep_removes_what_a_crashed_run_left(docker_ready: None) -> None:
    api = docker_backend.docker_client().api
    host = socket.gethostname()
    dead = {
        docker_backend.LABEL: "1",
        docker_backend.SESSION_LABEL: "crashed",
        docker_backend.OWNER_LABEL: f"{host}:{_dead_pid()}",
    }
    alive = {**dead, docker_backend.OWNER_LABEL: f"{host}:{os.getpid()}"}
    alive[docker_backend.SESSION_LABEL] = "parallel-run"
    image = docker_backend._current().image()
    made: list[tuple[str, str]] = []
    try:
        for tag, lbls in (("dead", dead), ("alive", alive)):
            net = api.create_network(f"faultlab-sweeptest-{tag}-{os.getpid()}", labels=lbls)
            made.append(("network", net["Id"]))
            ctr = api.create_container(image, ["true"], labels=lbls)
            made.append(("container", ctr["Id"]))
        orphan = docker_backend._workdirs() / "faultlab-crashed-0"
        orphan.mkdir(parents=True, exist_ok=True)
        (orphan / "events.jsonl").write_text("")
        old = time.time() - docker_backend.WORKDIR_GRACE - 5
        os.utime(orphan, (old, old))
        counts = docker_backend.sweep()
        assert not orphan.exists()
        assert counts["containers"] >= 1
        assert counts["networks"] >= 1
        flt = {"label": f"{docker_backend.SESSION_LABEL}=crashed"}
        assert api.containers(all=True, filters=flt) == []
        assert api.networks(filters=flt) == []
        flt = {"label": f"{docker_backend.SESSION_LABEL}=parallel-run"}
        assert len(api.containers(all=True, filters=flt)) == 1  # a live owner keeps its own
        assert len(api.networks(filters=flt)) == 1
    finally:
        for kind, ident in reversed(made):
            try:
                if kind == "container":
                    api.remove_container(ident, force=True)
                else:
                    api.remove_network(ident)
            except Exception:
                pass


def test_proxy_container_next_to_the_server(lab: Lab) -> None:
    """DockerProxy mechanics with a stand-in listener (the real CLI is tested when present)."""
    pair = lab.pair()
    stand_in = ["python3", "-m", "http.server", "--bind", "0.0.0.0", "8474"]
    proxy = server(pair).start_proxy(stand_in)
    assert proxy.api_url == f"http://{proxy.host}:8474"
    assert proxy.upstream_host == server(pair).ip
    socket.create_connection((proxy.host, 8474), timeout=2).close()
    proxy.close()
    assert proxy.container_id is None


def test_provisioning_time(lab: Lab) -> None:
    """p50 over 5 pairs (container + network + proxy + ready probe); printed for the record."""
    times = []
    for _ in range(5):
        start = time.monotonic()
        pair = lab.pair()
        times.append(time.monotonic() - start)
        pair.close()
        lab.pairs.remove(pair)
    p50 = sorted(times)[2]
    print(f"docker pair provisioning: p50 {p50:.3f} s over {[round(t, 3) for t in times]}")
    assert p50 < 10


def test_pytest_option_selects_the_docker_backend(
    docker_ready: None, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(
        """
        from faultlab.lab.backends.docker import DockerServer

        def test_in_a_container(faultlab_pair):
            assert isinstance(faultlab_pair.server, DockerServer)
            assert faultlab_pair.client.call("add", 2, 3) == 5
        """
    )
    result = pytester.runpytest_subprocess(
        "--faultlab-backend", "docker", "--faultlab-transports", "tcp", "-p", "no:randomly"
    )
    result.assert_outcomes(passed=1)
