"""``faultlab report JOURNAL... -o report.html``: re-render a run's reports from its journals.

Reports are views of the journal, so this works long after the run, on another machine,
from the files alone (the journal of each xdist worker, or a directory holding them).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultlab.reports.model import RunModel

__all__ = ["add_parser", "render_files", "run"]

PathLike = str | os.PathLike[str]


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "report",
        help="render HTML/JUnit/JSON reports from journal files",
        description="Render a self-contained HTML report (and optionally JUnit XML and JSON) "
        "from one run's journal files; xdist worker journals are merged. A directory stands "
        "for every journal*.json in it.",
    )
    parser.add_argument(
        "journals", nargs="+", metavar="JOURNAL", help="journal.json files or directories"
    )
    parser.add_argument(
        "-o",
        "--output",
        default="report.html",
        metavar="HTML",
        help="where to write the HTML report (default: report.html; '-' to skip it)",
    )
    parser.add_argument("--junit", metavar="XML", help="also write JUnit XML here")
    parser.add_argument(
        "--json",
        metavar="DIR",
        help="also write DIR/<run-id>/journal.json (merged) and summary.json",
    )
    parser.add_argument(
        "--summary", action="store_true", help="print the matrix and failing cases to the terminal"
    )
    parser.set_defaults(run=run)


def _error(message: str) -> int:
    print(f"faultlab report: error: {message}", file=sys.stderr)
    return 2


def render_files(
    journals: Sequence[PathLike],
    html: PathLike | None,
    *,
    junit: PathLike | None = None,
    json_dir: PathLike | None = None,
) -> tuple[RunModel, list[tuple[str, Path]]]:
    """Load and merge ``journals``, write the requested views; return the model and the files.

    Raises :class:`~faultlab.journal.JournalError` for bad input,
    :class:`~faultlab.reports.html.ReportDependencyError` (an ``ImportError``) when the HTML
    report's extra is missing, and ``OSError`` when an output cannot be written.
    """
    from faultlab.journal.fileformat import load_journal
    from faultlab.reports.model import build_model

    model = build_model(load_journal([Path(p) for p in journals]))
    written: list[tuple[str, Path]] = []
    if html is not None:
        from faultlab.reports.html import write_html

        written.append(("HTML report", write_html(model, html)))
    if junit is not None:
        from faultlab.reports.junit import write_junit

        written.append(("JUnit XML", write_junit(model, junit)))
    if json_dir is not None:
        from faultlab.reports.json import write_json

        folder = write_json(model, json_dir)
        written.append(("journal", folder / "journal.json"))
        written.append(("summary", folder / "summary.json"))
    return model, written


def run(args: argparse.Namespace) -> int:
    from faultlab.journal.fileformat import JournalError
    from faultlab.reports.html import ReportDependencyError

    try:
        model, written = render_files(
            args.journals,
            None if args.output == "-" else args.output,
            junit=args.junit,
            json_dir=args.json,
        )
    except (JournalError, ReportDependencyError) as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"cannot write {exc.filename or ''}: {exc.strerror or exc}")
    if args.summary:
        from faultlab.reports.terminal import print_summary

        print_summary(model)
    counts = ", ".join(f"{n} {s}" for s, n in model.counts.items() if n) or "no test cases"
    print(f"run {model.run_id} (seed {model.seed}): {len(model.cases)} test cases: {counts}")
    for what, path in written:
        print(f"wrote {what}: {path}")
    return 0
