"""The hostile-client suite against real servers and processes on loopback.

faultlab's own example servers (HTTP and byte-stream protocols, run as Commands so their
RSS is measured) and a FastAPI app on uvicorn pass H1-H5; the deliberately weak server
(a thread per connection, no body limit) is caught. Timing bounds are one-sided and loose:
a loaded 2-core machine makes the canary slower, never faster.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import faultlab
from faultlab.examples.calc import Calc
from faultlab.journal.store import Journal
from faultlab.rpc.server import RpcServer
from faultlab.suites.hostile import (
    H1,
    H2,
    H3,
    H5,
    HostileBudget,
    HostileLimits,
    NotLoopback,
    check_hostile,
    http_canary,
    rpc_canary,
    run_hostile,
)
from faultlab.suites.hostile.malformed import malformed_inputs
from faultlab.suites.hostile.wire import wire_for

# a loaded 2-core CI box: the canary's p99 budget is generous, the RSS one is the default
BUDGET = HostileBudget(max_p99=2.0)
QUIET: Any = lambda _text: None  # noqa: E731
SHORT = HostileLimits(
    slowloris_duration=0.5, slow_read_duration=0.5, flood_hold=0.3, half_open_duration=0.3
)
"""Every attack, every count, shorter holds: for the protocols beyond the first two."""


@pytest.fixture(scope="module")
def lab() -> Iterator[faultlab.Lab]:
    with faultlab.Lab(seed=5) as made:
        yield made


def _example(lab: faultlab.Lab, protocol: str) -> Any:
    argv = [sys.executable, "-m", "faultlab.examples.serve", "calc", "--protocol", protocol]
    return lab.pair(
        faultlab.Command([*argv, "--transport", "tcp://{host}:{port}"]), protocol=protocol
    )


def _by_property(verdict: Any) -> dict[str, Any]:
    return {c.property: c for c in verdict.checks}


@pytest.mark.parametrize("protocol", ["jsonrpc", "xmlrpc", "rest", "binrpc", "msgpackrpc"])
def test_faultlabs_example_servers_pass(lab: faultlab.Lab, protocol: str) -> None:
    pair = _example(lab, protocol)
    try:
        address = pair.server.address
        result = run_hostile(
            address,
            protocol=protocol,
            canary=rpc_canary(address, protocol, "add", 2, 3, expected=5),
            budget=BUDGET,
            limits=None if protocol in ("jsonrpc", "binrpc") else SHORT,
            pid=pair.server.pid,
            seed=5,
            journal=lab.journal,
            log=QUIET,
        )
    finally:
        pair.close()
    verdict = check_hostile(result)
    assert verdict.passed, verdict.report()
    checks = _by_property(verdict)
    assert not checks[H5].vacuous, "a Command's pid is known: RSS was measured"
    assert not checks[H2].vacuous, "bad input was sent"
    attacks = {e["attack"]: e for e in result.attacks()}
    assert set(attacks) >= {"slowloris", "slow_read", "oversized", "malformed", "flood"}
    assert attacks["malformed"]["counts"]["inputs"] == HostileLimits().malformed_frames
    assert attacks["flood"]["counts"]["connections"] >= 200, attacks["flood"]


def test_faultlabs_grpc_example_passes_the_http2_attacks(lab: faultlab.Lab) -> None:
    pytest.importorskip("grpc")
    pair = _example(lab, "grpc")
    try:
        address = pair.server.address
        result = run_hostile(
            address,
            protocol="grpc",
            canary=rpc_canary(address, "grpc", "add", 2, 3, expected=5),
            budget=BUDGET,
            pid=pair.server.pid,
            attacks=["h2_rapid_reset", "h2_continuation", "flood", "slowloris"],
            seed=5,
            log=QUIET,
        )
    finally:
        pair.close()
    verdict = check_hostile(result)
    assert verdict.passed, verdict.report()
    attacks = {e["attack"]: e for e in result.attacks()}
    assert attacks["h2_rapid_reset"]["counts"]["streams_reset"] == HostileLimits().h2_streams
    assert sum(attacks["h2_continuation"]["answers"].values()) == 1


def test_fastapi_on_uvicorn_as_a_command_passes(lab: faultlab.Lab) -> None:
    from tests.blackbox.harness import fastapi_command

    pair = lab.pair(fastapi_command(), protocol="http")
    try:
        result = run_hostile(
            pair.server_url,
            protocol="http",
            canary=http_canary(f"{pair.server_url}/items/1"),
            budget=BUDGET,
            pid=pair.server.pid,
            seed=5,
            journal=lab.journal,
            log=QUIET,
        )
    finally:
        pair.close()
    verdict = check_hostile(result)
    assert verdict.passed, verdict.report()
    assert len(result.canary_calls()) >= 20


def test_weak_server_is_caught(lab: faultlab.Lab) -> None:
    """No body limit: the oversized body is taken whole (RSS) and accepted with a 200 (H2)."""
    command = faultlab.Command(
        [sys.executable, "-m", "tests.hostile.weak_server", "--port", "{port}"],
        ready=faultlab.ready.http("/health"),
    )
    pair = lab.pair(command, protocol="http")
    try:
        result = run_hostile(
            pair.server_url,
            protocol="http",
            canary=http_canary(f"{pair.server_url}/health"),
            budget=BUDGET,
            pid=pair.server.pid,
            attacks=["oversized", "flood"],
            seed=5,
            log=QUIET,
        )
    finally:
        pair.close()
    verdict = check_hostile(result)
    assert not verdict.passed
    checks = _by_property(verdict)
    assert not checks[H5].passed, checks[H5].report()
    assert "MiB" in checks[H5].message
    assert "over the budget" in checks[H5].message
    assert not checks[H2].passed, checks[H2].report()
    assert "http_200" in checks[H2].message
    assert checks[H1].passed, "the weak server is slow to die, not dead"


def test_a_thread_per_connection_without_bound_is_caught(lab: faultlab.Lab) -> None:
    """Each connection costs the weak server a thread and a 256 KiB buffer, without bound:
    the flood alone grows its RSS past the budget. faultlab's own server, bounded, does not
    (test_rpc_server_bounds_its_connections)."""
    argv = [sys.executable, "-m", "tests.hostile.weak_server", "--port", "{port}"]
    command = faultlab.Command(
        [*argv, "--conn-buffer-kib", "256"], ready=faultlab.ready.http("/health")
    )
    pair = lab.pair(command, protocol="http")
    try:
        result = run_hostile(
            pair.server_url,
            protocol="http",
            canary=http_canary(f"{pair.server_url}/health"),
            budget=BUDGET,
            pid=pair.server.pid,
            attacks=["flood"],
            limits=HostileLimits(flood_connections=400),
            log=QUIET,
        )
    finally:
        pair.close()
    h5 = _by_property(check_hostile(result))[H5]
    assert not h5.passed, h5.report()


def test_a_crashing_server_fails_h1_and_h3() -> None:
    """A server that dies on the first bad input: the liveness probe and the canary say so."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    dead = threading.Event()

    def serve() -> None:
        while not dead.is_set():
            listener.settimeout(0.2)
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                data = conn.recv(65536)
                if b"Content-Length: 2147483647" in data or not data.startswith(b"GET"):
                    dead.set()  # "crashes": stops accepting for good
                    break
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = run_hostile(
            f"127.0.0.1:{port}",
            protocol="http",
            canary=http_canary(f"http://127.0.0.1:{port}/", timeout=0.5),
            attacks=["oversized"],
            limits=HostileLimits(oversized_bytes=1 << 20, answer_timeout=1.0),
            log=QUIET,
        )
    finally:
        dead.set()
        thread.join(5)
    checks = _by_property(check_hostile(result))
    assert not checks[H1].passed
    assert not checks[H3].passed
    assert checks[H5].vacuous
    assert "not known" in checks[H5].message


