"""The server's resident memory: its process and every descendant, read from ``/proc``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["RssSampler", "process_tree", "rss_bytes", "status_bytes"]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        found.extend(int(p) for p in text.split())
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's workers, a shell wrapper's child)."""
    seen: list[int] = []
    todo = [pid]
    while todo and len(seen) < 1024:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        todo.extend(_children(current))
    return seen


def status_bytes(pid: int, field: str = "VmRSS") -> int | None:
    """A ``/proc/<pid>/status`` size field in bytes (``VmRSS``, ``VmHWM``: the peak RSS the
    kernel kept, which no sampling interval can miss); ``None`` if ``pid`` is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return 0  # a zombie has no VmRSS line


def _vmrss(pid: int) -> int | None:
    return status_bytes(pid, "VmRSS")


def rss_bytes(pid: int) -> int | None:
    """The summed VmRSS of ``pid`` and its descendants; ``None`` if ``pid`` is gone."""
    own = _vmrss(pid)
    if own is None:
        return None
    return own + sum(_vmrss(child) or 0 for child in process_tree(pid)[1:])


class RssSampler:
    """Samples :func:`rss_bytes` every ``interval`` seconds in a thread until stopped;
    ``on_sample(time, tree_rss, process_rss, process_peak_rss)`` sees each sample."""

    def __init__(
        self,
        pid: int,
        interval: float = 0.05,
        on_sample: Callable[[float, int, int, int], None] | None = None,
    ) -> None:
        self.pid = pid
        self.on_sample = on_sample
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="faultlab-hostile-rss", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            value = rss_bytes(self.pid)
            if value is not None:
                now = time.monotonic()
                self.samples.append((now, value))
                if self.on_sample is not None:
                    main = status_bytes(self.pid) or 0
                    self.on_sample(now, value, main, status_bytes(self.pid, "VmHWM") or main)
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def peak_since(self, t0: float) -> int | None:
        values = [v for t, v in self.samples if t >= t0]
        return max(values) if values else None
