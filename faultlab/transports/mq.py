"""``mq://name``: POSIX message queues (posix_ipc), one queue pair per connection.

Rendezvous: the listener owns the queue ``/faultlab-mq-<name>`` and the lock
file ``mq-<name>.lock`` in the runtime directory (flock-held, naming its pid).
A client creates ``/faultlab-mqc-<pid>-<token>-c2s`` and ``-s2c`` and posts a
request naming them; ``accept`` opens both, unlinks the names (the queues live
on while open) and posts an ack carrying its pid ahead of any data. The queues
exist before ``accept``, so a client may send before it is accepted.

Without CAP_SYS_RESOURCE a queue holds at most 10 messages of at most 8 KiB,
so every queue message starts with a one-byte header: last/more fragment, end
of stream, ack, reject, or abort (drop a message torn by a send timeout).
Queue fds are pollable on Linux: waits poll them together with the peer's
pidfd, so a SIGKILLed peer is reported at once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import select
import struct
import threading
import uuid
from typing import Any

from faultlab._cleanup import Owner, pid_alive, runtime_dir
from faultlab.errors import (
    AddressError,
    BrokenResourceError,
    ClosedResourceError,
    EndOfStream,
    MessageTooLarge,
    TransportError,
)
from faultlab.streams import DEFAULT_TIMEOUT, Listener, MessageStream
from faultlab.transports import register
from faultlab.transports._fdio import (
    PidLock,
    close_quietly,
    end_time,
    lock_holder,
    open_pidfd,
    poll_until,
    sweep_stale_lock,
)
from faultlab.transports.base import Capabilities, ParsedAddress, Transport

try:
    import posix_ipc
except ImportError:  # pragma: no cover - the transport reports itself unavailable
    posix_ipc = None

__all__ = ["MqListener", "MqStream", "MqTransport"]

_RENDEZVOUS = "/faultlab-mq-"
_CONN = "/faultlab-mqc-"
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_REQUEST = re.compile(rb"FLMQ1 ([1-9][0-9]{0,9}) ([0-9a-f]{16})")
_REQUEST_SIZE = 64
_MAX_MESSAGE = 16 << 20
_PID = struct.Struct("<i")

# One-byte header of every queue message.
_LAST, _MORE, _EOF, _ACK, _REJECT, _ABORT = range(6)
_H_LAST, _H_MORE, _H_EOF, _H_ACK, _H_REJECT, _H_ABORT = (bytes([h]) for h in range(6))

_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT


def _sysctl(name: str, default: int) -> int:
    try:
        with open(f"/proc/sys/fs/mqueue/{name}") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


# The unprivileged ceilings: larger values fail with EINVAL without CAP_SYS_RESOURCE.
_MSG_MAX = max(1, min(10, _sysctl("msg_max", 10)))
_MSGSIZE = max(256, min(8192, _sysctl("msgsize_max", 8192)))


def _mq_name(parsed: ParsedAddress) -> str:
    """The name as written (``parse_address`` lowercases hosts), ``mq://n`` or ``mq:///n``."""
    rest = parsed.uri.split("://", 1)[1].split("?", 1)[0].split("#", 1)[0]
    name = rest[1:] if rest.startswith("/") else rest
    if not _NAME.fullmatch(name):
        raise AddressError(f"{parsed.uri!r}: use mq://name with letters, digits, '_', '.', '-'")
    return name


def _lock_path(name: str) -> str:
    return str(runtime_dir() / f"mq-{name}.lock")


def _conn_names(pid: int, token: str) -> tuple[str, str]:
    base = f"{_CONN}{pid}-{token}"
    return base + "-c2s", base + "-s2c"


def _unlink_queue(name: str) -> None:
    with contextlib.suppress(posix_ipc.ExistentialError):
        posix_ipc.unlink_message_queue(name)


def _close_queue(queue: Any) -> None:
    if queue is not None:
        with contextlib.suppress(posix_ipc.Error):
            queue.close()


