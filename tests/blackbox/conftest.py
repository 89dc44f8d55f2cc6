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
