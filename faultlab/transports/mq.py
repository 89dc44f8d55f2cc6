"""``mq://name``: POSIX message queues (posix_ipc), one queue pair per connection.

Rendezvous: the listener owns the queue ``/faultlab-mq-<name>`` and the lock
file ``mq-<name>.lock`` in the runtime directory (flock-held, naming its pid).
A client creates ``/faultlab-mqc-<pid>-<token>-c2s`` and ``-s2c`` and posts a
request naming them; ``accept`` opens both, unlinks the names (the queues live
on while open) and posts an ack carrying its pid ahead of any data. The queues
exist before ``accept``, so a client may send before it is accepted.

Without CAP_SYS_RESOURCE a queue message holds at most 8 KiB, so every queue
message starts with a one-byte header: whole message, more/end fragment, end of
stream, ack, reject, or abort (drop a message torn by a send timeout). Waits
last at most 50 ms at a time and look at the peer's pidfd in between, so a
SIGKILLed peer is reported within a slice or two.
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
import time
import uuid
from collections.abc import Iterator
from typing import Any

from faultlab._cleanup import Owner, pid_alive, runtime_dir
from faultlab.errors import (
    AddressError,
    BrokenResourceError,
    ClosedResourceError,
    EndOfStream,
    MessageTooLarge,
    TransportError,
    TransportTimeout,
)
from faultlab.streams import DEFAULT_TIMEOUT, Listener, MessageStream
from faultlab.transports import register
from faultlab.transports._fdio import (
    SLICE,
    PeerWatch,
    PidLock,
    end_time,
    lock_holder,
    poll_until,
    sweep_stale_lock,
    wait_ready,
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

# One-byte header of every queue message. A whole message never waits for a lock:
# it may land between another thread's fragments, and the receiver delivers it as is.
_WHOLE, _MORE, _END, _EOF, _ACK, _REJECT, _ABORT = range(7)
_H_WHOLE, _H_MORE, _H_END, _H_EOF, _H_ACK, _H_REJECT, _H_ABORT = (bytes([h]) for h in range(7))

_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT


def _sysctl(name: str, default: int) -> int:
    try:
        with open(f"/proc/sys/fs/mqueue/{name}") as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


# Without CAP_SYS_RESOURCE, more than fs.mqueue.msg_max slots or msgsize_max bytes
# fail with EINVAL. Four slots, not ten: RLIMIT_MSGQUEUE (800 KiB per user by
# default) then holds a dozen connections instead of four, and a 1 MiB echo was
# measured no slower.
_SLOTS = max(1, min(4, _sysctl("msg_max", 10)))
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


def _create_queue(name: str, size: int, *, block: bool) -> Any:
    """Create a queue, shrinking it if the per-user queue memory is short.

    RLIMIT_MSGQUEUE is per user, so later connections get fewer slots rather
    than failing. Queues are 0600: only our user may open them.
    """
    for slots in sorted({_SLOTS, min(_SLOTS, 2), 1}, reverse=True):
        try:
            queue = posix_ipc.MessageQueue(
                name, posix_ipc.O_CREX, mode=0o600, max_messages=slots, max_message_size=size
            )
        except OSError:  # EMFILE/ENOMEM: RLIMIT_MSGQUEUE exhausted
            continue
        except (posix_ipc.Error, ValueError) as exc:
            raise BrokenResourceError(f"cannot create message queue {name}: {exc}") from exc
        try:  # the umask narrows mq_open's mode (0277 gave 0400): make it exactly 0600
            os.fchmod(queue.mqd, 0o600)
        except OSError as exc:
            _close_queue(queue)
            _unlink_queue(name)
            raise BrokenResourceError(f"cannot chmod message queue {name}: {exc}") from exc
        queue.block = block
        return queue
    raise BrokenResourceError(
        f"cannot create message queue {name}: per-user queue memory (ulimit -q) is exhausted"
    )


def _open_queue(name: str, *, read: bool, block: bool) -> Any:
    queue = posix_ipc.MessageQueue(name, read=read, write=not read)
    queue.block = block
    return queue


class MqStream(MessageStream):
    """One connection: receive from ``rq``, send to ``wq``, watch the peer process.

    ``rq`` blocks, and every receive is timed (mq_timedreceive) for at most
    :data:`SLICE`: a receiver blocked in the queue gets the message handed over
    by the kernel, measured about 3 us per round trip faster than poll then
    receive. ``wq`` does not block; a full queue is waited for in poll slices.
    The peer's pidfd is looked at between slices.
    """

    max_message_size = _MAX_MESSAGE

    def __init__(self, rq: Any, wq: Any, peer: PeerWatch, owner: Owner | None = None) -> None:
        self._rq = rq
        self._wq = wq
        self._unit = int(wq.max_message_size) - 1
        self._peer = peer
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

    # -- send -------------------------------------------------------------------

    def send(self, message: bytes, *, timeout: float | None = None) -> None:
        if self._closed or self._eof_sent:
            raise ClosedResourceError("send: stream is closed for sending")
        if len(message) > _MAX_MESSAGE:
            raise MessageTooLarge(
                f"{len(message)} bytes exceed mq:// max_message_size {_MAX_MESSAGE}"
            )
        t = self.default_timeout if timeout is None else timeout
        if not t >= 0:
            raise ValueError(f"timeout must be >= 0, got {t!r}")
        self._sent_data = True
        if len(message) <= self._unit:
            payload = _H_WHOLE + message
            try:
                self._wq.send(payload)  # hot path: one non-blocking mq_send
                return
            except posix_ipc.BusyError:
                self._put(payload, time.monotonic() + t)
                return
            except (posix_ipc.Error, ValueError) as exc:
                raise self._error(exc, "send") from exc
        end = time.monotonic() + t
        with self._locked(self._send_lock, t, "send"):
            self._send_fragments(message, end)

    def _send_fragments(self, message: bytes, end: float) -> None:
        if self._torn:  # an earlier send timed out mid-message: the peer drops its parts
            self._put(_H_ABORT, end)
            self._torn = False
        view = memoryview(message)
        unit = self._unit
        for start in range(0, len(message), unit):
            last = start + unit >= len(message)
            try:
                self._put((_H_END if last else _H_MORE) + view[start : start + unit], end)
            except TransportError:
                self._torn = start > 0
                raise

    def _put(self, payload: bytes, end: float) -> None:
        """Send one queue message, waiting in poll slices while the queue is full."""
        poller = select.poll()
        poller.register(self._wq.mqd, _POLLOUT)
        while True:
            try:
                self._wq.send(payload)
                return
            except posix_ipc.BusyError:
                pass
            except (posix_ipc.Error, ValueError) as exc:
                raise self._error(exc, "send") from exc
            wait_ready(poller, end, self._peer, "send")
            if self._closed:
                raise ClosedResourceError("send: stream is closed")

    @contextlib.contextmanager
    def _locked(self, lock: threading.Lock, timeout: float, what: str) -> Iterator[None]:
        """Hold ``lock``, waiting no longer than the call's own timeout."""
        if not lock.acquire(True, timeout if timeout < threading.TIMEOUT_MAX else -1):
            raise TransportTimeout(f"{what} timed out waiting for another thread's {what}")
        try:
            yield
        finally:
            lock.release()

    def send_eof(self) -> None:
        if self._closed:
            raise ClosedResourceError("send_eof: stream is closed")
        t = self.default_timeout
        with self._locked(self._send_lock, t, "send_eof"):
            if not self._eof_sent:
                self._put(_H_EOF, time.monotonic() + t)
                self._eof_sent = True

    # -- receive ----------------------------------------------------------------

    def receive(self, *, timeout: float | None = None) -> bytes:
        t = self.default_timeout if timeout is None else timeout
        if not t >= 0:
            raise ValueError(f"timeout must be >= 0, got {t!r}")
        lock = self._recv_lock
        if not lock.acquire(True, t if t < threading.TIMEOUT_MAX else -1):
            raise TransportTimeout("receive timed out waiting for another thread's receive")
        try:
            if self._closed:
                raise ClosedResourceError("receive: stream is closed")
            if self._eof_seen:
                raise EndOfStream("peer closed the stream")
            try:  # hot path: one timed receive, no clock read
                data, _ = self._rq.receive(t if t < SLICE else SLICE)
            except posix_ipc.BusyError:
                return self._receive_slow(time.monotonic() + t - SLICE)
            except (posix_ipc.Error, ValueError) as exc:
                raise self._error(exc, "receive") from exc
            if data[:1] == _H_WHOLE:
                return data[1:]  # type: ignore[no-any-return]
            message = self._handle(data)
            if message is not None:
                return message
            return self._receive_slow(time.monotonic() + t)
        finally:
            lock.release()

    def _receive_slow(self, end: float) -> bytes:
        while True:
            left = end - time.monotonic()
            try:
                data, _ = self._rq.receive(min(left, SLICE) if left > 0 else 0)
            except posix_ipc.BusyError:
                if self._closed:
                    raise ClosedResourceError("receive: stream is closed") from None
                if self._peer.exited():
                    raise BrokenResourceError("receive: peer process exited") from None
                if left <= 0:
                    raise TransportTimeout("receive timed out") from None
                continue
            except (posix_ipc.Error, ValueError) as exc:
                raise self._error(exc, "receive") from exc
            message = self._handle(data)
            if message is not None:
                return message

    def _handle(self, data: bytes) -> bytes | None:
        """Act on one queue message; return a completed message, if any."""
        head = data[0] if data else -1
        if head == _WHOLE:
            return data[1:]
        if head in (_MORE, _END):
            self._parts_size += len(data) - 1
            if self._parts_size > _MAX_MESSAGE:
                raise MessageTooLarge(f"peer sent a message over {_MAX_MESSAGE} bytes")
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
        self._peer.watch(server_pid)

    # -- errors and close -------------------------------------------------------

    def _error(self, exc: Exception, what: str) -> TransportError:
        if self._closed:
            return ClosedResourceError(f"{what}: stream is closed")
        return BrokenResourceError(f"{what} failed: {exc}")

    def close(self) -> None:
        if self._closed:
            return
        if not self._eof_sent:
            with contextlib.suppress(TransportError):  # a full queue's reader is not reading
                self._put(_H_EOF, time.monotonic() + min(0.1, self.default_timeout))
        self._closed = True
        owner, self._owner = self._owner, None
        if owner is not None and self._ack_waiting():
            owner.forget()  # accepted after all: the server removed the names
            owner = None
        _close_queue(self._rq)
        _close_queue(self._wq)
        self._peer.close()
        if owner is not None and not self._sent_data:
            owner.release()  # never accepted and nothing to deliver: remove our queues now
        # else: keep the names so a late accept still gets the data; the Owner removes
        # them at exit if no server ever does

    def _ack_waiting(self) -> bool:
        """Drain what we will never read, looking for the server's ack."""
        while True:
            try:
                data, _ = self._rq.receive(0)
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