def _conn_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "faultlab-rpc-conn")


def test_rpc_server_bounds_its_connections() -> None:
    """Finding: RpcServer gave every connection a thread without bound (a 2000-connection
    flood grew the example server's RSS by 53 MiB). Past max_connections the quietest
    connection is evicted, and the canary is still served."""
    with RpcServer(Calc(), protocol="binrpc", max_connections=16) as server:
        result = run_hostile(
            server.address,
            protocol="binrpc",
            canary=rpc_canary(server.address, "binrpc", "add", 2, 3, expected=5),
            budget=BUDGET,
            attacks=["flood", "slowloris"],
            limits=HostileLimits(flood_connections=64, slowloris_connections=16),
            log=QUIET,
        )
        assert server.connections_evicted >= 48
        # an evicted connection's thread ends once its read fails: wait for that, no longer
        deadline = time.monotonic() + 10
        while _conn_threads() > 16 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _conn_threads() <= 16
    verdict = check_hostile(result)
    assert verdict.passed, verdict.report()


def test_every_socket_closed_and_every_thread_joined() -> None:
    before_fds = len(os.listdir("/proc/self/fd"))
    with RpcServer(Calc(), protocol="jsonrpc") as server:
        result = run_hostile(
            server.address,
            protocol="jsonrpc",
            canary=rpc_canary(server.address, "jsonrpc", "add", 2, 3, expected=5),
            limits=HostileLimits(flood_connections=64, baseline=0.1, cooldown=0.1),
            log=QUIET,
        )
    names = {t.name for t in threading.enumerate()}
    assert not names & {"faultlab-canary", "faultlab-hostile-rss"}
    assert len(os.listdir("/proc/self/fd")) <= before_fds + 2
    assert result.attacks(), "the attacks ran"