def _create_queue(name: str, size: int) -> Any:
    """Create a non-blocking queue, shrinking it if the per-user queue memory is short.

    RLIMIT_MSGQUEUE (800 KiB by default) fits only about nine full-size queues
    per user, so later connections get fewer slots rather than failing.
    """
    for slots in sorted({_MSG_MAX, min(_MSG_MAX, 4), min(_MSG_MAX, 2), 1}, reverse=True):
        try:
            queue = posix_ipc.MessageQueue(
                name, posix_ipc.O_CREX, mode=0o600, max_messages=slots, max_message_size=size
            )
        except OSError:  # EMFILE/ENOMEM: RLIMIT_MSGQUEUE exhausted
            continue
        except (posix_ipc.Error, ValueError) as exc:
            raise BrokenResourceError(f"cannot create message queue {name}: {exc}") from exc
        queue.block = False
        return queue
    raise BrokenResourceError(
        f"cannot create message queue {name}: per-user queue memory (ulimit -q) is exhausted"
    )


def _open_queue(name: str, *, read: bool) -> Any:
    queue = posix_ipc.MessageQueue(name, read=read, write=not read)
    queue.block = False
    return queue


class MqStream(MessageStream):
    """One connection: receive from ``rq``, send to ``wq``, watch the peer's pidfd."""

    max_message_size = _MAX_MESSAGE

    def __init__(
        self,
        rq: Any,
        wq: Any,
        pidfd: int | None,
        *,
        owner: Owner | None = None,
        watched_pid: int | None = None,
    ) -> None:
        self._rq = rq
        self._wq = wq
        self._unit = int(wq.max_message_size) - 1
        self._pidfd = pidfd
        self._watched_pid = watched_pid
        self._owner = owner  # a client's queue names, until the server's ack
        self._closed = False
        self._eof_sent = False
        self._eof_seen = False
        self._sent_data = False
        self._torn = False
        self._parts: list[bytes] = []
        self._parts_size = 0
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._rpoll = select.poll()
        self._rpoll.register(rq.mqd, _POLLIN)
        self._wpoll = select.poll()
        self._wpoll.register(wq.mqd, _POLLOUT)
        if pidfd is not None:
            self._rpoll.register(pidfd, _POLLIN)
            self._wpoll.register(pidfd, _POLLIN)

    # -- send -------------------------------------------------------------------

    def send(self, message: bytes, *, timeout: float | None = None) -> None:
        if self._closed or self._eof_sent:
            raise ClosedResourceError("send: stream is closed for sending")
        if len(message) > self.max_message_size:
            raise MessageTooLarge(
                f"{len(message)} bytes exceed mq:// max_message_size {self.max_message_size}"
            )
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout must be >= 0, got {timeout!r}")
        with self._send_lock:
            self._sent_data = True
            if len(message) <= self._unit and not self._torn:
                try:
                    self._wq.send(_H_LAST + message)
                    return
                except posix_ipc.BusyError:
                    pass
                except (posix_ipc.Error, ValueError) as exc:
                    raise self._error(exc, "send") from exc
            self._send_fragments(message, end_time(timeout, self.default_timeout))

    def _send_fragments(self, message: bytes, end: float) -> None:
        if self._torn:  # an earlier send timed out mid-message: the peer drops its parts
            self._put(_H_ABORT, end)
            self._torn = False
        view = memoryview(message)
        unit = self._unit
        for start in range(0, max(len(message), 1), unit):
            last = start + unit >= len(message)
            try:
                self._put((_H_LAST if last else _H_MORE) + view[start : start + unit], end)
            except TransportError:
                self._torn = start > 0
                raise

    def _put(self, payload: bytes, end: float) -> None:
        while True:
            try:
                self._wq.send(payload)
                return
            except posix_ipc.BusyError:
                pass
            except (posix_ipc.Error, ValueError) as exc:
                raise self._error(exc, "send") from exc
            ready = poll_until(self._wpoll, end, "send")
            if self._closed:
                raise ClosedResourceError("send: stream is closed")
            if self._peer_exited(ready) and not any(e & _POLLOUT for _, e in ready):
                raise BrokenResourceError("send: peer process exited")

    def send_eof(self) -> None:
        if self._closed:
            raise ClosedResourceError("send_eof: stream is closed")
        with self._send_lock:
            if not self._eof_sent:
                self._put(_H_EOF, end_time(None, self.default_timeout))
                self._eof_sent = True

    # -- receive ----------------------------------------------------------------

    def receive(self, *, timeout: float | None = None) -> bytes:
        end = end_time(timeout, self.default_timeout)
        with self._recv_lock:
            while True:
                if self._closed:
                    raise ClosedResourceError("receive: stream is closed")
                if self._eof_seen:
                    raise EndOfStream("peer closed the stream")
                ready = poll_until(self._rpoll, end, "receive")
                try:
                    data, _ = self._rq.receive()
                except posix_ipc.BusyError:
                    if self._peer_exited(ready):
                        raise BrokenResourceError("receive: peer process exited") from None
                    continue
                except (posix_ipc.Error, ValueError) as exc:
                    raise self._error(exc, "receive") from exc
                if data[:1] == _H_LAST and not self._parts:
                    return data[1:]  # type: ignore[no-any-return]
                message = self._handle(data)
                if message is not None:
                    return message

    def _handle(self, data: bytes) -> bytes | None:
        """Act on one queue message; return a completed message, if any."""
        head = data[0] if data else -1
        if head in (_LAST, _MORE):
            self._parts_size += len(data) - 1
            if self._parts_size > self.max_message_size:
                raise MessageTooLarge(f"peer sent a message over {self.max_message_size} bytes")
            self._parts.append(data[1:])
            if head == _MORE:
                return None
            message = b"".join(self._parts)
            self._parts, self._parts_size = [], 0
            return message
        if head == _EOF:
            self._eof_seen = True
            raise EndOfStream("peer closed the stream")
        if head == _ACK:
            self._accepted(_PID.unpack(data[1 : 1 + _PID.size])[0])
            return None
        if head == _ABORT:
            self._parts, self._parts_size = [], 0
            return None
        if head == _REJECT:
            raise BrokenResourceError("the server closed before accepting this connection")
        raise BrokenResourceError(f"corrupt message header {head} on mq:// stream")

    def _accepted(self, server_pid: int) -> None:
        """The server opened and unlinked our queues; watch the pid it reported."""
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.forget()
        if server_pid == self._watched_pid:
            return
        pidfd = open_pidfd(server_pid)
        if pidfd is None:
            return
        if self._pidfd is not None:
            self._rpoll.unregister(self._pidfd)
            self._wpoll.unregister(self._pidfd)
            close_quietly(self._pidfd)
        self._pidfd, self._watched_pid = pidfd, server_pid
        self._rpoll.register(pidfd, _POLLIN)
        self._wpoll.register(pidfd, _POLLIN)

    # -- errors and close -------------------------------------------------------

    def _peer_exited(self, ready: list[tuple[int, int]]) -> bool:
        return self._pidfd is not None and any(fd == self._pidfd for fd, _ in ready)

    def _error(self, exc: Exception, what: str) -> TransportError:
        if self._closed:
            return ClosedResourceError(f"{what}: stream is closed")
        return BrokenResourceError(f"{what} failed: {exc}")

    def close(self) -> None:
        if self._closed:
            return
        if not self._eof_sent:
            with contextlib.suppress(TransportError):  # a full queue's reader is not reading
                self._put(_H_EOF, end_time(min(0.1, self.default_timeout), 0))
        self._closed = True
        owner, self._owner = self._owner, None
        if owner is not None and self._ack_waiting():
            owner.forget()  # accepted after all: the server removed the names
            owner = None
        _close_queue(self._rq)
        _close_queue(self._wq)
        close_quietly(self._pidfd)
        if owner is not None and not self._sent_data:
            owner.release()  # never accepted and nothing to deliver: remove our queues now
        # else: keep the names so a late accept still gets the data; the Owner removes
        # them at exit if no server ever does

    def _ack_waiting(self) -> bool:
        """Drain what we will never read, looking for the server's ack."""
        while True:
            try:
                data, _ = self._rq.receive()
            except (posix_ipc.Error, ValueError):
                return False
            if data[:1] == _H_ACK:
                return True

    def fileno(self) -> int:
        return int(self._rq.mqd)


