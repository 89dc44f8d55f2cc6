"""faultlab's background threads block SIGINT and SIGTERM, so the kernel gives Ctrl-C to the
main thread, the only one where Python runs the handler and the one whose blocking call
it must interrupt (see faultlab._threads). Checked in the kernel's own record of each
thread's blocked signals (/proc/self/task/TID/status, SigBlk)."""

from __future__ import annotations

import signal
import threading
import time

from faultlab.proxy.engine import ProxyEngine
from faultlab.rpc.server import serve


def _blocked(native_id: int) -> set[int]:
    with open(f"/proc/self/task/{native_id}/status") as status:
        for line in status:
            if line.startswith("SigBlk:"):
                mask = int(line.split()[1], 16)
                return {sig for sig in range(1, 65) if mask & (1 << (sig - 1))}
    raise AssertionError("no SigBlk line")


def _thread(name: str) -> threading.Thread:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for thread in threading.enumerate():
            if thread.name == name and thread.native_id is not None:
                return thread
        time.sleep(0.01)
    raise AssertionError(f"no thread named {name}")


def test_the_engine_thread_leaves_ctrl_c_to_the_main_thread() -> None:
    assert signal.SIGINT not in _blocked(threading.main_thread().native_id or 0)
    with ProxyEngine(seed=0):
        engine = _thread("faultlab-engine")
        assert engine.native_id is not None
        assert {signal.SIGINT, signal.SIGTERM} <= _blocked(engine.native_id)
    assert signal.SIGINT not in _blocked(threading.main_thread().native_id or 0)


def test_an_rpc_server_thread_leaves_ctrl_c_to_the_main_thread() -> None:
    class Echo:
        def echo(self, value: object) -> object:
            return value

    server = serve(Echo(), protocol="jsonrpc", address="tcp://127.0.0.1:0")
    try:
        accept = _thread("faultlab-rpc-accept")
        assert accept.native_id is not None
        assert {signal.SIGINT, signal.SIGTERM} <= _blocked(accept.native_id)
    finally:
        server.close()
