from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_plugin_loads_and_registers_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok(): pass")
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*--faultlab-seed*"])
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.faultlab(transports=None*"])