class _GoneStream(MessageStream):
    """What accept returns for a client that left before it was accepted."""

    def __init__(self) -> None:
        self._closed = False

    def send(self, message: bytes, *, timeout: float | None = None) -> None:
        if self._closed:
            raise ClosedResourceError("send: stream is closed")
        raise BrokenResourceError("send: the client left before it was accepted")

    def receive(self, *, timeout: float | None = None) -> bytes:
        if self._closed:
            raise ClosedResourceError("receive: stream is closed")
        raise EndOfStream("the client left before it was accepted")

    def close(self) -> None:
        self._closed = True


# -- client -----------------------------------------------------------------------


def _post_request(rendezvous: Any, request: bytes, end: float, pidfd: int | None) -> None:
    poller = select.poll()
    poller.register(rendezvous.mqd, _POLLOUT)
    if pidfd is not None:
        poller.register(pidfd, _POLLIN)
    while True:
        try:
            rendezvous.send(request)
            return
        except posix_ipc.BusyError:
            pass
        except posix_ipc.Error as exc:
            raise BrokenResourceError(f"connect failed: {exc}") from exc
        ready = poll_until(poller, end, "connect")
        if pidfd is not None and any(fd == pidfd for fd, e in ready if not e & _POLLOUT):
            raise BrokenResourceError("connect: the server process exited")


