"""One Lab and one reused TCP pair for every quality test, and a summary of what they found."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.quality.harness import Env, make_env

STATS: dict[str, Any] = {"examples": 0, "seconds": 0.0, "verdicts": {}, "caught": []}


@pytest.fixture(scope="session")
def env() -> Iterator[Env]:
    import stamina.instrumentation

    stamina.instrumentation.set_on_retry_hooks([])  # no log line per retry in the test output
    environment = make_env()
    try:
        yield environment
    finally:
        STATS["examples"] += environment.examples
        STATS["seconds"] += environment.seconds
        environment.lab.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not STATS["examples"]:
        return
    tr = terminalreporter
    tr.section("faultlab quality")
    rate = STATS["examples"] / STATS["seconds"] if STATS["seconds"] else 0.0
    tr.write_line(
        f"{STATS['examples']} workload runs on one reused TCP pair in {STATS['seconds']:.1f} s "
        f"({rate:.1f} examples/s)"
    )
    for name, counts in sorted(STATS["verdicts"].items()):
        tr.write_line(
            f"  {name}: {counts['passed']} passed ({counts['vacuous']} vacuous), "
            f"{counts['failed']} false alarm(s)"
        )
    for line in STATS["caught"]:
        tr.write_line(f"  caught {line}")
