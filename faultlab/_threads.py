"""faultlab's background threads leave Ctrl-C and SIGTERM to the main thread.

Why: Python runs signal handlers in the main thread only, and only a signal the kernel
delivers to that thread interrupts the call it is blocked in (a sleep, a wait, a read).
The kernel gives a process-directed signal to the main thread when that thread can take it
and to any other thread that does not block it otherwise; then the main thread sleeps on
and Ctrl-C seems ignored. Blocking SIGINT and SIGTERM in every long-lived thread of
faultlab's leaves the kernel no other choice (threads these start inherit the mask).
"""

from __future__ import annotations

import signal
import threading

__all__ = ["MAIN_THREAD_SIGNALS", "leave_signals_to_main"]

MAIN_THREAD_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def leave_signals_to_main() -> None:
    """Block :data:`MAIN_THREAD_SIGNALS` in the calling thread (never in the main one)."""
    if threading.current_thread() is not threading.main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)
