"""The journal is the floor: one place defines kinds and reads files; oracles stand on it alone."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import faultlab
from faultlab.journal import schema
from faultlab.lab import events

PACKAGE = Path(faultlab.__file__).parent
KIND_NAMES = {
    name for name in schema.__all__ if isinstance(getattr(schema, name), str) and name != "SCHEMA"
}


def _modules(under: Path) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def test_every_kind_is_in_the_documented_table() -> None:
    assert {getattr(schema, n) for n in KIND_NAMES} == set(schema.KINDS)
    assert schema.SCHEMA == "faultlab.journal/1"


def test_lab_events_reexports_the_schema_kinds() -> None:
    for name in events.__all__:
        assert getattr(events, name) == getattr(schema, name)


def test_no_module_outside_the_journal_defines_a_kind_constant() -> None:
    """``CALL_START = "call_start"`` and its siblings exist once (re-exports import them)."""
    kinds = {getattr(schema, n): n for n in KIND_NAMES}
    offenders = []
    for path in _modules(PACKAGE):
        if PACKAGE / "journal" in path.parents:
            continue
        for node in ast.parse(path.read_text()).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                and any(
                    isinstance(t, ast.Name) and t.id == kinds.get(str(node.value.value))
                    for t in node.targets
                )
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize("layer", ["oracles"])
def test_oracles_import_neither_lab_nor_reports(layer: str) -> None:
    bad = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in _modules(PACKAGE / layer)
        for name in _imports(path)
        if name.startswith(("faultlab.lab", "faultlab.reports"))
    }
    assert bad == set()


def test_the_journal_imports_only_the_floor_and_the_stdlib() -> None:
    allowed = ("faultlab.journal", "faultlab.errors", "faultlab._seed")
    bad = {
        f"{path.name}: {name}"
        for path in _modules(PACKAGE / "journal")
        for name in _imports(path)
        if name.startswith("faultlab") and not name.startswith(allowed)
    }
    assert bad == set()


def test_only_the_journal_reads_journal_files() -> None:
    """The format (its version string, load/validate/merge) is known in one module."""
    readers = {"load_journal", "validate", "merge_journals", "dump_journal", "write_journal"}
    found = set()
    for path in _modules(PACKAGE):
        text = path.read_text()
        where = str(path.relative_to(PACKAGE))
        if '"faultlab.journal/' in text:
            found.add(where)
        for node in ast.parse(text).body:  # module-level: toxics have a validate() method
            if isinstance(node, ast.FunctionDef) and node.name in readers:
                found.add(where)
    assert found == {"journal/fileformat.py", "journal/schema.py"}
