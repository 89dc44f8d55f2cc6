"""fifo:// and mq://: rendezvous, backlog semantics, peer death, cleanup, fragmentation."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from faultlab import transports
from faultlab._cleanup import runtime_dir
from faultlab.errors import (
    AddressError,
    BrokenResourceError,
    ClosedResourceError,
    EndOfStream,
    MessageTooLarge,
    TransportTimeout,
)
from faultlab.streams import ByteStream, Listener, MessageStream, Stream, receive_exactly
from faultlab.transports import conformance as cf
from faultlab.transports.base import Transport

SCHEMES = ["fifo", "mq"]

_HOLD_SERVER = """
import sys, time
from faultlab import transports
listener = transports.listen(sys.argv[1])
print("READY", listener.address, flush=True)
time.sleep(60)
"""


@pytest.fixture(params=SCHEMES)
def transport(request: pytest.FixtureRequest) -> Transport:
    t = transports.get(request.param)
    if t.unavailable_reason():
        pytest.skip(t.unavailable_reason() or "")
    return t


@pytest.fixture
def listener(transport: Transport) -> Iterator[Listener[ByteStream] | Listener[MessageStream]]:
    with transport.listen(transport.example_address("unit")) as lst:
        yield lst


class Child:
    """A subprocess that printed ``READY``; killed and reaped at teardown."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("READY"):
            self.close()
            raise AssertionError(f"child did not start: {line!r}")
        self.address = line.split()[1] if len(line.split()) > 1 else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        self.kill()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def children() -> Iterator[Callable[[list[str]], Child]]:
    started: list[Child] = []

    def start(args: list[str]) -> Child:
        child = Child(args)
        started.append(child)
        return child

    yield start
    for child in started:
        child.close()


def _send(stream: Stream, data: bytes) -> None:
    stream.send(data, timeout=5)


def _recv(stream: Stream, n: int) -> bytes:
    if isinstance(stream, ByteStream):
        return receive_exactly(stream, n, timeout=5)
    return stream.receive(timeout=5)


def _send_then_receive(stream: Stream, data: bytes, timeout: float) -> None:
    stream.send(data, timeout=timeout)
    stream.receive(timeout=timeout)


def _fill(stream: Stream, timeout: float) -> None:
    """Send until the peer's buffer is full (the peer never reads)."""
    for _ in range(1000):
        stream.send(b"\0" * 65536, timeout=timeout)


def _leftovers(address: str) -> set[str]:
    """Files a fifo:// or mq:// address may leave: FIFOs, lock files."""
    parsed = transports.parse_address(address)
    if parsed.scheme == "fifo":
        path = Path(parsed.path)
        return {p.name for p in path.parent.iterdir() if p.name.startswith(path.name)}
    name = address.split("://", 1)[1]
    return {p.name for p in runtime_dir().glob(f"mq-{name}.lock")}


# -- cross-process ------------------------------------------------------------------


def test_cross_process_round_trip_then_sigkill(
    transport: Transport, children: Callable[[list[str]], Child]
) -> None:
    address = transport.example_address("xproc")
    peer = children(["-m", "faultlab.transports._peer", "echo", address])
    assert peer.address == address
    stream = transport.connect(address, timeout=10)
    try:
        cf.check_round_trip(stream, (0, 1, 64 * 1024, 1 << 20))
        peer.kill()
        started = time.monotonic()
        with pytest.raises((EndOfStream, BrokenResourceError)):
            _send_then_receive(stream, b"after", timeout=2)
        assert time.monotonic() - started < 2.0
    finally:
        stream.close()
    with transport.listen(address):  # the killed server's leftovers are stale, not "in use"
        pass
    assert _leftovers(address) == set()


def test_server_killed_before_accepting_is_seen(
    transport: Transport, children: Callable[[list[str]], Child]
) -> None:
    """A connected but not yet accepted client still watches the server's pid."""
    address = transport.example_address("noaccept")
    server = children(["-c", _HOLD_SERVER, address])
    stream = transport.connect(address, timeout=5)
    try:
        server.kill()
        started = time.monotonic()
        with pytest.raises(BrokenResourceError):
            stream.receive(timeout=5)
        assert time.monotonic() - started < 2.0
    finally:
        stream.close()


def test_client_killed_before_accept_gives_a_finished_stream(
    transport: Transport,
    listener: Listener[ByteStream] | Listener[MessageStream],
    children: Callable[[list[str]], Child],
) -> None:
    client = children(["-m", "faultlab.transports._peer", "hold", listener.address])
    client.kill()
    with listener.accept(timeout=5) as server, pytest.raises((EndOfStream, BrokenResourceError)):
        server.receive(timeout=2)


# -- backlog semantics ------------------------------------------------------------


