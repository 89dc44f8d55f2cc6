"""Child entry point of the subprocess backend: serve ``--factory`` and journal requests.

``python -m faultlab.lab.serve_target --factory faultlab.examples.calc:Calc
--protocol binrpc --address tcp://127.0.0.1:0 --events FILE --origin T``
"""

from __future__ import annotations

import argparse
import time

from faultlab._proc import serve_until_stopped
from faultlab.journal.store import FileJournal
from faultlab.lab.backends.base import ServerSpec
from faultlab.lab.backends.thread import load_factory, start_server


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m faultlab.lab.serve_target")
    parser.add_argument("--factory", required=True)
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--framing", default=None)
    parser.add_argument("--events", required=True)
    parser.add_argument("--origin", type=float, default=time.monotonic())
    args = parser.parse_args()
    journal = FileJournal(args.events, args.origin)
    spec = ServerSpec(args.factory, args.protocol, args.address, args.framing)
    service = load_factory(args.factory)()
    server = start_server(spec, service, journal)
    serve_until_stopped(server.address)
    server.close()


if __name__ == "__main__":
    main()
