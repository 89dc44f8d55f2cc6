"""Every public ``__all__`` is exactly the names its module defines (httpx's
``test_exported_members`` is the model), and ``import faultlab`` stays cheap."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from types import ModuleType

import pytest

import faultlab
import faultlab.errors
import faultlab.streams
import faultlab.transports

PUBLIC_PRIVATE = {"__version__"}
"""Dunder names that are public all the same."""

PACKAGES = ["faultlab", "faultlab.proxy", "faultlab.lab", "faultlab.oracles", "faultlab.strategies"]


def defined_names(module: ModuleType) -> set[str]:
    """Public names the module's own source binds at top level (imports, assignments,
    definitions), plus its lazy ones; ``if TYPE_CHECKING:`` blocks bind nothing at run time."""
    tree = ast.parse(inspect.getsource(module))
    names: set[str] = set()

    def bind(node: ast.stmt) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                return
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.If) and not _is_type_checking(node.test):
            for child in (*node.body, *node.orelse):
                bind(child)
        elif isinstance(node, ast.Try):
            for child in (*node.body, *(s for h in node.handlers for s in h.body)):
                bind(child)

    for node in tree.body:
        bind(node)
    names.update(getattr(module, "_LAZY", {}))
    return {n for n in names if not n.startswith("_") or n in PUBLIC_PRIVATE}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == defined_names(module)


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves(name: str) -> None:
    module = importlib.import_module(name)
    for member in module.__all__:
        assert getattr(module, member) is not None, f"{name}.{member}"


def test_the_public_api_architecture_names() -> None:
    from faultlab.lab import Lab
    from faultlab.rpc.server import serve

    assert faultlab.Lab is Lab
    assert faultlab.serve is serve
    assert faultlab.oracles is importlib.import_module("faultlab.oracles")
    assert faultlab.strategies is importlib.import_module("faultlab.strategies")
    assert {"Lab", "serve", "oracles", "strategies"} <= set(dir(faultlab))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = faultlab.nope  # type: ignore[attr-defined]


def test_the_black_box_service_names() -> None:
    """``faultlab.Command``, ``faultlab.Address``, ``faultlab.Image`` and the
    ``faultlab.ready`` module are the lab's."""
    import faultlab.lab
    from faultlab.lab import readiness, services

    assert faultlab.Command is services.Command is faultlab.lab.Command
    assert faultlab.Address is services.Address is faultlab.lab.Address
    assert faultlab.Image is services.Image is faultlab.lab.Image
    assert faultlab.ready is readiness is faultlab.lab.ready
    assert {"Command", "Address", "Image", "ready"} <= set(dir(faultlab))
    assert "Image" in faultlab.__all__
    assert "Image" in faultlab.lab.__all__


def test_import_faultlab_stays_cheap() -> None:
    """Lab, serve, oracles and strategies are lazy: Hypothesis and the lab wait for use."""
    code = (
        "import sys, faultlab; "
        "print(sorted(m for m in ('hypothesis', 'faultlab.lab', 'faultlab.oracles', "
        "'faultlab.strategies', 'faultlab.rpc.server', 'faultlab.lab.services', "
        "'faultlab.lab.readiness') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_all_lists_exist_without_repeats() -> None:
    for module in (faultlab, faultlab.errors, faultlab.streams, faultlab.transports):
        names = module.__all__
        assert len(names) == len(set(names)), f"{module.__name__}.__all__ repeats a name"
        for name in names:
            assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name}"


def test_errors_have_one_root() -> None:
    for name in faultlab.errors.__all__:
        assert issubclass(getattr(faultlab.errors, name), faultlab.errors.FaultlabError)