def connect_mq(name: str, timeout: float) -> MqStream:
    end = end_time(timeout, timeout)
    server_pid = lock_holder(_lock_path(name))
    if server_pid is not None and not pid_alive(server_pid):
        raise BrokenResourceError(f"no server listening on mq://{name} (its server died)")
    try:
        rendezvous = _open_queue(_RENDEZVOUS + name, read=False)
    except posix_ipc.Error as exc:
        raise BrokenResourceError(f"no server listening on mq://{name}") from exc
    token = secrets.token_hex(8)
    c2s, s2c = _conn_names(os.getpid(), token)

    def remove() -> None:
        _unlink_queue(c2s)
        _unlink_queue(s2c)

    owner = Owner(remove)
    wq = rq = pidfd = None
    try:
        wq = _create_queue(c2s, _MSGSIZE)
        rq = _create_queue(s2c, _MSGSIZE)
        pidfd = open_pidfd(server_pid) if server_pid is not None else None
        _post_request(rendezvous, b"FLMQ1 %d %s" % (os.getpid(), token.encode()), end, pidfd)
    except BaseException:
        _close_queue(wq)
        _close_queue(rq)
        close_quietly(pidfd)
        owner.release()
        raise
    finally:
        _close_queue(rendezvous)
    return MqStream(rq, wq, pidfd, owner=owner, watched_pid=server_pid if pidfd else None)


# -- server -----------------------------------------------------------------------


class MqListener(Listener[MessageStream]):
    """Owns the rendezvous queue; each request becomes one queue-pair stream."""

    def __init__(self, name: str) -> None:
        self.address = f"mq://{name}"
        self._name = _RENDEZVOUS + name
        self._closed = False
        self._accept_lock = threading.Lock()
        _sweep_stale()
        lock = PidLock.acquire(_lock_path(name), self.address)
        try:
            _unlink_queue(self._name)  # we hold the lock: any queue here is a dead server's
            self._queue = _create_queue(self._name, _REQUEST_SIZE)
        except TransportError as exc:
            lock.release()
            raise AddressError(f"cannot listen on {self.address}: {exc}") from exc

        def remove(queue_name: str = self._name) -> None:
            _unlink_queue(queue_name)
            lock.release()

        self._owner = Owner(remove)
        self._poller = select.poll()
        self._poller.register(self._queue.mqd, _POLLIN)

    def accept(self, *, timeout: float | None = None) -> MessageStream:
        end = end_time(timeout, self.default_timeout)
        with self._accept_lock:
            while True:
                if self._closed:
                    raise ClosedResourceError("accept: listener is closed")
                try:
                    request, _ = self._queue.receive()
                except posix_ipc.BusyError:
                    poll_until(self._poller, end, "accept")
                    continue
                except posix_ipc.Error as exc:
                    if self._closed:
                        raise ClosedResourceError("accept: listener is closed") from exc
                    raise BrokenResourceError(f"accept failed: {exc}") from exc
                match = _REQUEST.fullmatch(request)
                if match is not None:
                    return _open_pair(int(match.group(1)), match.group(2).decode())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _unlink_queue(self._name)  # no new client can find us
        self._reject_waiting()
        with contextlib.suppress(posix_ipc.Error):
            self._queue.send(b"")  # wake an accept() blocked in poll
        _close_queue(self._queue)
        self._owner.release()

    def _reject_waiting(self) -> None:
        """Clients whose request was not accepted get a reject instead of a timeout."""
        while True:
            try:
                request, _ = self._queue.receive()
            except posix_ipc.Error:
                return
            match = _REQUEST.fullmatch(request)
            if match is None:
                continue
            c2s, s2c = _conn_names(int(match.group(1)), match.group(2).decode())
            with contextlib.suppress(posix_ipc.Error):
                queue = _open_queue(s2c, read=False)
                with contextlib.suppress(posix_ipc.Error):
                    queue.send(_H_REJECT)
                _close_queue(queue)
            _unlink_queue(c2s)
            _unlink_queue(s2c)