def _post_request(rendezvous: Any, request: bytes, end: float, peer: PeerWatch) -> None:
    poller = select.poll()
    poller.register(rendezvous.mqd, _POLLOUT)
    while True:
        try:
            rendezvous.send(request)
            return
        except posix_ipc.BusyError:  # the rendezvous is full of requests: wait
            wait_ready(poller, end, peer, "connect")
        except posix_ipc.Error as exc:
            raise BrokenResourceError(f"connect failed: {exc}") from exc


def connect_mq(name: str, timeout: float) -> MqStream:
    end = end_time(timeout, timeout)
    server_pid = lock_holder(_lock_path(name))
    if server_pid is not None and not pid_alive(server_pid):
        raise BrokenResourceError(f"no server listening on mq://{name} (its server died)")
    try:
        rendezvous = _open_queue(_RENDEZVOUS + name, read=False, block=False)
    except posix_ipc.Error as exc:
        raise BrokenResourceError(f"no server listening on mq://{name}") from exc
    token = secrets.token_hex(8)
    c2s, s2c = _conn_names(os.getpid(), token)

    def remove() -> None:
        _unlink_queue(c2s)
        _unlink_queue(s2c)

    owner = Owner(remove)
    peer = PeerWatch(server_pid)
    wq = rq = None
    try:
        wq = _create_queue(c2s, _MSGSIZE, block=False)
        rq = _create_queue(s2c, _MSGSIZE, block=True)
        _post_request(rendezvous, b"FLMQ1 %d %s" % (os.getpid(), token.encode()), end, peer)
    except BaseException:
        _close_queue(wq)
        _close_queue(rq)
        peer.close()
        owner.release()
        raise
    finally:
        _close_queue(rendezvous)
    return MqStream(rq, wq, peer, owner)


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
            self._queue = _create_queue(self._name, _REQUEST_SIZE, block=False)
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
                queue = _open_queue(s2c, read=False, block=False)
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
        rq = _open_queue(c2s, read=True, block=True)
        wq = _open_queue(s2c, read=False, block=False)
        wq.send(_H_ACK + _PID.pack(os.getpid()), 0)
    except (posix_ipc.Error, ValueError):
        _close_queue(rq)
        _close_queue(wq)
        return _GoneStream()
    finally:
        _unlink_queue(c2s)
        _unlink_queue(s2c)
    return MqStream(rq, wq, PeerWatch(pid))


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
    capabilities = Capabilities.messages(
        "POSIX mq_* queue pair + rendezvous queue, pidfd peer watch",
        max_message_size=_MAX_MESSAGE,
        native_max=_MSGSIZE - 1,
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
