"""Journal what a resilience library says it did, so :func:`check_reported` can hold it
against what the wire saw.

Each adapter plugs into the hook the library already offers; nothing in the client
changes but one line of setup:

- tenacity: ``Retrying(before_sleep=tenacity_before_sleep(pair))`` journals each retry
  and its computed wait; :func:`report_tenacity` journals ``retrying.statistics`` (the
  attempts and idle time tenacity counted) at the end of a call;
- stamina: ``stamina.instrumentation.set_on_retry_hooks([stamina_hook(pair)])`` journals
  each ``RetryDetails`` (retry number and ``wait_for``);
- pybreaker: ``breaker.add_listener(pybreaker_listener(pair))`` journals every state change.

``target`` is anything that journals: a :class:`~faultlab.lab.Pair`, a ``Lab``, a
``Journal`` (what has ``.journal`` or ``.record``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from faultlab.journal import schema as ev

__all__ = [
    "pybreaker_listener",
    "report_attempts",
    "report_tenacity",
    "stamina_hook",
    "tenacity_before_sleep",
]

_STATES = {"open": "open", "closed": "closed", "half-open": "half_open", "half_open": "half_open"}


def _recorder(target: Any) -> Callable[..., Any]:
    journal = getattr(target, "journal", target)
    record = getattr(journal, "record", None)
    if not callable(record):
        raise TypeError(
            f"cannot journal to {type(target).__name__}: pass a Pair, a Lab or a Journal"
        )
    recorder: Callable[..., Any] = record
    return recorder


def report_attempts(
    target: Any,
    attempts: int,
    *,
    library: str = "custom",
    label: str = "",
    idle: float | None = None,
) -> None:
    """Journal what a client says one logical call took: ``attempts`` in total, ``idle``
    seconds asleep between them. Call it inside the call's ``logical_call`` window."""
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
        raise ValueError(f"attempts must be a count (an int >= 0), got {attempts!r}")
    _recorder(target)(ev.CLIENT_REPORT, library=library, label=label, attempts=attempts, idle=idle)


def report_tenacity(target: Any, retrying: Any, *, label: str = "") -> None:
    """Journal tenacity's own ``statistics`` for the call that just ended (a ``Retrying``,
    a decorated function's ``.retry`` / ``.statistics``, or the statistics dict)."""
    stats = retrying if isinstance(retrying, Mapping) else getattr(retrying, "statistics", None)
    if not isinstance(stats, Mapping) or "attempt_number" not in stats:
        raise TypeError(
            "report_tenacity needs a tenacity Retrying (after a call) or its statistics dict"
        )
    idle = stats.get("idle_for")
    report_attempts(
        target,
        int(stats["attempt_number"]),
        library="tenacity",
        label=label,
        idle=float(idle) if isinstance(idle, int | float) else None,
    )


def tenacity_before_sleep(target: Any, *, label: str = "") -> Callable[[Any], None]:
    """A ``before_sleep`` hook: journals retry n and the wait tenacity computed for it."""
    record = _recorder(target)

    def before_sleep(state: Any) -> None:
        _retry(record, "tenacity", label, state.attempt_number, state.upcoming_sleep)

    return before_sleep


def _retry(record: Callable[..., Any], library: str, label: str, retry: Any, wait: Any) -> None:
    record(
        ev.CLIENT_RETRY,
        library=library,
        label=label,
        retry=int(retry) if isinstance(retry, int) else 0,
        wait=float(wait) if isinstance(wait, int | float) else None,
    )


def stamina_hook(target: Any) -> Callable[[Any], None]:
    """An ``on_retry`` hook for ``stamina.instrumentation.set_on_retry_hooks``."""
    record = _recorder(target)

    def on_retry(details: Any) -> None:
        label = str(getattr(details, "name", "") or "")
        _retry(record, "stamina", label, details.retry_num, details.wait_for)

    return on_retry


def pybreaker_listener(target: Any) -> Any:
    """A ``pybreaker.CircuitBreakerListener`` journaling each state change as a ``breaker``
    event (``state``: open, half_open or closed; ``label``: the breaker's name)."""
    import pybreaker

    record = _recorder(target)

    class JournalListener(pybreaker.CircuitBreakerListener):
        def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
            record(
                ev.BREAKER,
                state=_STATES.get(str(getattr(new_state, "name", new_state)), str(new_state)),
                previous=_STATES.get(str(getattr(old_state, "name", old_state))),
                label=str(getattr(cb, "name", "") or "pybreaker"),
                library="pybreaker",
            )

    return JournalListener()
