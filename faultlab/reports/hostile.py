"""The report's hostile-client section: each hostile run's canary latency over the attack,
with the attack phases shaded, and what the server answered each attack; from the journal's
``hostile_*`` events only (see ``docs/hostile.md``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from faultlab.journal import schema as ev

__all__ = ["HOSTILE_SHADES", "hostile_runs_view", "hostile_svg"]

HOSTILE_SHADES = ("#ef7d32", "#8a5cc2", "#3d7cc9", "#d64541", "#2f9e62", "#d99a00")
"""One shade per attack, in turn."""
_OK = "#2f9e62"
_ERROR = "#d64541"


def _runs(events: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    runs: dict[str, list[Mapping[str, Any]]] = {}
    for e in events:
        if str(e.get("kind", "")).startswith("hostile_") and e.get("run"):
            runs.setdefault(str(e["run"]), []).append(e)
    return runs


def _phases(run: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    starts: dict[str, float] = {}
    phases = []
    for e in run:
        if e["kind"] != ev.HOSTILE_ATTACK:
            continue
        if e.get("phase") == "start":
            starts[str(e["attack"])] = float(e["t"])
        elif e.get("phase") == "end":
            name = str(e["attack"])
            phases.append(
                {
                    "attack": name,
                    "start": starts.get(name, float(e["t"])),
                    "end": float(e["t"]),
                    "answers": dict(e.get("answers") or {}),
                    "counts": dict(e.get("counts") or {}),
                    "bad_input": bool(e.get("bad_input")),
                    "error": e.get("error") or "",
                }
            )
    return phases


def hostile_svg(run: list[Mapping[str, Any]], index: int) -> str:
    """Canary latency (ms, log scale) against seconds since the run began, attack phases
    shaded and named, failed calls as red crosses."""
    from matplotlib.lines import Line2D

    from faultlab.reports.html import _figure, _svg

    origin = float(run[0]["t"])
    calls = [e for e in run if e["kind"] == ev.HOSTILE_CANARY]
    phases = _phases(run)
    with _figure(f"hostile-{index}", 10.5, 3.0) as fig:
        ax = fig.subplots()
        for i, phase in enumerate(phases):
            color = HOSTILE_SHADES[i % len(HOSTILE_SHADES)]
            x0, x1 = phase["start"] - origin, phase["end"] - origin
            ax.axvspan(x0, max(x1, x0 + 0.01), color=color, alpha=0.13, lw=0)
            y = 0.98 if i % 2 == 0 else 0.55  # alternate heights: short phases sit side by side
            ax.text(x0, y, phase["attack"], transform=ax.get_xaxis_transform(), fontsize=7,
                    color=color, rotation=90, va="top", ha="left")  # fmt: skip
        points = [(float(e["t"]) - origin, float(e["latency"]) * 1000, e.get("ok")) for e in calls]
        ok = [(x, y) for x, y, good in points if good]
        bad = [(x, y) for x, y, good in points if not good]
        if ok:
            ax.plot([x for x, _ in ok], [y for _, y in ok], color=_OK, lw=0.8, marker=".", ms=3)
        if bad:
            ax.scatter([x for x, _ in bad], [y for _, y in bad], marker="x", color=_ERROR, s=24)
        if ok or bad:
            ax.set_yscale("log")
        ax.set_xlabel("seconds since the run began")
        ax.set_ylabel("canary latency (ms)")
        ax.grid(axis="y", color="#e5e9f0", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.legend(
            handles=[
                Line2D([], [], color=_OK, marker=".", label="canary call ok"),
                Line2D([], [], color=_ERROR, marker="x", lw=0, label="canary call failed"),
            ],
            loc="upper center",
            bbox_to_anchor=(0.5, -0.22),
            ncols=2,
            frameon=False,
            fontsize=8,
        )
        fig.tight_layout()
        return _svg(fig, f"hostile-{index}", "canary latency over the hostile run")


def _p99_ms(values: list[float]) -> str:
    if not values:
        return "\N{EN DASH}"
    ordered = sorted(values)
    return f"{ordered[max(0, -(-99 * len(ordered) // 100) - 1)] * 1000:.1f}"


def hostile_runs_view(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per hostile run: its header, chart, attack rows and canary summary."""
    views = []
    for index, (run_id, run) in enumerate(_runs(events).items()):
        head = next((e for e in run if e["kind"] == ev.HOSTILE_RUN), {})
        calls = [e for e in run if e["kind"] == ev.HOSTILE_CANARY]
        probe = next((e for e in run if e["kind"] == ev.HOSTILE_PROBE), None)
        rss = [int(e["rss"]) for e in run if e["kind"] == ev.HOSTILE_RSS]
        views.append(
            {
                "run": run_id,
                "target": head.get("target", "?"),
                "protocol": head.get("protocol", "?"),
                "seed": head.get("seed"),
                "pid": head.get("pid"),
                "calls": len(calls),
                "failed": sum(1 for e in calls if not e.get("ok")),
                "p99_ms": _p99_ms([float(e["latency"]) for e in calls]),
                "alive": None if probe is None else bool(probe.get("ok")),
                "rss_mib": (
                    f"{min(rss) / 2**20:.1f} \N{RIGHTWARDS ARROW} {max(rss) / 2**20:.1f}"
                    if rss
                    else "not measured"
                ),
                "phases": _phases(run),
                "svg": hostile_svg(run, index),
            }
        )
    return views
