"""JUnit XML with faultlab's properties on every test case, for CI dashboards.

pytest's own ``--junitxml`` already carries ``faultlab_seed``/``faultlab_transport``/...
(recorded by the plugin); this file is rendered from the journal instead, so it also has the
status the matrix shows (vacuous, not triggered), the verdicts, the plan and the replay line,
and it can be produced after the fact from journal files alone.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from faultlab.reports.model import FAILED, SKIPPED, RunModel, TestCase

__all__ = ["case_properties", "render_junit", "write_junit"]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def case_properties(case: TestCase) -> list[tuple[str, str]]:
    """The ``<property>`` name/value pairs of one test case, in a fixed order."""
    props = [
        ("faultlab_seed", str(case.seed)),
        ("faultlab_transport", case.transport),
        ("faultlab_protocol", case.protocol),
        ("faultlab_fault", _json(case.fault)),
        ("faultlab_fault_label", case.fault_label),
        ("faultlab_status", case.status),
        ("faultlab_triggered", "true" if case.triggered else "false"),
        ("faultlab_verdicts", case.verdict_summary()),
        ("faultlab_calls", case.call_summary()),
        ("faultlab_plan", _json(case.plan)),
        ("faultlab_replay", case.replay),
    ]
    if case.backend:
        props.append(("faultlab_backend", case.backend))
    for v in case.verdicts:
        result = "failed" if not v.passed else "vacuous" if v.vacuous else "passed"
        props.append((f"faultlab_verdict.{v.oracle}.{v.property}", result))
    return props


def _split(nodeid: str) -> tuple[str, str]:
    """pytest's junit convention: classname is the dotted path, name the rest."""
    path, sep, name = nodeid.partition("::")
    if not sep:
        return "faultlab", nodeid
    module = path.removesuffix(".py").replace("/", ".").replace("\\", ".")
    if "::" in name:
        cls, _, name = name.rpartition("::")
        module = f"{module}.{cls.replace('::', '.')}"
    return module, name


def render_junit(model: RunModel) -> str:
    """The XML document (deterministic: attribute and property order are fixed)."""
    cases = model.cases
    failures = sum(c.status == FAILED for c in cases)
    skipped = sum(c.status == SKIPPED for c in cases)
    root = ET.Element("testsuites")
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": "faultlab",
            "tests": str(len(cases)),
            "failures": str(failures),
            "errors": "0",
            "skipped": str(skipped),
            "time": f"{sum(c.duration for c in cases):.3f}",
        },
    )
    props = ET.SubElement(suite, "properties")
    run_props = [("faultlab_run_id", model.run_id), ("faultlab_seed", str(model.seed))]
    run_props += [(f"faultlab_env.{k}", v) for k, v in sorted(model.environment.items())]
    run_props += [
        (f"faultlab_count.{k.replace(' ', '_')}", str(v)) for k, v in model.counts.items()
    ]
    for name, value in run_props:
        ET.SubElement(props, "property", {"name": name, "value": value})
    for case in cases:
        classname, name = _split(case.nodeid)
        element = ET.SubElement(
            suite,
            "testcase",
            {"classname": classname, "name": name, "time": f"{case.duration:.3f}"},
        )
        case_props = ET.SubElement(element, "properties")
        for pname, value in case_properties(case):
            ET.SubElement(case_props, "property", {"name": pname, "value": value})
        if case.status == FAILED:
            failure = ET.SubElement(element, "failure", {"message": case.reason[:500]})
            failure.text = f"{case.message}\n\nreplay: {case.replay}".strip()
        elif case.status == SKIPPED:
            ET.SubElement(element, "skipped", {"message": case.message[:500] or "skipped"})
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(model: RunModel, path: str | os.PathLike[str]) -> Path:
    """Write the JUnit XML file (parents created); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_junit(model), encoding="utf-8")
    return target
