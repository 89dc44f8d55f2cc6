"""What faultlab creates is private whatever the umask, and it never writes into a
runtime directory that another user owns or that is a symlink.

The umask is process-wide: each test sets it only around the calls that create
files, in a try/finally, so a failure never leaks a wide umask into later tests.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from faultlab import transports
from faultlab._cleanup import private_dir, runtime_dir
from faultlab.errors import AddressError, BrokenResourceError, UnsafeRuntimeDir
from faultlab.transports.tls import test_ca_files as ca_files  # not collected as a test

NOBODY = 65534
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to create a directory owned by another user"
)


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: str | Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def assert_lock_private(path: Path, mask: int) -> None:
    """Lock files (``_fdio.PidLock``: O_CREAT 0600, no fchmod) are 0600 & ~umask.

    Never wider than 0600, which is what privacy needs; a umask like 0277 narrows
    them to 0400, which the lock (opened once, at creation) does not mind.
    """
    assert mode(path) == 0o600 & ~mask


@pytest.fixture
def rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runtime directory of this test (short: socket paths must stay < 108 bytes)."""
    path = tmp_path / "rt"
    monkeypatch.setenv("FAULTLAB_RUNTIME_DIR", str(path))
    return path


# -- keys and certificates ---------------------------------------------------------


def test_tls_key_and_cert_are_0600_under_umask_000(rt: Path) -> None:
    with umask(0):
        ca, server = ca_files()
    assert (mode(ca), mode(server), mode(server.parent / ".lock")) == (0o600,) * 3
    assert (mode(rt), mode(server.parent)) == (0o700, 0o700)
    assert b"PRIVATE KEY" in server.read_bytes()


def test_the_lab_ca_key_is_0600_and_an_older_cache_without_it_is_renewed(rt: Path) -> None:
    from faultlab.transports.tls import lab_ca

    ca, _ = ca_files()
    key = ca.with_name("ca-key.pem")
    assert mode(key) == 0o600
    assert lab_ca().cert_pem.bytes() == ca.read_bytes()
    key.unlink()  # what a version before TLS interception left: no CA key
    ca_files()
    assert mode(key) == 0o600
    assert lab_ca().cert_pem.bytes() == ca.read_bytes()  # the new root, not a stale one


def test_tls_server_pem_left_0644_by_an_older_version_is_fixed(rt: Path) -> None:
    ca, server = ca_files()
    before = server.read_bytes()
    server.chmod(0o644)
    ca.chmod(0o644)
    assert ca_files() == (ca, server)
    assert (mode(ca), mode(server)) == (0o600, 0o600)
    assert server.read_bytes() == before  # fixed in place, not regenerated


def test_tls_planted_symlink_is_replaced_not_followed(rt: Path, tmp_path: Path) -> None:
    _, server = ca_files()
    elsewhere = tmp_path / "elsewhere.pem"
    elsewhere.write_bytes(b"not a key")
    server.unlink()
    server.symlink_to(elsewhere)
    ca_files()
    assert stat.S_ISREG(os.lstat(server).st_mode)
    assert mode(server) == 0o600
    assert b"PRIVATE KEY" in server.read_bytes()
    assert elsewhere.read_bytes() == b"not a key"


# -- sockets, FIFOs, queues --------------------------------------------------------


@pytest.mark.parametrize("scheme", ["unix", "unixgram"])
def test_unix_socket_is_0600_under_umask_000(rt: Path, scheme: str) -> None:
    path = rt / f"{scheme}.sock"
    runtime_dir()
    with umask(0):
        listener = transports.listen(f"{scheme}://{path}")
    try:
        assert mode(path) == 0o600
        transports.connect(listener.address, timeout=5).close()  # still usable by us
    finally:
        listener.close()


