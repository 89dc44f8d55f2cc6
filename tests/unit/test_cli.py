from __future__ import annotations

import json
import subprocess
import sys

import pytest

from faultlab.cli import main


def test_transports_json_lists_every_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transports", "--json"]) == 0
    rows = {r["scheme"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"tcp", "tls", "udp", "unix", "unixgram", "fifo", "shm", "mq", "npipe"} <= set(rows)
    assert rows["npipe"]["available"] is False
    assert rows["udp"]["reliable"] is False
    assert rows["mq"]["kind"] == "message"


def test_transports_table_runs_as_a_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "faultlab", "transports"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "unixgram://" in out
    assert "not supported on platform" in out


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "transports" in capsys.readouterr().out


def test_bench_transports_writes_json(tmp_path: object) -> None:
    from pathlib import Path

    out = Path(str(tmp_path)) / "bench.json"
    code = main(
        [
            "bench",
            "transports",
            "tcp",
            "unix",
            "-n",
            "200",
            "--warmup",
            "20",
            "--bulk-mib",
            "2",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    results = report["results"]
    assert {r["scheme"] for r in results} == {"tcp", "unix"}
    for r in results:
        assert r["faultlab"]["median_us"] > 0
        assert r["raw"]["median_us"] > 0
        assert r["ratio"] == pytest.approx(r["faultlab"]["median_us"] / r["raw"]["median_us"])
        assert r["throughput_mb_s"] > 0
    assert report["placement"]["name"] == "same"