def _open_pair(pid: int, token: str) -> MessageStream:
    """Open a client's queues; one that already left gets a stream that reports so."""
    c2s, s2c = _conn_names(pid, token)
    rq = wq = None
    try:
        rq = _open_queue(c2s, read=True)
        wq = _open_queue(s2c, read=False)
        wq.send(_H_ACK + _PID.pack(os.getpid()))
    except (posix_ipc.Error, ValueError):
        _close_queue(rq)
        _close_queue(wq)
        return _GoneStream()
    finally:
        _unlink_queue(c2s)
        _unlink_queue(s2c)
    return MqStream(rq, wq, open_pidfd(pid))


def _mqueue_mount() -> str | None:
    """Where the mqueue file system is mounted, if anywhere (only needed to sweep)."""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "mqueue":
                    return fields[1]
    except OSError:
        pass
    return None


def _sweep_stale() -> None:
    """Remove leftovers of crashed runs, never a live owner's.

    Rendezvous queues are found through their lock files (a free lock means a
    dead server); connection queues only if /dev/mqueue is mounted, and only
    when the pid in their name is dead.
    """
    directory = runtime_dir()
    for path in directory.glob("mq-*.lock"):
        name = path.name[3:-5]
        if _NAME.fullmatch(name):
            sweep_stale_lock(str(path), functools.partial(_unlink_queue, _RENDEZVOUS + name))
    mount = _mqueue_mount()
    if mount is None:
        return
    pattern = re.compile(re.escape(_CONN[1:]) + r"([0-9]+)-[0-9a-f]{16}-(?:c2s|s2c)")
    with contextlib.suppress(OSError):
        for entry in os.listdir(mount):
            match = pattern.fullmatch(entry)
            if match is not None and not pid_alive(int(match.group(1))):
                _unlink_queue("/" + entry)


class MqTransport(Transport):
    scheme = "mq"
    description = "POSIX message queues (posix_ipc), one queue pair per connection"
    capabilities = Capabilities(
        kind="message",
        max_message_size=_MAX_MESSAGE,
        native_max=_MSGSIZE - 1,
        ordered=True,
        reliable=True,
        cross_process=True,
        multi_client=True,
        detects_peer_death=True,
        half_close=True,
        mechanism="POSIX mq_* queue pair + rendezvous queue, pidfd peer watch",
    )
    platforms = ("linux",)

    def unavailable_reason(self) -> str | None:
        reason = super().unavailable_reason()
        if reason is not None:
            return reason
        if posix_ipc is None:
            return "mq:// needs the posix_ipc package (pip install posix_ipc)"
        if not posix_ipc.MESSAGE_QUEUES_SUPPORTED:
            return "mq:// is not supported: this system has no POSIX message queues"
        if not hasattr(os, "pidfd_open"):
            return "mq:// needs os.pidfd_open (Linux 5.3+)"
        return None

    def listen(self, address: str, **options: Any) -> Listener[MessageStream]:
        self.check_available()
        return MqListener(_mq_name(self._parse(address)))

    def connect(
        self, address: str, *, timeout: float | None = None, **options: Any
    ) -> MessageStream:
        self.check_available()
        name = _mq_name(self._parse(address))
        return connect_mq(name, DEFAULT_TIMEOUT if timeout is None else timeout)

    def example_address(self, tag: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", tag)[:40]
        return f"mq://{safe}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


register(MqTransport())
