"""A tiny peer process for cross-process tests and benchmarks.

``python -m faultlab.transports._peer echo URI`` listens on URI, prints
``READY <real address>`` and echoes every client (bytes or messages) until it
is killed or its stdin closes. ``hold URI`` connects, prints ``READY`` and
waits, so a test can SIGKILL a connected client. ``--cpu N`` pins the process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
from typing import Any

from faultlab import transports
from faultlab.errors import TransportError
from faultlab.streams import ByteStream, Listener, MessageStream, Stream


def _echo(stream: Stream) -> None:
    stream.default_timeout = 3600.0  # an idle client is fine; calls use the fast path
    try:
        if isinstance(stream, ByteStream):
            while True:
                stream.send(stream.receive(65536))
        else:
            assert isinstance(stream, MessageStream)
            while True:
                stream.send(stream.receive())
    except TransportError:
        pass
    finally:
        stream.close()


_listening: list[Listener[Any]] = []


def _exit_when_stdin_closes() -> None:
    """Exit when the parent closes our stdin, closing the listener first: it removes the
    files it made (a unix socket's, a FIFO, a lock), which a bare exit would leave."""
    try:
        while os.read(0, 4096):
            pass
    finally:
        for listener in _listening:
            with contextlib.suppress(Exception):
                listener.close()
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faultlab.transports._peer")
    parser.add_argument("mode", choices=["echo", "hold"])
    parser.add_argument("address")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    if args.mode == "echo":
        with transports.listen(args.address) as listener:
            _listening.append(listener)
            print(f"READY {listener.address}", flush=True)
            while True:
                try:
                    stream = listener.accept(timeout=3600)
                except TransportError:
                    continue
                threading.Thread(target=_echo, args=(stream,), daemon=True).start()
    stream = transports.connect(args.address, timeout=10)
    print("READY", flush=True)
    threading.Event().wait()
    stream.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
