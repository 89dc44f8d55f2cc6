"""The whole protocol x transport matrix, end to end, server and client in two processes.

Skipped combinations (one table, also in docs/rpc.md): REST needs HTTP, which needs a
byte stream, so it does not run over message transports (udp, unixgram, shm, mq).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from faultlab import transports
from faultlab._proc import ChildProcess, spawn_ready
from faultlab.rpc import ApplicationError, Client, InvalidParams, MethodNotFound
from faultlab.rpc.base import get_protocol

PROTOCOLS = ["jsonrpc", "xmlrpc", "msgpackrpc", "binrpc", "rest"]
TRANSPORTS = [t for t in transports.all_transports() if t.unavailable_reason() is None]
SKIPPED = {
    (p, t.scheme): "REST is carried over HTTP and needs a byte stream"
    for p in ["rest"]
    for t in TRANSPORTS
    if t.capabilities.kind == "message"
}
CASES = [
    pytest.param(
        p,
        t.scheme,
        id=f"{p}-{t.scheme}",
        marks=[pytest.mark.skip(reason=SKIPPED[p, t.scheme])] if (p, t.scheme) in SKIPPED else [],
    )
    for p in PROTOCOLS
    for t in TRANSPORTS
]


def start_server(protocol: str, scheme: str, *extra: str) -> ChildProcess:
    address = transports.get(scheme).example_address("rpc")
    return spawn_ready(
        [
            sys.executable,
            "-m",
            "faultlab.examples.serve",
            "calc",
            "--protocol",
            protocol,
            "--transport",
            address,
            "--exit-with-stdin",
            *extra,
        ],
        timeout=30,
    )


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[ChildProcess]:
    protocol, scheme = request.param
    child = start_server(protocol, scheme)
    yield child
    child.close()


@pytest.mark.parametrize(("protocol", "scheme"), CASES)
def test_calc_end_to_end(protocol: str, scheme: str) -> None:
    child = start_server(protocol, scheme)
    try:
        with Client(child.address, protocol, timeout=20) as client:
            assert client.add(2, 3) == 5
            if protocol not in ("xmlrpc", "msgpackrpc"):  # these have positional params only
                assert client.call("add", a=1.5, b=2) == 3.5
            value = {"name": "ünïcode ✓", "items": [1, 2.5, None, True], "nested": {"k": ["v"]}}
            if protocol == "xmlrpc":
                value["items"] = [1, 2.5, True]
            assert client.echo(value) == value
            big = "x" * (256 * 1024)
            assert client.echo(big) == big
            first = client.counter.incr(1)
            assert client.counter.incr(1) == first + 1
            with pytest.raises(ApplicationError, match="division by zero"):
                client.div(1, 0)
            with pytest.raises(MethodNotFound):
                client.no_such_method()
            with pytest.raises(InvalidParams):
                client.add("two", 3)
            assert client.add(20, 22) == 42  # the connection is still good after errors
    finally:
        child.close()


@pytest.mark.parametrize(
    ("protocol", "scheme"),
    [(p, "tcp") for p in ["jsonrpc", "msgpackrpc", "binrpc"]] + [("msgpackrpc", "unixgram")],
)
def test_pipelined_calls(protocol: str, scheme: str) -> None:
    child = start_server(protocol, scheme)
    try:
        with Client(child.address, protocol) as client:
            replies = client.pipeline([("add", (i, i)) for i in range(50)])
            assert [r.unwrap() for r in replies] == [2 * i for i in range(50)]
    finally:
        child.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_concurrent_clients(protocol: str) -> None:
    child = start_server(protocol, "tcp")
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with Client(child.address, protocol) as client:
                for i in range(40):
                    assert client.add(n, i) == n + i
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
    finally:
        child.close()


@pytest.mark.parametrize(
    ("protocol", "framing"),
    [
        ("jsonrpc", "lines"),
        ("jsonrpc", "length-prefix"),
        ("xmlrpc", "length-prefix"),
        ("msgpackrpc", "length-prefix"),
    ],
)
def test_alternative_framings(protocol: str, framing: str) -> None:
    child = start_server(protocol, "unix", "--framing", framing)
    try:
        with Client(child.address, protocol, framing=framing) as client:
            assert client.add(1, 2) == 3
    finally:
        child.close()


def test_protocol_framing_mismatch_is_refused_clearly() -> None:
    from faultlab.errors import LocalProtocolError

    with pytest.raises(LocalProtocolError, match="does not use framing"):
        Client("tcp://127.0.0.1:1", "binrpc", framing="lines")
    assert get_protocol("rest").message_transports is False