def test_connect_and_send_before_accept(
    transport: Transport, listener: Listener[ByteStream] | Listener[MessageStream]
) -> None:
    client = transport.connect(listener.address, timeout=5)
    _send(client, b"early")
    with client, listener.accept(timeout=5) as server:
        assert _recv(server, 5) == b"early"
        _send(server, b"reply")
        assert _recv(client, 5) == b"reply"


def test_close_before_accept_still_delivers(
    transport: Transport, listener: Listener[ByteStream] | Listener[MessageStream]
) -> None:
    client = transport.connect(listener.address, timeout=5)
    _send(client, b"parting gift")
    client.close()
    with listener.accept(timeout=5) as server:
        assert _recv(server, 12) == b"parting gift"
        with pytest.raises(EndOfStream):
            server.receive(timeout=5)


def test_close_without_data_before_accept(
    transport: Transport, listener: Listener[ByteStream] | Listener[MessageStream]
) -> None:
    transport.connect(listener.address, timeout=5).close()
    with listener.accept(timeout=5) as server, pytest.raises(EndOfStream):
        server.receive(timeout=2)


def test_send_eof_before_accept(
    transport: Transport, listener: Listener[ByteStream] | Listener[MessageStream]
) -> None:
    client = transport.connect(listener.address, timeout=5)
    _send(client, b"ask")
    client.send_eof()
    with client, listener.accept(timeout=5) as server:
        assert _recv(server, 3) == b"ask"
        with pytest.raises(EndOfStream):
            server.receive(timeout=5)
        _send(server, b"answer")
        assert _recv(client, 6) == b"answer"


def test_listener_close_rejects_waiting_clients(transport: Transport) -> None:
    lst = transport.listen(transport.example_address("reject"))
    client = transport.connect(lst.address, timeout=5)
    lst.close()
    started = time.monotonic()
    with client, pytest.raises(BrokenResourceError):
        client.receive(timeout=5)
    assert time.monotonic() - started < 1.0


def test_several_clients_at_once(
    transport: Transport, listener: Listener[ByteStream] | Listener[MessageStream]
) -> None:
    clients: list[Stream] = []
    servers: list[Stream] = []
    try:
        for _ in range(6):
            clients.append(transport.connect(listener.address, timeout=5))
            servers.append(listener.accept(timeout=5))
        for i, client in enumerate(clients):
            _send(client, b"client %d" % i)
        got = sorted(_recv(server, 8) for server in servers)
        assert got == sorted(b"client %d" % i for i in range(6))
    finally:
        for stream in clients + servers:
            stream.close()


def test_accept_wakes_up_when_closed_from_another_thread(transport: Transport) -> None:
    lst = transport.listen(transport.example_address("wake"))
    errors: list[BaseException] = []

    def accept() -> None:
        try:
            lst.accept(timeout=30)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=accept)
    thread.start()
    time.sleep(0.1)
    lst.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], ClosedResourceError)


# -- typed errors and timeouts -------------------------------------------------------


def test_use_after_close(
    transport: Transport, listener: Listener[ByteStream] | Listener[MessageStream]
) -> None:
    client, server = cf.connected_pair(listener, lambda: transport.connect(listener.address))
    client.close()
    server.close()
    for op in (lambda: client.send(b"x"), lambda: server.receive(timeout=1)):
        with pytest.raises(ClosedResourceError):
            op()
    listener.close()
    with pytest.raises(ClosedResourceError):
        listener.accept(timeout=1)


def test_send_times_out_when_peer_does_not_read(
    transport: Transport, listener: Listener[ByteStream] | Listener[MessageStream]
) -> None:
    client, server = cf.connected_pair(listener, lambda: transport.connect(listener.address))
    with client, server:
        started = time.monotonic()
        with pytest.raises(TransportTimeout):
            _fill(client, timeout=0.2)
        assert time.monotonic() - started < 3


def test_negative_timeout_is_refused(
    transport: Transport, listener: Listener[ByteStream] | Listener[MessageStream]
) -> None:
    client, server = cf.connected_pair(listener, lambda: transport.connect(listener.address))
    with client, server, pytest.raises(ValueError, match="timeout"):
        client.receive(timeout=-1)


def test_address_in_use_is_an_address_error(
    transport: Transport, listener: Listener[ByteStream] | Listener[MessageStream]
) -> None:
    with pytest.raises(AddressError, match="in use"):
        transport.listen(listener.address)


@pytest.mark.parametrize(
    "address", ["fifo://relative/name", "fifo:///no/such/dir/x", "fifo:///tmp/", "mq://a/b"]
)
def test_bad_addresses(address: str) -> None:
    with pytest.raises(AddressError):
        transports.listen(address)


def test_fifo_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("precious")
    with pytest.raises(AddressError, match="not a FIFO"):
        transports.listen(f"fifo://{target}")
    assert target.read_text() == "precious"
    assert not (tmp_path / "taken.lock").exists()


