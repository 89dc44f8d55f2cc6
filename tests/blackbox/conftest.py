"""One FastAPI service (uvicorn, run as a faultlab.Command) behind one proxy per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.blackbox.harness import Env, make_env


@pytest.fixture(scope="session")
def env(faultlab_seed: int) -> Iterator[Env]:
    made = make_env(faultlab_seed)
    try:
        yield made
    finally:
        made.lab.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The caught/total table of the wrong clients, with each one's shrunk plan and replay."""
    from tests.blackbox.test_wrong_clients import CAUGHT, WRONG

    if CAUGHT:
        terminalreporter.write_sep(
            "-", f"black-box wrong clients: {len(CAUGHT)}/{len(WRONG)} caught"
        )
        for line in CAUGHT:
            terminalreporter.write_line(line)
