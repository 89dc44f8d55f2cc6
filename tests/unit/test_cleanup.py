from __future__ import annotations

import os
import subprocess
import sys

from faultlab._cleanup import Owner, pid_alive


def test_owner_runs_once() -> None:
    calls: list[int] = []
    owner = Owner(lambda: calls.append(1))
    owner.release()
    owner.release()
    assert calls == [1]


def test_forget_never_runs() -> None:
    calls: list[int] = []
    Owner(lambda: calls.append(1)).forget()
    assert calls == []


def test_atexit_runs_pending_removers(tmp_path: object) -> None:
    marker = os.path.join(str(tmp_path), "removed")
    code = (
        "from faultlab._cleanup import Owner\n"
        f"Owner(lambda: open({marker!r}, 'w').close())\n"
        "raise KeyboardInterrupt\n"  # Ctrl-C still cleans up
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert os.path.exists(marker)


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    assert not pid_alive(proc.pid)
    assert not pid_alive(0)
