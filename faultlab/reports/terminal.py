"""Terminal views: a rich summary for the end of a run, and a progress helper for long runs.

The summary is what a developer reads first after ``pytest``: the matrix in colour and, for
each failing case, the one line that replays it. Like every view it is rendered from the
journal's :class:`~faultlab.reports.model.RunModel`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from faultlab.reports.model import (
    FAILED,
    NOT_TRIGGERED,
    PASSED,
    SKIPPED,
    STATUSES,
    SYMBOLS,
    VACUOUS,
    RunModel,
)

__all__ = [
    "CALL_STYLES",
    "STYLES",
    "RunProgress",
    "print_summary",
    "run_progress",
    "summary_renderable",
]

STYLES = {
    PASSED: "bold green",
    FAILED: "bold red",
    VACUOUS: "bold yellow",
    NOT_TRIGGERED: "bold bright_black",
    SKIPPED: "dim",
}
#: How each call result is drawn (a fallback is amber, never the green of "ok").
CALL_STYLES = {"ok": "green", "fallback": "bold dark_orange", "error": "red", "unfinished": "dim"}
#: Failing cases listed in full; the rest are counted (the HTML report has them all).
MAX_FAILING = 20


def _counts_line(model: RunModel) -> Text:
    text = Text(f"faultlab: seed {model.seed} · {len(model.cases)} test cases: ")
    parts = [(s, n) for s, n in model.counts.items() if n]
    for i, (status, n) in enumerate(parts):
        if i:
            text.append(", ")
        text.append(f"{n} {status}", style=STYLES[status])
    if not parts:
        text.append("none")
    return text


def _matrix_table(model: RunModel) -> Table | None:
    matrix = model.matrix().by_status()  # failing rows and columns first
    if not matrix.rows:
        return None
    table = Table(title="transport x protocol x fault", title_justify="left")
    table.add_column("transport")
    table.add_column("protocol")
    for fault in matrix.faults:  # Text everywhere: nodeids and faults hold [brackets]
        table.add_column(Text(fault), justify="center", overflow="fold")
    for row in matrix.rows:
        cells: list[RenderableType] = [Text(row[0]), Text(row[1])]
        for fault in matrix.faults:
            cell = matrix.get(row, fault)
            if cell is None:
                cells.append(Text("-", style="dim"))
                continue
            n = len(cell.cases)
            label = f"{SYMBOLS[cell.status]} {cell.status}" + (f" ({n})" if n > 1 else "")
            cells.append(Text(label, style=STYLES[cell.status]))
        table.add_row(*cells)
    return table


def _failing(model: RunModel) -> Text | None:
    """Failing cases as plain lines, so each replay command copies as one line."""
    failing = model.failing
    if not failing:
        return None
    text = Text("failing cases\n", style="bold")
    for case in failing[:MAX_FAILING]:
        text.append(f"{SYMBOLS[FAILED]} ", style=STYLES[FAILED])
        text.append(case.nodeid + "\n")
        text.append(f"    {case.reason}\n", style="dim")
        if case.calls:
            text.append("    calls: ")
            for i, (result, n) in enumerate(case.call_counts.items()):
                if i:
                    text.append(", ")
                text.append(f"{n} {result}", style=CALL_STYLES.get(result, ""))
            text.append("\n")
            first = next((r for r in case.calls if r.result == "fallback"), None)
            if first is not None:
                line = f"    {first.label}: fallback, got {first.got} ({first.why})\n"
                text.append(line, style=CALL_STYLES["fallback"])
        text.append("    replay: ")
        text.append(case.replay + "\n", style="cyan")
    if len(failing) > MAX_FAILING:
        text.append(f"... and {len(failing) - MAX_FAILING} more (see the HTML report)\n")
    text.rstrip()
    return text


def summary_renderable(model: RunModel) -> RenderableType:
    """The summary as one rich renderable (print it, or embed it in a larger layout)."""
    parts: list[RenderableType] = [_counts_line(model)]
    for part in (_matrix_table(model), _failing(model)):
        if part is not None:
            parts.append(part)
    parts.append(Text(f"replay the run: {model.replay}", style="cyan"))
    return Group(*parts)


def print_summary(model: RunModel, console: Console | None = None) -> None:
    """Print the end-of-run summary (to stdout, or the given console)."""
    (console or Console()).print(summary_renderable(model), soft_wrap=True)


class RunProgress:
    """A handle on one progress bar: ``advance()`` per finished case, ``note()`` for a status."""

    def __init__(self, progress: Progress, task: Any) -> None:
        self._progress = progress
        self._task = task
        self.counts = dict.fromkeys(STATUSES, 0)

    def advance(self, status: str | None = None, step: int = 1) -> None:
        if status is not None:
            self.counts[status] = self.counts.get(status, 0) + step
        self._progress.update(self._task, advance=step, status=self._status())

    def note(self, message: str) -> None:
        self._progress.update(self._task, description=message)

    def _status(self) -> str:
        return " ".join(
            f"[{STYLES[s]}]{SYMBOLS[s]}{n}[/]" for s, n in self.counts.items() if n and s in STYLES
        )


@contextmanager
def run_progress(
    total: int | None, description: str = "faultlab", console: Console | None = None
) -> Iterator[RunProgress]:
    """A rich progress bar for long runs (``faultlab demo``, soaks); transient on a terminal."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task(description, total=total, status="")
        yield RunProgress(progress, task)
