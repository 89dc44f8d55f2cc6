"""Raw-Python baselines: the same mechanism with bare syscalls, no faultlab.

Each baseline is an echo server (``serve``) and a client (``client``) giving
``(round_trip, close)``. ``faultlab bench transports`` runs both in the same
run as faultlab's transport, so the ratio compares like with like.

``python -m faultlab.bench.raw SCHEME ADDRESS [--cpu N]`` runs a server that
prints ``READY`` and echoes one client at a time until killed.
"""

from __future__ import annotations

import argparse
import mmap
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable
from pathlib import Path

from faultlab.transports.base import parse_address

__all__ = ["BASELINES", "RoundTrip", "cleanup", "client", "serve"]

RoundTrip = Callable[[bytes], bytes]
_LEN = struct.Struct("!I")
_SLOT = 1 << 16


def _sock_pair(addr: str) -> tuple[socket.socket, object]:
    p = parse_address(addr)
    if p.scheme in ("tcp", "tls", "udp"):
        fam = socket.AF_INET6 if ":" in p.host else socket.AF_INET
        kind = socket.SOCK_DGRAM if p.scheme == "udp" else socket.SOCK_STREAM
        return socket.socket(fam, kind), (p.host, p.port)
    kind = socket.SOCK_SEQPACKET if p.scheme == "unixgram" else socket.SOCK_STREAM
    target = b"\0" + p.path[1:].encode() if p.path.startswith("@") else p.path
    return socket.socket(socket.AF_UNIX, kind), target


