"""The self-contained HTML report: one file, inline CSS and SVG, opens offline, no JS
(the matrix's filter is CSS radio buttons).

Plots are drawn with matplotlib's SVG backend (never pyplot, so the user's backend is left
alone) with a fixed hash salt per figure and no date, and the page is rendered with jinja2 from
``templates/report.html.j2``: the same journal always gives the same bytes, so reports can be
diffed and cached. jinja2 and matplotlib come with the ``faultlab[report]`` extra.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faultlab.reports.model import (
    FAILED,
    NOT_TRIGGERED,
    PASSED,
    SKIPPED,
    STATUSES,
    SYMBOLS,
    VACUOUS,
    Cell,
    RunModel,
    TestCase,
    quantile,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "CALL_COLORS",
    "COLORS",
    "FALLBACK",
    "MAX_LATENCY_CELLS",
    "MAX_TIMELINES",
    "ReportDependencyError",
    "latency_svg",
    "render_html",
    "timeline_svg",
    "write_html",
]

#: Status colours (ColorBrewer RdYlGn-like, checked for contrast with dark text).
COLORS = {
    PASSED: "#2f9e62",
    FAILED: "#d64541",
    VACUOUS: "#e9a23b",
    NOT_TRIGGERED: "#8893a7",
    SKIPPED: "#c9ced6",
}
FALLBACK = "#d99a00"
"""Amber: a call answered by a fallback (the caller got a value, not the primary's)."""
CALL_COLORS = {"ok": COLORS[PASSED], "fallback": FALLBACK, "error": COLORS[FAILED]}
CLEAN = "#3d7cc9"
FAULTED = "#ef7d32"
TOXIC_SHADE = "#d64541"
PROCESS_SHADE = "#8a5cc2"
#: At most this many failing cases get a timeline plot (the rest are listed with their replay).
MAX_TIMELINES = 40
#: At most this many cells are drawn in the latency plot (the table below it lists every cell).
MAX_LATENCY_CELLS = 60
#: At most this many calls are listed per failing case (the counts cover them all).
MAX_CALL_ROWS = 60
_MAX_POINTS = 400
_FONT = ["DejaVu Sans", "Liberation Sans", "sans-serif"]


class ReportDependencyError(ImportError):
    """jinja2 or matplotlib is missing: the HTML report needs the ``report`` extra."""


def _require() -> None:
    try:
        import jinja2  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ReportDependencyError(
            f"the HTML report needs {exc.name}: pip install 'faultlab[report]'"
        ) from exc


# ---- plots ---------------------------------------------------------------------------------
@contextmanager
def _figure(salt: str, width: float, height: float) -> Iterator[Figure]:
    """A pyplot-free figure whose SVG ids are derived from ``salt`` (unique, reproducible)."""
    import matplotlib
    from matplotlib.figure import Figure

    rc: dict[Any, Any] = {
        "svg.hashsalt": f"faultlab-{salt}",
        "svg.fonttype": "none",
        "font.family": "sans-serif",
        "font.sans-serif": _FONT,
        "font.size": 9,
        "axes.edgecolor": "#9aa3b2",
        "axes.labelcolor": "#3b4252",
        "xtick.color": "#4c566a",
        "ytick.color": "#4c566a",
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(width, height), dpi=96)
        yield fig


def _svg(fig: Figure, salt: str, label: str) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"faultlab-{salt}", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    # no URLs in the page: drop the RDF metadata block and the "Created with" comment
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    text = re.sub(r"\s*<!--.*?-->", "", text, flags=re.S)
    head_end = text.index(">")
    # inline SVG in HTML needs no namespaces; the page then holds no URL at all
    head = re.sub(r'\s(width|height|xmlns|xmlns:xlink|id)="[^"]*"', "", text[:head_end])
    head += f' id="fig-{salt}" class="plot" role="img" aria-label="{_attr(label)}"'
    # several figures share one page: make every id (and reference to it) figure-specific
    body = re.sub(r'\bid="([^"]+)"', rf'id="{salt}-\1"', text[head_end:])
    body = re.sub(r"url\(#([^)]+)\)", rf"url(#{salt}-\1)", body)
    body = re.sub(r'href="#([^"]+)"', rf'href="#{salt}-\1"', body)
    return head + body


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _thin(values: Sequence[float]) -> list[float]:
    """At most ``_MAX_POINTS`` evenly spaced values (a deterministic subsample for strips)."""
    if len(values) <= _MAX_POINTS:
        return list(values)
    step = len(values) / _MAX_POINTS
    return [values[int(i * step)] for i in range(_MAX_POINTS)]


def latency_svg(model: RunModel) -> str | None:
    """Attempt latency per cell, clean vs faulted: one panel per transport x protocol."""
    panels: list[tuple[str, list[Cell]]] = []
    budget = MAX_LATENCY_CELLS
    for row, cells in _rows_with_latency(model):
        if budget <= 0:
            break
        panels.append((f"{row[0]} · {row[1]}", cells[:budget]))
        budget -= len(cells)
    if not panels:
        return None
    import matplotlib
    import numpy as np

    # matplotlib 3.10 renamed vert=False to orientation="horizontal" (and deprecated vert)
    modern = tuple(matplotlib.__version_info__[:2]) >= (3, 10)
    horizontal: dict[str, Any] = {"orientation": "horizontal"} if modern else {"vert": False}

    heights = [0.55 + 0.42 * len(cells) for _, cells in panels]
    with _figure("latency", 10.5, sum(heights) + 0.6) as fig:
        axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False, height_ratios=heights)
        rng = np.random.default_rng(0)
        for ax, (title, cells) in zip(axes[:, 0], panels, strict=True):
            for i, cell in enumerate(cells):
                y = len(cells) - 1 - i
                for values, offset, color in (
                    (cell.clean_latencies, 0.14, CLEAN),
                    (cell.faulted_latencies, -0.14, FAULTED),
                ):
                    if not values:
                        continue
                    ms = [v * 1000 for v in values]
                    ax.boxplot(
                        [ms],
                        positions=[y + offset],
                        **horizontal,
                        widths=0.22,
                        showfliers=False,
                        patch_artist=True,
                        boxprops={"facecolor": color + "55", "edgecolor": color},
                        medianprops={"color": color, "linewidth": 2},
                        whiskerprops={"color": color},
                        capprops={"color": color},
                    )
                    pts = _thin(ms)
                    jitter = rng.uniform(-0.07, 0.07, len(pts))
                    ax.scatter(pts, y + offset + jitter, s=6, color=color, alpha=0.55, lw=0)
            ax.set_yticks(range(len(cells)), [c.fault for c in reversed(cells)])
            ax.set_ylim(-0.6, len(cells) - 0.4)
            ax.set_title(title, loc="left", fontsize=10, fontweight="bold", color="#2e3440")
            ax.grid(axis="x", color="#e5e9f0", linewidth=0.8)
            ax.set_axisbelow(True)
        bottom: Axes = axes[-1, 0]
        bottom.set_xscale("log")
        bottom.set_xlabel("attempt duration (ms, log scale)")
        from matplotlib.ticker import FuncFormatter

        for ax in axes[:, 0]:
            ax.tick_params(labelbottom=True)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        from matplotlib.patches import Patch

        fig.legend(
            handles=[
                Patch(color=CLEAN, label="clean attempts"),
                Patch(color=FAULTED, label="faulted attempts"),
            ],
            loc="upper right",
            ncols=2,
            frameon=False,
        )
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        return _svg(fig, "latency", "attempt latency per cell, clean vs faulted")


