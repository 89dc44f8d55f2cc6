"""faultlab's pytest plugin (entry point ``pytest11: faultlab``).

Thin wiring only: everything it exposes works from plain Python. The options,
markers and fixtures of the provisioning layer arrive with ``faultlab.lab``.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faultlab", "faultlab resilience testing")
    group.addoption(
        "--faultlab-seed",
        dest="faultlab_seed",
        default=None,
        help="session seed for every random fault decision (default: random, printed)",
    )
    parser.addini("faultlab_seed", "default for --faultlab-seed", default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "faultlab(transports=None, protocols=None, faults=None): run a test over the "
        "transport x protocol x fault matrix",
    )