def _recv_exact(recv: Callable[[int], bytes], n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def _stream_echo(conn: socket.socket) -> None:
    while True:
        data = conn.recv(1 << 16)
        if not data:
            return
        conn.sendall(data)


def _tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from faultlab.transports.tls import test_ca_files

    ca, server = test_ca_files()
    sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    sctx.load_cert_chain(str(server))
    return sctx, ssl.create_default_context(cafile=str(ca))


def _serve_socket(addr: str, ready: Callable[[str], None]) -> None:
    scheme = parse_address(addr).scheme
    sock, target = _sock_pair(addr)
    sock.bind(target)  # type: ignore[arg-type]
    if scheme == "udp":
        host, port = sock.getsockname()[:2]
        ready(f"udp://{host}:{port}")
        while True:
            data, peer = sock.recvfrom(1 << 16)
            sock.sendto(data, peer)
    sock.listen(8)
    if scheme in ("tcp", "tls"):
        host, port = sock.getsockname()[:2]
        ready(f"{scheme}://{host}:{port}")
    else:
        ready(addr)
    while True:
        conn, _ = sock.accept()
        if scheme == "tls":
            conn = _tls_contexts()[0].wrap_socket(conn, server_side=True)
        if scheme in ("tcp", "tls"):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "unixgram":
            while data := conn.recv(1 << 16):
                conn.send(data)
        else:
            _stream_echo(conn)
        conn.close()


def _client_socket(addr: str) -> tuple[RoundTrip, Callable[[], None]]:
    scheme = parse_address(addr).scheme
    sock, target = _sock_pair(addr)
    sock.connect(target)  # type: ignore[arg-type]
    if scheme in ("tcp", "tls"):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if scheme == "tls":
        host = parse_address(addr).host
        sock = _tls_contexts()[1].wrap_socket(sock, server_hostname=host)
    if scheme in ("udp", "unixgram"):

        def rt(payload: bytes) -> bytes:
            sock.send(payload)
            return sock.recv(1 << 16)
    else:

        def rt(payload: bytes) -> bytes:
            sock.sendall(payload)
            return _recv_exact(sock.recv, len(payload))

    return rt, sock.close


def _fifo_names(addr: str) -> tuple[str, str]:
    base = parse_address(addr).path
    return base + ".raw-c2s", base + ".raw-s2c"


def _serve_fifo(addr: str, ready: Callable[[str], None]) -> None:
    c2s, s2c = _fifo_names(addr)
    Path(c2s).parent.mkdir(parents=True, exist_ok=True)
    for name in (c2s, s2c):
        if not os.path.exists(name):
            os.mkfifo(name, 0o600)
    ready(addr)
    while True:  # one client at a time; the FIFOs stay for the next one
        rfd = os.open(c2s, os.O_RDONLY)
        wfd = os.open(s2c, os.O_WRONLY)
        while data := os.read(rfd, 1 << 16):
            os.write(wfd, data)
        os.close(rfd)
        os.close(wfd)


def _client_fifo(addr: str) -> tuple[RoundTrip, Callable[[], None]]:
    c2s, s2c = _fifo_names(addr)
    wfd = os.open(c2s, os.O_WRONLY)
    rfd = os.open(s2c, os.O_RDONLY)

    def rt(payload: bytes) -> bytes:
        os.write(wfd, payload)
        return _recv_exact(lambda n: os.read(rfd, n), len(payload))

    def close() -> None:
        os.close(wfd)
        os.close(rfd)

    return rt, close


def cleanup(address: str) -> None:
    """Remove what a raw server left behind (FIFO files) once it is gone."""
    if parse_address(address).scheme == "fifo":
        for name in _fifo_names(address):
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass


def _mq_names(addr: str) -> tuple[str, str]:
    name = parse_address(addr).host or parse_address(addr).path.strip("/")
    return f"/faultlab-raw-{name}-c2s", f"/faultlab-raw-{name}-s2c"


def _serve_mq(addr: str, ready: Callable[[str], None]) -> None:
    import posix_ipc

    c2s, s2c = (posix_ipc.MessageQueue(n, posix_ipc.O_CREAT) for n in _mq_names(addr))
    ready(addr)
    while True:
        data, _ = c2s.receive()
        s2c.send(data)


def _client_mq(addr: str) -> tuple[RoundTrip, Callable[[], None]]:
    import posix_ipc

    names = _mq_names(addr)
    c2s, s2c = (posix_ipc.MessageQueue(n) for n in names)

    def rt(payload: bytes) -> bytes:
        c2s.send(payload)
        return bytes(s2c.receive()[0])

    def close() -> None:
        for q, n in zip((c2s, s2c), names, strict=True):
            q.close()
            try:
                posix_ipc.unlink_message_queue(n)
            except posix_ipc.ExistentialError:
                pass

    return rt, close


def _shm_names(addr: str) -> tuple[str, str, str]:
    name = parse_address(addr).host or parse_address(addr).path.strip("/")
    return f"/faultlab-raw-{name}", f"/faultlab-raw-{name}-c2s", f"/faultlab-raw-{name}-s2c"


def _serve_shm(addr: str, ready: Callable[[str], None]) -> None:
    """Shared memory with a posix semaphore hand-off each way (the measured baseline)."""
    import posix_ipc

    seg_name, c2s_name, s2c_name = _shm_names(addr)
    seg = posix_ipc.SharedMemory(seg_name, posix_ipc.O_CREAT, size=2 * (_SLOT + 4))
    mem = mmap.mmap(seg.fd, seg.size)
    seg.close_fd()
    c2s = posix_ipc.Semaphore(c2s_name, posix_ipc.O_CREAT, initial_value=0)
    s2c = posix_ipc.Semaphore(s2c_name, posix_ipc.O_CREAT, initial_value=0)
    ready(addr)
    half = _SLOT + 4
    while True:
        c2s.acquire()
        (n,) = _LEN.unpack_from(mem, 0)
        mem[half : half + 4 + n] = mem[0 : 4 + n]
        s2c.release()


def _client_shm(addr: str) -> tuple[RoundTrip, Callable[[], None]]:
    import posix_ipc

    names = _shm_names(addr)
    seg = posix_ipc.SharedMemory(names[0])
    mem = mmap.mmap(seg.fd, seg.size)
    seg.close_fd()
    c2s, s2c = posix_ipc.Semaphore(names[1]), posix_ipc.Semaphore(names[2])
    half = _SLOT + 4

    def rt(payload: bytes) -> bytes:
        n = len(payload)
        _LEN.pack_into(mem, 0, n)
        mem[4 : 4 + n] = payload
        c2s.release()
        s2c.acquire()
        return mem[half + 4 : half + 4 + n]

    def close() -> None:
        mem.close()
        for unlink, n in (
            (posix_ipc.unlink_shared_memory, names[0]),
            (posix_ipc.unlink_semaphore, names[1]),
            (posix_ipc.unlink_semaphore, names[2]),
        ):
            try:
                unlink(n)
            except posix_ipc.ExistentialError:
                pass

    return rt, close


_Server = Callable[[str, Callable[[str], None]], None]
_Client = Callable[[str], tuple[RoundTrip, Callable[[], None]]]
BASELINES: dict[str, tuple[str, _Server, _Client]] = {
    "tcp": ("socket sendall/recv", _serve_socket, _client_socket),
    "tls": ("ssl socket sendall/recv", _serve_socket, _client_socket),
    "udp": ("socket send/recv", _serve_socket, _client_socket),
    "unix": ("socket sendall/recv", _serve_socket, _client_socket),
    "unixgram": ("SEQPACKET send/recv", _serve_socket, _client_socket),
    "fifo": ("os.read/os.write FIFO pair", _serve_fifo, _client_fifo),
    "mq": ("posix_ipc queue pair", _serve_mq, _client_mq),
    "shm": ("shm + posix semaphore pair", _serve_shm, _client_shm),
}


def serve(address: str, ready: Callable[[str], None]) -> None:
    scheme = parse_address(address).scheme
    BASELINES[scheme][1](address, ready)


def client(address: str, timeout: float = 10) -> tuple[RoundTrip, Callable[[], None]]:
    """Connect the raw client, retrying briefly while the server sets up."""
    scheme = parse_address(address).scheme
    deadline = time.monotonic() + timeout
    while True:
        try:
            return BASELINES[scheme][2](address)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m faultlab.bench.raw")
    parser.add_argument("address")
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    serve(args.address, lambda real: print(f"READY {real}", flush=True))


if __name__ == "__main__":
    main()