@pytest.mark.parametrize("scheme", ["unix", "unixgram"])
def test_unix_socket_mode_option(rt: Path, scheme: str) -> None:
    runtime_dir()
    with umask(0o077):  # would narrow 0660 to 0600 if the mode relied on the umask
        a = transports.listen(f"{scheme}://{rt}/a.sock?mode=0660")
        b = transports.listen(f"{scheme}://{rt}/b.sock", mode=0o640)
        try:
            assert (mode(rt / "a.sock"), mode(rt / "b.sock")) == (0o660, 0o640)
        finally:
            a.close()
            b.close()
    for bad in ("rw", "0999", "01777", "-1"):
        with pytest.raises(AddressError, match="mode"):
            transports.listen(f"{scheme}://{rt}/c.sock?mode={bad}")
    assert not (rt / "c.sock").exists()
    with pytest.raises(AddressError, match="abstract"):
        transports.listen(f"{scheme}://@faultlab-test-{os.getpid()}?mode=0600")


@pytest.mark.parametrize("mask", [0o000, 0o277])
def test_fifos_are_exactly_0600(rt: Path, mask: int) -> None:
    runtime_dir()
    path = rt / "ff"
    with umask(mask):
        listener = transports.listen(f"fifo://{path}")
        client = transports.connect(f"fifo://{path}", timeout=5)
    try:
        pairs = sorted(p for p in rt.iterdir() if p.name.endswith((".c2s", ".s2c")))
        assert len(pairs) == 2  # before accept, which unlinks them
        modes = {p.name: mode(p) for p in [path, *pairs]}
        assert set(modes.values()) == {0o600}, modes
        assert_lock_private(path.with_name("ff.lock"), mask)
        server = listener.accept(timeout=5)
        client.send(b"x")
        assert server.receive(timeout=5) == b"x"
        server.close()
    finally:
        client.close()
        listener.close()


@pytest.mark.parametrize("mask", [0o000, 0o277])
def test_mq_queues_and_lock_are_0600(rt: Path, mask: int) -> None:
    posix_ipc = pytest.importorskip("posix_ipc")
    reason = transports.get("mq").unavailable_reason()
    if reason is not None:
        pytest.skip(f"mq:// unavailable here: {reason}")
    runtime_dir()
    name = f"private-{os.getpid()}"
    with umask(mask):
        listener = transports.listen(f"mq://{name}")
        client = transports.connect(f"mq://{name}", timeout=5)
    try:
        server = listener.accept(timeout=5)
        rendezvous = posix_ipc.MessageQueue(f"/faultlab-mq-{name}")
        try:
            queues = [rendezvous, client._rq, client._wq, server._rq, server._wq]  # type: ignore[attr-defined]
            modes = [stat.S_IMODE(os.fstat(q.mqd).st_mode) for q in queues]
        finally:
            rendezvous.close()
        assert modes == [0o600] * 5
        assert_lock_private(rt / f"mq-{name}.lock", mask)
        server.close()
    finally:
        client.close()
        listener.close()


# -- the runtime directory ---------------------------------------------------------


