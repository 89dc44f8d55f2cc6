"""Child entry point of the subprocess backend: serve ``--factory`` and journal requests.

``python -m faultlab.lab.serve_target --factory faultlab.examples.calc:Calc
--protocol binrpc --address tcp://127.0.0.1:0 --events FILE --origin T``
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from faultlab._proc import serve_until_stopped
from faultlab.journal import Journal
from faultlab.lab.backends.base import ServerSpec
from faultlab.lab.backends.thread import load_factory, start_server


class _FileJournal(Journal):
    """A journal that also appends every event as a JSON line (the parent merges them)."""

    def __init__(self, path: str, origin: float) -> None:
        super().__init__(origin=origin)
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
        self._write_lock = threading.Lock()

    def record(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = super().record(kind, **fields)
        with self._write_lock:
            self._file.write(json.dumps(event, default=repr) + "\n")
        return event


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m faultlab.lab.serve_target")
    parser.add_argument("--factory", required=True)
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--framing", default=None)
    parser.add_argument("--events", required=True)
    parser.add_argument("--origin", type=float, default=time.monotonic())
    args = parser.parse_args()
    journal = _FileJournal(args.events, args.origin)
    spec = ServerSpec(args.factory, args.protocol, args.address, args.framing)
    service = load_factory(args.factory)()
    server = start_server(spec, service, journal)
    serve_until_stopped(server.address)
    server.close()


if __name__ == "__main__":
    main()