def test_mq_keeps_the_case_of_names() -> None:
    transport = transports.get("mq")
    address = transport.example_address("CamelCase")
    with transport.listen(address) as lst:
        assert lst.address == address
        with transport.connect(address, timeout=5) as client, lst.accept(timeout=5) as server:
            client.send(b"ok")
            assert server.receive(timeout=5) == b"ok"


# -- cleanup ------------------------------------------------------------------------


def test_nothing_is_left_after_close(transport: Transport) -> None:
    address = transport.example_address("clean")
    with transport.listen(address) as lst:
        client, server = cf.connected_pair(lst, lambda: transport.connect(address))
        with client, server:
            _send(client, b"x")
            assert _recv(server, 1) == b"x"
        if transport.scheme == "fifo":  # the pair FIFOs are gone once both ends are open
            name = Path(transports.parse_address(address).path).name
            assert _leftovers(address) == {name, name + ".lock"}
    assert _leftovers(address) == set()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_fifo_sweeps_only_dead_owners_leftovers(tmp_path: Path) -> None:
    base = tmp_path / "srv"
    dead = tmp_path / f"srv.{_dead_pid()}.{'a' * 16}.c2s"
    live = tmp_path / f"srv.{os.getpid()}.{'b' * 16}.c2s"
    for path in (dead, live):
        os.mkfifo(path)
    os.mkfifo(base)  # a crashed server's rendezvous: its lock file is not held
    (tmp_path / "srv.lock").write_text(f"{_dead_pid()}\n")
    os.mkfifo(tmp_path / "other")  # another crashed server in the same directory
    (tmp_path / "other.lock").write_text(f"{_dead_pid()}\n")
    with transports.listen(f"fifo://{tmp_path}/alive"):
        with transports.listen(f"fifo://{base}"):
            assert not dead.exists()
            assert live.exists()
            assert not (tmp_path / "other").exists()
            assert (tmp_path / "alive").exists()  # a live server's: kept
            assert (tmp_path / "alive.lock").exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["alive", "alive.lock", live.name]


def test_mq_sweeps_a_dead_servers_rendezvous() -> None:
    import posix_ipc

    transport = transports.get("mq")
    stale = transport.example_address("stale").split("://")[1]
    queue = posix_ipc.MessageQueue(f"/faultlab-mq-{stale}", posix_ipc.O_CREX)
    queue.close()
    lock = runtime_dir() / f"mq-{stale}.lock"
    lock.write_text(f"{_dead_pid()}\n")
    with pytest.raises(BrokenResourceError):  # a client sees the server is gone
        transport.connect(f"mq://{stale}", timeout=1)
    with transport.listen(transport.example_address("other")):
        pass  # any listen sweeps leftovers whose lock is free
    assert not lock.exists()
    with pytest.raises(posix_ipc.ExistentialError):
        posix_ipc.unlink_message_queue(f"/faultlab-mq-{stale}")


# -- mq framing -----------------------------------------------------------------------


@pytest.fixture
def mq_pair() -> Iterator[tuple[MessageStream, MessageStream]]:
    transport = transports.get("mq")
    with transport.listen(transport.example_address("frag")) as lst:
        client, server = cf.connected_pair(lst, lambda: transport.connect(lst.address))
        assert isinstance(client, MessageStream)
        assert isinstance(server, MessageStream)
        with client, server:
            yield client, server


@pytest.mark.parametrize("size", [0, 8190, 8191, 8192, 16382, 16383, 3 * 8191 + 1])
def test_mq_fragment_boundaries(mq_pair: tuple[MessageStream, MessageStream], size: int) -> None:
    client, server = mq_pair
    payload = bytes(i % 251 for i in range(size))
    thread = threading.Thread(target=client.send, args=(payload,))
    thread.start()
    assert server.receive(timeout=5) == payload
    thread.join(5)


def test_mq_message_too_large(mq_pair: tuple[MessageStream, MessageStream]) -> None:
    client, _ = mq_pair
    with pytest.raises(MessageTooLarge):
        client.send(b"\0" * (client.max_message_size + 1))


def test_mq_torn_send_does_not_corrupt_later_messages(
    mq_pair: tuple[MessageStream, MessageStream],
) -> None:
    client, server = mq_pair
    with pytest.raises(TransportTimeout):
        client.send(b"\1" * (1 << 20), timeout=0.1)  # fills the queue, then times out
    big = bytes(range(256)) * 100
    results: list[bytes] = []
    reader = threading.Thread(target=lambda: results.extend(server.receive() for _ in range(2)))
    reader.start()
    client.send(b"small", timeout=5)
    client.send(big, timeout=5)
    reader.join(10)
    assert results == [b"small", big]
