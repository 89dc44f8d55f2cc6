from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from faultlab._cleanup import Owner, check_private_file, chmod_nofollow, pid_alive, write_private
from faultlab.errors import UnsafeRuntimeDir


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


def test_write_private_is_exactly_the_mode_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    old = os.umask(0o277)  # would give 0400 if the mode relied on the umask
    try:
        write_private(target, b"secret")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes() == b"secret"
    assert os.listdir(tmp_path) == ["key.pem"]  # no temporary left behind


def test_write_private_replaces_a_symlink_instead_of_following_it(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"theirs")
    (tmp_path / "key.pem").symlink_to(elsewhere)
    write_private(tmp_path / "key.pem", b"ours")
    assert not (tmp_path / "key.pem").is_symlink()
    assert elsewhere.read_bytes() == b"theirs"


def test_check_private_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert not check_private_file(path)  # missing
    path.write_bytes(b"x")
    path.chmod(0o644)
    assert check_private_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (tmp_path / "link").symlink_to(path)
    assert not check_private_file(tmp_path / "link")


def test_chmod_nofollow_refuses_a_swapped_name(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"")
    target.chmod(0o644)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(UnsafeRuntimeDir):  # O_PATH|O_NOFOLLOW sees the symlink itself
        chmod_nofollow(str(tmp_path / "link"), 0o777, stat.S_ISREG)
    with pytest.raises(UnsafeRuntimeDir):  # ours, but not the kind we created
        chmod_nofollow(str(target), 0o777, stat.S_ISSOCK)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