_LANES = ("calls", "attempts", "server", "faults", "process", "breaker")


def timeline_svg(case: TestCase, index: int) -> str:
    """One failing case: calls, attempts, server work, fault decisions, fault windows shaded."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    origin = case.t_start
    lanes = [lane for lane in _LANES if any(s.lane == lane for s in case.timeline)]
    lanes = lanes or ["calls"]
    ypos = {lane: len(lanes) - 1 - i for i, lane in enumerate(lanes)}
    span_ms = max((case.t_end - origin) * 1000, 1e-3)
    with _figure(f"timeline-{index}", 10.5, 0.9 + 0.42 * len(lanes)) as fig:
        ax = fig.subplots()
        for win in case.fault_windows:
            color = TOXIC_SHADE if win.kind == "toxic" else PROCESS_SHADE
            x0, x1 = (win.start - origin) * 1000, (win.end - origin) * 1000
            ax.axvspan(x0, max(x1, x0 + span_ms * 0.002), color=color, alpha=0.10, lw=0)
            ax.text(
                x0 + span_ms * 0.004,
                len(lanes) - 0.12,
                win.name,
                fontsize=7.5,
                color=color,
                va="top",
            )
        bars: dict[tuple[str, str], list[tuple[float, float]]] = {}
        points: dict[tuple[str, str], list[float]] = {}
        for s in case.timeline:
            x = (s.start - origin) * 1000
            if s.end is not None:
                width = max((s.end - s.start) * 1000, span_ms * 0.003)
                bars.setdefault((s.lane, s.status), []).append((x, width))
            else:
                points.setdefault((s.lane, s.status), []).append(x)
        for (lane, status), ranges in sorted(bars.items()):
            color = CALL_COLORS.get(status, COLORS[FAILED])
            ax.broken_barh(
                ranges, (ypos[lane] - 0.28, 0.56), facecolors=color + "aa", edgecolors=color
            )
        markers = {"fault": ("X", TOXIC_SHADE), "info": ("D", "#5e81ac")}
        for (lane, status), xs in sorted(points.items()):
            marker, color = markers.get(status, ("|", COLORS[PASSED]))
            if lane == "process":
                marker, color = "D", PROCESS_SHADE
            elif lane == "server" and status == "error":
                color = COLORS[FAILED]
            ax.scatter(xs, [ypos[lane]] * len(xs), marker=marker, s=36, color=color, lw=1.2)
        ax.set_yticks([ypos[lane] for lane in lanes], lanes)
        ax.set_ylim(-0.6, len(lanes) - 0.05)
        ax.set_xlim(-span_ms * 0.01, span_ms * 1.01)
        ax.set_xlabel("ms since the test started")
        ax.grid(axis="x", color="#e5e9f0", linewidth=0.8)
        ax.set_axisbelow(True)
        handles = [
            Patch(color=COLORS[PASSED], alpha=0.7, label="ok"),
            Patch(color=COLORS[FAILED], alpha=0.7, label="error"),
            Line2D([], [], marker="X", lw=0, color=TOXIC_SHADE, label="fault decision"),
            Patch(color=TOXIC_SHADE, alpha=0.15, label="toxic active"),
        ]
        if any(span.status == "fallback" for span in case.timeline):
            handles.insert(1, Patch(color=FALLBACK, alpha=0.7, label="fallback"))
        if any(w.kind == "process" for w in case.fault_windows) or "process" in lanes:
            handles.append(Patch(color=PROCESS_SHADE, alpha=0.2, label="process fault"))
        ax.legend(
            handles=handles,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.32 - 0.04 * (6 - len(lanes))),
            ncols=len(handles),
            frameon=False,
            fontsize=8,
        )
        fig.tight_layout()
        return _svg(fig, f"timeline-{index}", f"timeline of {case.nodeid}")


# ---- page ----------------------------------------------------------------------------------
def _ms(values: Sequence[float], q: float) -> str:
    return f"{quantile(values, q) * 1000:.1f}" if values else "\N{EN DASH}"


def _rows_with_latency(model: RunModel) -> list[tuple[tuple[str, str], list[Cell]]]:
    """Matrix rows in matrix order, each with its cells that have attempt samples."""
    matrix = model.matrix()
    out = []
    for row in matrix.rows:
        cells = [c for f in matrix.faults if (c := matrix.get(row, f)) is not None]
        cells = [c for c in cells if c.clean_latencies or c.faulted_latencies]
        if cells:
            out.append((row, cells))
    return out


def _latency_rows(model: RunModel) -> list[dict[str, Any]]:
    rows = []
    for _, cells in _rows_with_latency(model):
        for cell in cells:
            clean, faulted = cell.clean_latencies, cell.faulted_latencies
            rows.append(
                {
                    "cell": cell,
                    "clean_n": len(clean),
                    "clean_p50": _ms(clean, 0.5),
                    "clean_p95": _ms(clean, 0.95),
                    "faulted_n": len(faulted),
                    "faulted_p50": _ms(faulted, 0.5),
                    "faulted_p95": _ms(faulted, 0.95),
                    "faulted_max": _ms(faulted, 1.0),
                }
            )
    return rows


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, default=repr)


def render_html(model: RunModel) -> str:
    """The report page as a string (byte-identical for the same journal)."""
    _require()
    import jinja2

    source = (resources.files("faultlab.reports") / "templates" / "report.html.j2").read_text(
        encoding="utf-8"
    )
    env = jinja2.Environment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["pretty"] = _pretty
    template = env.from_string(source)
    failing = list(model.failing)
    timelines = {
        case.nodeid + case.worker: timeline_svg(case, i)
        for i, case in enumerate(failing[:MAX_TIMELINES])
    }
    created = None
    if model.journal.created is not None:
        import time

        created = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(model.journal.created))
    from faultlab.journal.schema import SCHEMA
    from faultlab.reports.hostile import hostile_runs_view

    return template.render(
        model=model,
        schema=SCHEMA,
        counts=model.counts,
        total=len(model.cases),
        statuses=STATUSES,
        colors=COLORS,
        symbols=SYMBOLS,
        matrix=model.matrix().by_status(),
        rank={s: i for i, s in enumerate(STATUSES)},
        call_colors=CALL_COLORS,
        max_calls=MAX_CALL_ROWS,
        latency_plot=latency_svg(model),
        hostile=hostile_runs_view(model.journal.events),
        latency_rows=_latency_rows(model),
        max_latency_cells=MAX_LATENCY_CELLS,
        failing=failing,
        timelines=timelines,
        max_timelines=MAX_TIMELINES,
        created=created,
        sources=[os.path.basename(s) for s in model.journal.sources],
        attention=[c for c in model.cases if c.status in (VACUOUS, NOT_TRIGGERED)],
    )


def write_html(model: RunModel, path: str | os.PathLike[str]) -> Path:
    """Render and write ``report.html`` (parents created); returns the path."""
    target = Path(path)
    text = render_html(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target
