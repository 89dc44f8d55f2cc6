"""``check_hostile``: five properties of a hostile run, read from its journal events only.

- **H1 server stayed up**: the liveness probe after the attacks succeeded (and the
  process, when faultlab knows it, is still running).
- **H2 bad input answered with a protocol error or a close**: every malformed or oversized
  input got a 4xx (or 501/505), an RPC error, a GOAWAY/RST_STREAM, a close or a reset;
  never another 5xx, a 2xx accepting an oversized body, or silence.
- **H3 canary success rate**: the share of canary calls made during the attacks that
  succeeded is at least the budget's ``min_success_rate``.
- **H4 canary p99 within budget**: their 99th percentile latency is at most ``max_p99``.
- **H5 RSS bounded**: the server's peak RSS during the attacks (sampled, over its process
  and children, and the process's own high-water mark ``VmHWM``, so a short peak between
  samples counts) rose at most ``max_rss_growth`` above the baseline; vacuous when
  faultlab does not know the process.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from faultlab.journal import schema as ev
from faultlab.oracles._common import PropertyCheck, secs
from faultlab.oracles.verdict import Verdict, combine
from faultlab.suites.hostile.config import HostileBudget

__all__ = ["H1", "H2", "H3", "H4", "H5", "ORACLE", "check_hostile", "hostile_runs"]

ORACLE = "hostile"
H1 = "H1 server stayed up"
H2 = "H2 bad input answered with a protocol error or a close"
H3 = "H3 canary success rate"
H4 = "H4 canary p99 within budget"
H5 = "H5 RSS bounded"

GOOD_ANSWERS = frozenset(
    {"close", "reset", "answered", "goaway", "rst_stream", "protocol_error", "refused"}
)
"""Answers to bad input that are right whatever the input: the server said no or hung up."""
REFUSALS = frozenset({501, 505})
"""5xx statuses that refuse a method or HTTP version (an HTTP/1.1 server shown the HTTP/2
preface's ``PRI`` method), not a failure of the server."""


def _ok_answer(answer: str, attack: str) -> bool:
    if answer in GOOD_ANSWERS:
        return True
    if answer.startswith("http_") and answer[5:].isdigit():
        status = int(answer[5:])
        if attack == "malformed":  # an RPC error travels in a 200 (JSON-RPC, XML-RPC)
            return status < 500 or status in REFUSALS
        return 400 <= status < 500 or status in REFUSALS
    return False


def hostile_runs(events: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The events of each hostile run in ``events``, by run id, in journal order."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if str(e.get("kind", "")).startswith("hostile_") and e.get("run"):
            runs.setdefault(str(e["run"]), []).append(dict(e))
    return runs


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def _window(events: list[dict[str, Any]]) -> tuple[float, float] | None:
    starts = [
        e["t"] for e in events if e["kind"] == ev.HOSTILE_ATTACK and e.get("phase") == "start"
    ]
    ends = [e["t"] for e in events if e["kind"] == ev.HOSTILE_ATTACK and e.get("phase") == "end"]
    return (min(starts), max(ends)) if starts and ends else None


def check_hostile(result_or_events: Any, budget: HostileBudget | None = None) -> Verdict:
    """Judge one hostile run (a :class:`HostileResult`, or journal events holding exactly
    one run; pass ``budget`` to judge against another budget than the run's)."""
    events = getattr(result_or_events, "events", result_or_events)
    runs = hostile_runs(events)
    if len(runs) != 1:
        from faultlab.suites.hostile._net import HostileError

        raise HostileError(
            f"check_hostile needs the events of exactly one hostile run, got {len(runs)}; "
            "pick one with hostile_runs(events)"
        )
    (run,) = runs.values()
    head = next((e for e in run if e["kind"] == ev.HOSTILE_RUN and e.get("phase") == "start"), {})
    if budget is None:
        budget = HostileBudget(**head["budget"]) if head.get("budget") else HostileBudget()
    checks = [
        _stayed_up(run),
        _bad_input(run),
        *_canary(run, budget),
        _rss(run, budget, head.get("pid")),
    ]
    return combine(ORACLE, checks, vacuous=False)


def _stayed_up(run: list[dict[str, Any]]) -> Verdict:
    check = PropertyCheck(ORACLE, H1)
    for probe in (e for e in run if e["kind"] == ev.HOSTILE_PROBE):
        check.checked += 1
        if probe.get("alive") is False:
            check.fail("the server process is gone after the attacks", [probe])
        elif not probe.get("ok"):
            check.fail(
                f"the server did not answer after the attacks: {probe.get('error')}", [probe]
            )
    if not check.checked:
        check.fail("the run has no liveness probe (it did not finish)", run[-1:])
    return check.verdict("the server answered the liveness probe after the attacks")


def _bad_input(run: list[dict[str, Any]]) -> Verdict:
    check = PropertyCheck(ORACLE, H2)
    for e in run:
        if e["kind"] != ev.HOSTILE_ATTACK or e.get("phase") != "end" or not e.get("bad_input"):
            continue
        answers: dict[str, int] = e.get("answers") or {}
        wrong = {a: n for a, n in answers.items() if not _ok_answer(a, e["attack"])}
        check.checked += sum(answers.values())
        if wrong:
            shown = [s for s in e.get("samples") or [] if s.get("answer") in wrong][:3]
            example = "; ".join(f"{s['input']} -> {s['answer']}" for s in shown)
            check.fail(
                f"{e['attack']}: {sum(wrong.values())} of {sum(answers.values())} bad inputs "
                f"answered {', '.join(sorted(wrong))}" + (f" (e.g. {example})" if example else ""),
                [e],
                answers=answers,
            )
    if not check.checked:
        check.vacuous_reason = "no malformed or oversized input was sent"
    return check.verdict(f"{check.checked} bad inputs each got a protocol error or a close")


def _canary(run: list[dict[str, Any]], budget: HostileBudget) -> list[Verdict]:
    rate, p99 = PropertyCheck(ORACLE, H3), PropertyCheck(ORACLE, H4)
    window = _window(run)
    calls = [
        e
        for e in run
        if e["kind"] == ev.HOSTILE_CANARY
        and window is not None
        and window[0] <= e["t"] <= window[1]
    ]
    if not calls:
        reason = "the canary made no call during the attacks"
        rate.fail(reason, run[:1])
        p99.fail(reason, run[:1])
        return [rate.verdict(), p99.verdict()]
    ok = [e for e in calls if e.get("ok")]
    share = len(ok) / len(calls)
    rate.checked = p99.checked = len(calls)
    if share < budget.min_success_rate:
        failed = [e for e in calls if not e.get("ok")]
        rate.fail(
            f"{len(ok)} of {len(calls)} canary calls succeeded during the attacks ({share:.0%}), "
            f"below the budget's {budget.min_success_rate:.0%}; first error: "
            f"{failed[0].get('error')}",
            failed[:20],
        )
    latency = _p99([float(e["latency"]) for e in calls])
    if latency > budget.max_p99:
        slow = sorted(calls, key=lambda e: -float(e["latency"]))[:10]
        p99.fail(
            f"canary p99 {secs(latency)} during the attacks, over the budget's "
            f"{secs(budget.max_p99)}",
            sorted(slow, key=lambda e: e["seq"]),
            p99=latency,
        )
    return [
        rate.verdict(f"{len(ok)}/{len(calls)} canary calls succeeded ({share:.0%})"),
        p99.verdict(f"canary p99 {secs(latency)} within {secs(budget.max_p99)}"),
    ]


def _rss(run: list[dict[str, Any]], budget: HostileBudget, pid: Any) -> Verdict:
    check = PropertyCheck(ORACLE, H5)
    samples = [e for e in run if e["kind"] == ev.HOSTILE_RSS]
    window = _window(run)
    if pid is None or not samples or window is None:
        check.vacuous_reason = (
            "the server's process is not known (an Address): RSS not measured"
            if pid is None
            else "no RSS sample was taken"
        )
        return check.verdict()
    before = [e for e in samples if e["t"] < window[0]] or samples[:1]
    during = [e for e in samples if e["t"] >= window[0]] or before
    baseline = max(int(e["rss"]) for e in before)
    peak = max(during, key=lambda e: int(e["rss"]))
    growth = int(peak["rss"]) - baseline
    # a peak between two samples is still in the kernel's high-water mark (VmHWM), when it
    # rose above every earlier peak of the process
    hwm_before = max(int(e.get("hwm") or 0) for e in before)
    last = during[-1]
    if int(last.get("hwm") or 0) > hwm_before:
        main_before = max(int(e.get("main") or 0) for e in before)
        if int(last["hwm"]) - main_before > growth:
            growth, peak = int(last["hwm"]) - main_before, last
    check.checked = len(during)
    mib = 1024 * 1024
    if growth > budget.max_rss_growth:
        check.fail(
            f"server RSS grew {growth / mib:.1f} MiB during the attacks "
            f"({baseline / mib:.1f} MiB before), over the budget's "
            f"{budget.max_rss_growth / mib:.0f} MiB",
            [before[-1], peak],
            growth=growth,
        )
    return check.verdict(
        f"server RSS grew {growth / mib:.1f} MiB (budget {budget.max_rss_growth / mib:.0f} MiB)"
    )
