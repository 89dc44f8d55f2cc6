"""What an oracle returns: a verdict a user can read, with the journal excerpt that proves it.

A verdict is data, not an exception, so a suite can collect many, a report can
render them and a Hypothesis test can turn a failed one into a counter-example
(:meth:`Verdict.raise_if_failed`). ``vacuous`` says the check could not have
failed (no fault touched traffic, the mechanism never ran): a pass that proves
nothing must not look like one that does.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from faultlab.journal import schema as ev

__all__ = [
    "OracleFailure",
    "Verdict",
    "combine",
    "format_event",
    "format_evidence",
    "record_verdict",
]

Event = Mapping[str, Any]

_SKIP_FIELDS = frozenset({"seq", "t", "kind", "value_json"})
MAX_EVIDENCE_LINES = 40
MAX_EVIDENCE_SEQS = 200
"""A verdict event names at most this many evidence events (a report links them)."""


class _Recorder(Protocol):
    def record(self, kind: str, **fields: Any) -> dict[str, Any]: ...


class OracleFailure(AssertionError):
    """A resilience property failed; the message carries the evidence excerpt."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.report())
        self.verdict = verdict


@dataclass(frozen=True)
class Verdict:
    """The outcome of one oracle over one journal (or one property of it)."""

    oracle: str
    property: str
    passed: bool
    vacuous: bool = False
    message: str = ""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def __bool__(self) -> bool:
        return self.passed

    @builtins.property
    def checks(self) -> tuple[Verdict, ...]:
        """The per-property verdicts a combined verdict summarizes (empty for a single one)."""
        found = self.details.get("checks", ())
        return tuple(v for v in found if isinstance(v, Verdict))

    def failed_checks(self) -> list[Verdict]:
        return [v for v in self.checks if not v.passed]

    def report(self, *, limit: int = MAX_EVIDENCE_LINES) -> str:
        """The message, then the evidence excerpt (what a failing test prints)."""
        status = "PASSED" if self.passed else "FAILED"
        if self.passed and self.vacuous:
            status = "PASSED (vacuous)"
        head = f"{self.oracle} {self.property}: {status}: {self.message}"
        if not self.evidence:
            return head
        return f"{head}\nevidence:\n{format_evidence(self.evidence, limit=limit)}"

    def raise_if_failed(self) -> Verdict:
        """Raise :class:`OracleFailure` if the property failed; return self otherwise."""
        if not self.passed:
            raise OracleFailure(self)
        return self

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for journals and reports (evidence as ``seq`` numbers)."""
        return {
            "oracle": self.oracle,
            "property": self.property,
            "passed": self.passed,
            "vacuous": self.vacuous,
            "message": self.message,
            "evidence": [e.get("seq") for e in self.evidence],
            "checks": [c.to_json() for c in self.checks],
        }

    def to_event(self, *, nodeid: str = "") -> dict[str, Any]:
        """The fields of this verdict's ``verdict`` journal event (schema: ``docs/journal.md``).

        ``nodeid`` names the test it belongs to (empty outside pytest); reports attach a
        verdict to the ``test`` event journaled after it with the same ``nodeid``.
        """
        seqs = [e.get("seq") for e in self.evidence if isinstance(e, Mapping)]
        return {
            "nodeid": nodeid,
            "oracle": self.oracle,
            "property": self.property,
            "passed": bool(self.passed),
            "vacuous": bool(self.vacuous),
            "message": self.message,
            "evidence": [s for s in seqs if isinstance(s, int)][:MAX_EVIDENCE_SEQS],
        }


def record_verdict(journal: _Recorder, verdict: Verdict, *, nodeid: str = "") -> dict[str, Any]:
    """Journal ``verdict`` as a ``verdict`` event, so a report of this journal shows it: the
    same record whether a library user or the pytest plugin (``faultlab_check``) calls it."""
    return journal.record(ev.VERDICT, **verdict.to_event(nodeid=nodeid))


def combine(oracle: str, checks: Sequence[Verdict], *, vacuous: bool | None = None) -> Verdict:
    """One verdict for several properties, named after the first that failed.

    ``vacuous`` defaults to "every check was vacuous"; an oracle that knows
    better (the mechanism was never exercised) passes it explicitly.
    """
    failed = [c for c in checks if not c.passed]
    names = " ".join(dict.fromkeys(c.property.split(" ", 1)[0] for c in checks))
    is_vacuous = all(c.vacuous for c in checks) if vacuous is None else vacuous
    if failed:
        first = failed[0]
        message = first.message
        others = [c.property for c in failed[1:]]
        if others:
            message += f" (also failed: {', '.join(others)})"
        return Verdict(
            oracle,
            first.property,
            False,
            False,
            message,
            list(first.evidence),
            {"checks": tuple(checks), "failed": [c.property for c in failed]},
        )
    passed_msg = f"{oracle}: {names} hold"
    vacuous_reasons = [c.message for c in checks if c.vacuous and c.message]
    if is_vacuous and vacuous_reasons:
        passed_msg += f", vacuously: {vacuous_reasons[0]}"
    return Verdict(oracle, names, True, is_vacuous, passed_msg, [], {"checks": tuple(checks)})


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def format_event(event: Event, origin: float = 0.0) -> str:
    """One journal event on one line: ``+0.012s attempt_end call=3 attempt=2 outcome=error``."""
    t = event.get("t")
    stamp = f"+{t - origin:8.4f}s" if isinstance(t, int | float) else " " * 10
    fields = " ".join(
        f"{k}={_value(v)}" for k, v in event.items() if k not in _SKIP_FIELDS and v is not None
    )
    return f"{stamp} #{event.get('seq', '?')} {event.get('kind', '?')} {fields}".rstrip()


def format_evidence(events: Iterable[Event], *, limit: int = MAX_EVIDENCE_LINES) -> str:
    """An indented excerpt, times relative to the first event; long excerpts keep both ends."""
    items = list(events)
    if not items:
        return "  (no events)"
    times = [e["t"] for e in items if isinstance(e.get("t"), int | float)]
    origin = min(times) if times else 0.0
    lines = [format_event(e, origin) for e in items]
    if len(lines) > limit:
        head = limit // 2
        tail = limit - head - 1
        skipped = len(lines) - head - tail
        lines = [*lines[:head], f"... {skipped} events skipped ...", *lines[-tail:]]
    return "\n".join(f"  {line}" for line in lines)
