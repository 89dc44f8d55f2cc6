"""Helpers every oracle shares: durations in words, evidence excerpts, per-property checks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from faultlab.journal.timeline import Call, Timeline
from faultlab.oracles.verdict import Verdict

__all__ = ["Finding", "PropertyCheck", "evidence_for", "secs"]


def secs(seconds: float | None) -> str:
    """``0.0123`` -> ``"12.3 ms"``, ``1.5`` -> ``"1.50 s"``: how a person reads a duration."""
    if seconds is None:
        return "?"
    if abs(seconds) < 1.0:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.2f} s"


def evidence_for(
    tl: Timeline, *calls: Call, extra: Iterable[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The calls' own events plus the faults that acted while they ran, in journal order."""
    items: dict[int, dict[str, Any]] = {}
    for call in calls:
        for e in call.events():
            items[e.get("seq", id(e))] = e
        t1 = (
            call.t_end
            if call.t_end is not None
            else max((a.t_end or a.t_start for a in call.attempts), default=call.t_start)
        )
        for e in tl.faults_between(call.t_start, t1):
            items[e.get("seq", id(e))] = e
    for e in extra:
        items[e.get("seq", id(e))] = e
    return sorted(items.values(), key=lambda e: e.get("seq", 0))


@dataclass
class Finding:
    message: str
    evidence: list[dict[str, Any]]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class PropertyCheck:
    """Collects violations of one property; the first one becomes the verdict's message."""

    oracle: str
    property: str
    findings: list[Finding] = field(default_factory=list)
    checked: int = 0
    vacuous_reason: str = ""

    def fail(self, message: str, evidence: list[dict[str, Any]], **details: Any) -> None:
        self.findings.append(Finding(message, evidence, details))

    def verdict(self, ok_message: str = "") -> Verdict:
        if self.findings:
            first = self.findings[0]
            message = first.message
            if len(self.findings) > 1:
                message += f" ({len(self.findings) - 1} more violation(s) of {self.property})"
            return Verdict(
                self.oracle,
                self.property,
                False,
                False,
                message,
                first.evidence,
                {"violations": len(self.findings), "checked": self.checked, **first.details},
            )
        vacuous = bool(self.vacuous_reason) or self.checked == 0
        message = ok_message or f"{self.property} held over {self.checked} case(s)"
        if vacuous:
            message = self.vacuous_reason or f"{self.property}: nothing to check"
        return Verdict(
            self.oracle, self.property, True, vacuous, message, [], {"checked": self.checked}
        )
