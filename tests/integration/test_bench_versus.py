"""``faultlab bench proxy --versus`` end to end, at a tiny size: every process it starts
answers, every row is measured, the goals are judged, and nothing is left running.
(The figures themselves are quoted from full runs, never asserted: timing belongs in
benchmarks.)"""

from __future__ import annotations

import glob
import os
import tempfile

from faultlab.bench.versus import GOALS, run_versus
from faultlab.proxy.reference import find_toxiproxy


def test_versus_measures_every_row_and_leaves_nothing() -> None:
    before = set(_children())
    files_before = set(glob.glob(os.path.join(tempfile.gettempdir(), "faultlab-versus-*")))
    report = run_versus(
        iterations=200, warmup=20, blocks=2, bulk_mib=2, bulk_rounds=1, connections=20
    )
    rows = {"direct", "forwarder", "faultlab", "faultlab+latency", "faultlab+limit_data"}
    if find_toxiproxy() is not None:
        rows |= {"toxiproxy", "toxiproxy+latency", "toxiproxy+limit_data"}
        assert report["toxiproxy"] is True
    else:
        assert "toxiproxy-server" in report["toxiproxy_missing"]
    assert set(report["latency"]) == rows
    for name, figures in report["latency"].items():
        assert 0 < figures["p50_us"] <= figures["p99_us"], name
    assert report["latency"]["direct"]["added_p50_us"] == 0
    assert all(rate > 0 for rate in report["bulk_mb_s"].values())
    assert report["unix_bulk"]["faultlab_mb_s"] > 0
    assert report["unix_bulk"]["forwarder_mb_s"] > 0
    assert all(rss["errors"] == 0 and rss["rss_mb"] > 10 for rss in report["rss"].values())
    assert set(report["goals"]) == set(GOALS)
    assert all(isinstance(judged["met"], bool) for judged in report["goals"].values())
    assert set(_children()) <= before, "a benchmark process outlived the run"
    files_after = set(glob.glob(os.path.join(tempfile.gettempdir(), "faultlab-versus-*")))
    assert files_after <= files_before, "the unix sockets' files outlived the run"


def _children() -> list[int]:
    """Live child processes of this test process (zombies reaped)."""
    mine = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == mine and fields[0] != "Z":
            found.append(int(entry))
    return found


def test_grpc_figure_compares_relays_per_set_and_leaves_nothing() -> None:
    """The gRPC row of ``faultlab bench proxy`` at a tiny size: each set (a server and its
    two relays) is measured, the ratio is the median of the sets' ratios, and every server
    and relay process is gone afterwards."""
    from faultlab.bench.proxy import _grpc_figure

    before = set(_children())
    figure = _grpc_figure(60, 10, None, 20, instances=2)
    assert figure["instances"] == 2
    assert len(figure["per_set"]) == 2
    for row in ("direct", "raw_relay", "h2_relay"):
        assert 0 < figure[row]["p50_us"] <= figure[row]["p99_us"], row
        assert figure[row]["stream_msgs_per_s"] > 0, row
    ratios = sorted(s["ratio"] for s in figure["per_set"] if s["added_raw"] > 0)
    if ratios:
        assert figure["ratio"] == sum(ratios) / len(ratios)  # the median of two
    assert set(_children()) <= before, "a benchmark process outlived the figure"
