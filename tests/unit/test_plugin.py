"""The pytest plugin, driven through pytester in a subprocess (as pytest plugins test it)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_plugin_loads_and_registers_options(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(
        [
            "*--faultlab-seed*",
            "*--faultlab-transports*",
            "*--faultlab-protocols*",
            "*--faultlab-backend*",
            "*--faultlab-report*",
            "*--toxiproxy-url*",
        ]
    )
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.faultlab(transports=None*"])


def test_header_prints_the_seed_and_how_to_replay(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest_subprocess("--faultlab-seed=1234")
    result.stdout.fnmatch_lines(["faultlab: seed 1234 (replay with --faultlab-seed=1234)"])
    result.assert_outcomes(passed=1)


def test_ini_twin_sets_the_seed(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nfaultlab_seed = 77\n")
    pytester.makepyfile("def test_seed(faultlab_seed):\n    assert faultlab_seed == 77\n")
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_bad_seed_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest_subprocess("--faultlab-seed=banana")
    result.stderr.fnmatch_lines(["*--faultlab-seed must be an integer*"])
    assert result.ret != 0


def test_marker_parametrizes_the_matrix_and_pairs_work(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.faultlab(transports=["tcp", "unix"], protocols=["binrpc", "jsonrpc"])
        def test_add(faultlab_pair, faultlab_transport, faultlab_protocol):
            assert faultlab_pair.run(lambda c: c.add(2, 3)) == 5
            assert faultlab_pair.protocol == faultlab_protocol

        @pytest.mark.faultlab(faults=[{"type": "latency", "latency": 30}])
        def test_fault(faultlab_pair, faultlab_fault):
            attrs = {k: v for k, v in faultlab_fault.items() if k != "type"}
            faultlab_pair.proxy.add_toxic(faultlab_fault["type"], **attrs)
            import time
            t = time.monotonic()
            faultlab_pair.run(lambda c: c.add(1, 1))
            assert time.monotonic() - t >= 0.03

        def test_faults_were_cleared(faultlab_lab):
            for pair in faultlab_lab.pairs:
                assert pair.proxy.toxics() == []
        """
    )
    result = pytester.runpytest_subprocess("-v", "--faultlab-seed=5")
    result.stdout.fnmatch_lines(
        [
            "*test_add?tcp-binrpc?*PASSED*",
            "*test_add?unix-jsonrpc?*PASSED*",
            "*test_fault?tcp-binrpc-latency?latency=30??*PASSED*",
        ]
    )
    result.assert_outcomes(passed=6)


def test_failure_prints_the_replay_line_and_junit_properties(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.faultlab(protocols=["binrpc"])
        def test_fails(faultlab_pair):
            assert faultlab_pair.run(lambda c: c.add(2, 2)) == 5
        """
    )
    result = pytester.runpytest_subprocess("--faultlab-seed=99", "--junitxml=out.xml")
    result.stdout.fnmatch_lines(["*faultlab replay*", "*--faultlab-seed=99*"])
    xml = (pytester.path / "out.xml").read_text()
    assert 'name="faultlab_seed" value="99"' in xml
    assert 'name="faultlab_protocol"' in xml


def test_marker_rejects_unknown_arguments(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.faultlab(transport="tcp")
        def test_x(faultlab_pair):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*faultlab marker takes only keyword arguments*"])


def test_report_option_writes_the_journal(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.faultlab()
        def test_one(faultlab_pair):
            faultlab_pair.run(lambda c: c.add(1, 2))
        """
    )
    pytester.runpytest_subprocess("--faultlab-report=out").assert_outcomes(passed=1)
    import json

    journal = json.loads((pytester.path / "out" / "journal.json").read_text())
    kinds = {e["kind"] for e in journal["events"]}
    assert {"call_start", "attempt_start", "server_request", "connection"} <= kinds


def test_xdist_workers_share_the_seed_and_get_their_own_pairs(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.faultlab(transports=["tcp", "unix"], protocols=["binrpc", "msgpackrpc"])
        def test_add(faultlab_pair, faultlab_seed):
            assert faultlab_seed == 31
            assert faultlab_pair.run(lambda c: c.add(1, 2)) == 3
            print("WORKER", os.environ.get("PYTEST_XDIST_WORKER"), faultlab_pair.proxy.address)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "--faultlab-seed=31", "-s")
    result.assert_outcomes(passed=4)


def test_xdist_controller_merges_the_worker_journals(pytester: pytest.Pytester) -> None:
    """Each worker writes journal-<worker>.json; the controller merges them into journal.json,
    verdicts (journaled by faultlab_check through the oracle layer) included."""
    pytest.importorskip("xdist")
    import json

    pytester.makepyfile(
        """
        import pytest
        from faultlab.oracles import Verdict

        @pytest.mark.faultlab(transports=["tcp"], protocols=["binrpc"])
        @pytest.mark.parametrize("n", [1, 2, 3, 4])
        def test_add(faultlab_pair, faultlab_check, n):
            faultlab_check(Verdict("demo", "P1", True, message=f"n={n}"))
            assert faultlab_pair.run(lambda c: c.add(n, 1)) == n + 1
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "--faultlab-seed=5", "--faultlab-report=out")
    result.assert_outcomes(passed=4)
    out = pytester.path / "out"
    workers = sorted(p.name for p in out.glob("journal-*.json"))
    assert workers  # the workers wrote their own files, the merge sits next to them
    merged = json.loads((out / "journal.json").read_text())
    assert merged["schema"] == "faultlab.journal/1"
    assert merged["seed"] == 5
    assert merged["merged"] == workers
    assert merged["workers"] == sorted(w[len("journal-") : -len(".json")] for w in workers)
    per_worker = [json.loads((out / w).read_text())["events"] for w in workers]
    assert len(merged["events"]) == sum(len(events) for events in per_worker)
    tests = [e for e in merged["events"] if e["kind"] == "test"]
    assert len(tests) == 4
    messages = sorted(e["message"] for e in merged["events"] if e["kind"] == "verdict")
    assert messages == ["n=1", "n=2", "n=3", "n=4"]
