"""The toxic reference of docs/toxics.md, rendered from the toxics' own declarations.

Why a generator: the table must say what the code declares, so a test
compares the docs with this rendering, and ``python -m tests.unit.toxics.docs_table``
rewrites the docs after a declaration changes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from faultlab.toxics import Attr, get_toxic_class
from faultlab.toxics.base import BUILTIN_TOXICS

DOCS = Path(__file__).resolve().parents[3] / "docs" / "toxics.md"
START, END = "<!-- attributes:start -->", "<!-- attributes:end -->"
BUILTIN = BUILTIN_TOXICS
"""The built-in toxics, in the order of the docs (Toxiproxy's eight first)."""


def _value(value: Any) -> str:
    return f"`{value!r}`" if isinstance(value, str) else f"`{value}`"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _legal(attr: Attr) -> str:
    if attr.choices:
        return " \\| ".join(_value(c) for c in attr.choices)
    if attr.minimum is None and attr.maximum is None:
        return "any" if attr.kind is not bool else "`True` \\| `False`"
    low = "…" if attr.minimum is None else _number(attr.minimum)
    high = "…" if attr.maximum is None else _number(attr.maximum)
    return f"{low} … {high}"


def _drawn(name: str, attr: Attr) -> str:
    if name == "protocol":
        return "the strategy's `protocol`"
    values = attr.draw_values()
    if values:
        return ", ".join(_value(v) for v in values)
    bounds = attr.draw_range()
    if bounds is None:
        return "not drawn"
    text = f"{_number(bounds[0])} → {_number(bounds[1])}"
    if attr.also:
        text += ", then " + ", ".join(_value(v) for v in attr.also)
    return text


def _cell(text: str) -> str:
    """Free text in a table cell: pipes escaped, newlines as spaces."""
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """Every toxic with what it does, then one row per attribute: its meaning, legal
    values, and what tests draw (mildest first)."""
    rows = [
        "| toxic | what it does | whole frames only |",
        "|---|---|---|",
    ]
    for type_name in BUILTIN:
        cls = get_toxic_class(type_name)
        frames = "yes" if cls.needs_frames else "no"
        rows.append(f"| `{type_name}` | {_cell(cls.description)} | {frames} |")
    rows += [
        "",
        "| toxic | attribute | type | default | legal | drawn, mildest first | meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for type_name in BUILTIN:
        cls = get_toxic_class(type_name)
        if not cls.attributes_spec:
            rows.append(f"| `{type_name}` | (none) | | | | | |")
        for name, attr in cls.attributes_spec.items():
            rows.append(
                f"| `{type_name}` | `{name}` | {attr.kind.__name__} | {_value(attr.default)} "
                f"| {_legal(attr)} | {_drawn(name, attr)} | {_cell(attr.help)} |"
            )
    return "\n".join(rows)


def _span(text: str) -> re.Match[str]:
    match = re.search(re.escape(START) + r"\n(.*?)\n?" + re.escape(END), text, re.S)
    if match is None:
        raise AssertionError(f"{DOCS} has no {START} ... {END} section")
    return match


def section(text: str) -> str:
    """The table part of the docs (between the markers)."""
    return _span(text).group(1)


def write() -> None:
    text = DOCS.read_text()
    match = _span(text)
    DOCS.write_text(text[: match.start(1)] + render() + "\n" + text[match.end(1) :].lstrip("\n"))


if __name__ == "__main__":
    write()
    sys.stdout.write(f"rewrote the attribute table of {DOCS}\n")