def test_new_runtime_dir_and_its_parents_are_0700_under_umask_000(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a" / "b" / "rt"
    monkeypatch.setenv("FAULTLAB_RUNTIME_DIR", str(path))
    with umask(0):
        assert runtime_dir() == path
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", path)] == [0o700] * 3


def test_our_runtime_dir_left_0777_is_tightened(rt: Path) -> None:
    """Decision: tighten, not refuse. Only its owner (us) can have loosened it."""
    rt.mkdir()
    rt.chmod(0o777)
    assert runtime_dir() == rt
    assert mode(rt) == 0o700
    (rt / "tls").mkdir()
    (rt / "tls").chmod(0o755)
    ca_files()
    assert mode(rt / "tls") == 0o700


def _writers(rt: Path) -> list[tuple[str, object]]:
    """Every way faultlab writes into the runtime directory, as (name, thunk)."""
    return [
        ("tls", ca_files),
        ("unix", lambda: transports.get("unix").example_address("t")),
        ("fifo", lambda: transports.get("fifo").example_address("t")),
        ("mq", lambda: transports.listen(f"mq://refused-{os.getpid()}").close()),
    ]


def _assert_refused_and_untouched(rt: Path, match: str) -> None:
    for name, write in _writers(rt):
        if name == "mq" and transports.get("mq").unavailable_reason() is not None:
            continue
        with pytest.raises(UnsafeRuntimeDir, match=match):
            write()  # type: ignore[operator]


@needs_root
def test_runtime_dir_of_another_user_is_refused(rt: Path) -> None:
    rt.mkdir(mode=0o777)
    rt.chmod(0o777)
    os.chown(rt, NOBODY, NOBODY)
    with pytest.raises(UnsafeRuntimeDir) as info:
        runtime_dir()
    message = str(info.value)
    assert str(rt) in message
    assert f"uid {NOBODY}" in message
    assert "FAULTLAB_RUNTIME_DIR" in message
    assert isinstance(info.value, AddressError)
    _assert_refused_and_untouched(rt, f"uid {NOBODY}")
    assert os.listdir(rt) == []
    assert (mode(rt), os.lstat(rt).st_uid) == (0o777, NOBODY)  # not "fixed" either


@needs_root
def test_default_runtime_dir_squatted_by_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared-/tmp case: someone else created faultlab-UID first."""
    monkeypatch.delenv("FAULTLAB_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    squatted = tmp_path / f"faultlab-{os.getuid()}"
    squatted.mkdir(mode=0o700)
    os.chown(squatted, NOBODY, NOBODY)
    _assert_refused_and_untouched(squatted, str(squatted))
    assert os.listdir(squatted) == []


@needs_root
def test_tls_folder_of_another_user_is_refused(rt: Path) -> None:
    (rt / "tls").mkdir(parents=True, mode=0o700)
    os.chown(rt / "tls", NOBODY, NOBODY)
    with pytest.raises(UnsafeRuntimeDir, match=f"uid {NOBODY}"):
        ca_files()
    assert os.listdir(rt / "tls") == []


def test_symlinked_runtime_dir_is_refused(rt: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    rt.symlink_to(target)
    with pytest.raises(UnsafeRuntimeDir, match="symbolic link"):
        runtime_dir()
    _assert_refused_and_untouched(rt, "symbolic link")
    assert os.listdir(target) == []


def test_runtime_dir_that_is_a_file_is_refused(rt: Path) -> None:
    rt.write_bytes(b"")
    with pytest.raises(UnsafeRuntimeDir, match="not a directory"):
        runtime_dir()


def test_private_dir_without_parents_does_not_create_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        private_dir(tmp_path / "missing" / "dir")


# -- shm: an abstract name has no mode, so the peer's user is checked --------------


def _as_nobody(child: object) -> int:
    """Fork a child that drops to uid 65534 and runs ``child(ready_fd)``."""
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(ready_r)
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            child(ready_w)  # type: ignore[operator]
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"1", "the child did not get ready"
    os.close(ready_r)
    return pid


def _reap(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)
    os.waitpid(pid, 0)


@needs_root
def test_shm_listener_refuses_a_client_of_another_user() -> None:
    listener = transports.listen("shm://")
    name = listener.address.split("://", 1)[1]

    def child(ready: int) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.connect(b"\0faultlab-shm-" + name.encode())
        os.write(ready, b"1")
        time.sleep(30)

    pid = _as_nobody(child)
    try:
        with pytest.raises(BrokenResourceError, match=f"uid {NOBODY}"):
            listener.accept(timeout=5)
    finally:
        _reap(pid)
        listener.close()


@needs_root
def test_shm_client_refuses_a_listener_of_another_user() -> None:
    name = f"squat-{os.getpid()}"

    def child(ready: int) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.bind(b"\0faultlab-shm-" + name.encode())
        sock.listen(8)
        os.write(ready, b"1")
        time.sleep(30)

    pid = _as_nobody(child)
    try:
        with pytest.raises(BrokenResourceError, match=f"uid {NOBODY}"):
            transports.connect(f"shm://{name}", timeout=5)
    finally:
        _reap(pid)