def test_an_interrupted_run_leaves_nothing_behind() -> None:
    """Ctrl-C between two attacks (here: raised by the progress log) stops the canary and
    the sampler and closes every socket before the interrupt propagates."""
    said: list[str] = []

    def interrupt_after_first_attack(text: str) -> None:
        said.append(text)
        if len(said) == 2:
            raise KeyboardInterrupt

    before_fds = len(os.listdir("/proc/self/fd"))
    with RpcServer(Calc(), protocol="jsonrpc") as server:
        with pytest.raises(KeyboardInterrupt):
            run_hostile(
                server.address,
                protocol="jsonrpc",
                canary=rpc_canary(server.address, "jsonrpc", "add", 2, 3, expected=5),
                pid=os.getpid(),  # this process: the RSS sampler runs too
                attacks=["flood", "slowloris"],
                limits=HostileLimits(baseline=0.1),
                log=interrupt_after_first_attack,
            )
    assert said[1].startswith("  flood")
    names = {t.name for t in threading.enumerate()}
    assert not names & {"faultlab-canary", "faultlab-hostile-rss"}
    assert len(os.listdir("/proc/self/fd")) <= before_fds + 2


def test_an_attack_stops_starting_work_after_its_timeout() -> None:
    """A listener that never accepts: past its full backlog every connect times out. 60 of
    them at 1 s each would take a minute; attack_timeout ends the flood after 2 s."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    try:
        port = listener.getsockname()[1]
        started = time.monotonic()
        result = run_hostile(
            f"127.0.0.1:{port}",
            protocol="http",
            canary=lambda: None,
            attacks=["flood"],
            limits=HostileLimits(flood_connections=60, flood_hold=0.1, attack_timeout=2.0),
            log=QUIET,
        )
        took = time.monotonic() - started
    finally:
        listener.close()
    (flood,) = result.attacks()
    assert flood["answers"].get("timeout", 0) >= 1, flood
    assert sum(flood["answers"].values()) < 60
    assert took < 20, f"the flood ran {took:.1f} s"


def test_non_loopback_targets_are_refused() -> None:
    with pytest.raises(NotLoopback, match="not a loopback address"):
        run_hostile("10.1.2.3:80", protocol="http", canary=lambda: None, log=QUIET)


def test_malformed_inputs_are_seeded() -> None:
    wire = wire_for("binrpc")
    first = malformed_inputs(wire, 12, seed=3)
    assert first == malformed_inputs(wire, 12, seed=3)
    assert first != malformed_inputs(wire, 12, seed=4)
    assert len(first) == 12


def test_events_land_in_the_given_journal() -> None:
    journal = Journal()
    with RpcServer(Calc(), protocol="jsonrpc") as server:
        result = run_hostile(
            server.address,
            protocol="jsonrpc",
            canary=rpc_canary(server.address, "jsonrpc", "add", 2, 3, expected=5),
            attacks=["malformed"],
            limits=HostileLimits(malformed_frames=6, baseline=0.1, cooldown=0.1),
            journal=journal,
            seed=9,
            log=QUIET,
        )
    kinds = {e["kind"] for e in journal.events()}
    assert {"hostile_run", "hostile_attack", "hostile_canary", "hostile_probe"} <= kinds
    assert check_hostile(journal.events()).passed
    head = result.events[0]
    assert head["seed"] == 9
    assert head["attacks"] == ["malformed"]
