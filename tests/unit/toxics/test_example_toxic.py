"""The docs' example toxic: verbatim in docs/toxics.md, and working once its module is imported.

Adding a toxic is one module: these tests import ``truncate_toxic`` and use
nothing else to make the proxy, the catalogue and the strategies know it.
"""

from __future__ import annotations

import importlib
import re
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import find, given, settings

from faultlab.proxy.api import toxic_catalogue
from faultlab.proxy.engine import ProxyEngine, ProxyHandle
from faultlab.proxy.proxy import ProxyError
from faultlab.strategies import FaultPlan, ToxicSpec, fault_plans, minimize, toxics
from faultlab.toxics import Toxic, register_toxic, toxic_types
from faultlab.toxics.base import _registry
from tests.integration.toxic_helpers import EchoServer, connect, recv_exactly
from tests.unit.toxics import docs_table

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "faultlab" / "examples" / "truncate_toxic.py"
QUIET = settings(database=None, max_examples=200, deadline=None, derandomize=True)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def truncate() -> Iterator[type[Toxic]]:
    """The example registered for one test, then removed so other tests never draw it."""
    assert "truncate" not in toxic_types()
    module = importlib.import_module("faultlab.examples.truncate_toxic")
    cls: type[Toxic] = module.Truncate
    register_toxic(cls)  # importing registers it; again here after an earlier removal
    try:
        yield cls
    finally:
        _registry._items.pop("truncate", None)


@pytest.fixture
def framed(truncate: type[Toxic]) -> Iterator[ProxyHandle]:
    """A length-prefix proxy in front of a real echo server, on real sockets."""
    with EchoServer() as echo, ProxyEngine(seed=7) as engine:
        yield engine.create("framed", upstream=echo.upstream, framing="length-prefix")


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def read_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">I", recv_exactly(sock, 4))
    return recv_exactly(sock, size)


def test_the_docs_show_the_module_verbatim() -> None:
    docs = docs_table.DOCS.read_text()
    marker = "<!-- example: faultlab/examples/truncate_toxic.py -->\n```python\n"
    match = re.search(re.escape(marker) + r"(.*?)^```$", docs, re.S | re.M)
    assert match is not None, "docs/toxics.md lost the example block"
    assert match.group(1) == EXAMPLE.read_text()


def test_the_attribute_table_in_the_docs_is_current() -> None:
    assert docs_table.section(docs_table.DOCS.read_text()) == docs_table.render(), (
        "run: python -m tests.unit.toxics.docs_table"
    )


def test_it_cuts_frames_through_a_real_proxy(framed: ProxyHandle) -> None:
    framed.add_toxic("truncate", stream="downstream", keep=5)
    with connect(framed.listen) as sock:
        sock.sendall(frame(b"hello world"))
        assert read_frame(sock) == b"hello"  # re-framed: a whole, shorter message
        sock.sendall(frame(b"hi"))
        assert read_frame(sock) == b"hi"  # already short enough: untouched
    cuts = [e for e in framed.events(kinds=["fault"]) if e.get("decision") == "truncate"]
    assert [(e["kept"], e["size"]) for e in cuts] == [(5, 11)]


def test_probability_zero_passes_everything(framed: ProxyHandle) -> None:
    framed.add_toxic("truncate", keep=1, probability=0.0)
    with connect(framed.listen) as sock:
        for payload in (b"abc", b"defgh"):
            sock.sendall(frame(payload))
            assert read_frame(sock) == payload


def test_its_attributes_are_validated_and_unknown_ones_refused(framed: ProxyHandle) -> None:
    with pytest.raises(ProxyError, match="'keep' must be >= 0"):
        framed.add_toxic("truncate", keep=-1)
    with pytest.raises(ProxyError) as raised:
        framed.add_toxic("truncate", keep=5, n=1)
    assert str(raised.value) == "truncate: unknown attribute 'n'; known: keep, probability"
    assert framed.toxics() == []


def test_the_catalogue_lists_it(truncate: type[Toxic]) -> None:
    entry = toxic_catalogue()["truncate"]
    assert entry["standard"] is False
    assert entry["unknown_attributes"] == "refused"
    assert entry["mildest"] == {"keep": 1024, "probability": 0.0}
    assert entry["attributes"]["keep"]["drawn"]["range"] == [1024, 0]


def test_a_plan_with_it_shrinks_to_its_mildest(truncate: type[Toxic]) -> None:
    plans = fault_plans(max_faults=2, allow=["truncate", "latency"])
    plan = find(plans, lambda p: any(s.toxic == "truncate" for s in p), settings=QUIET)
    assert [(s.toxic, dict(s.attributes)) for s in plan] == [("truncate", truncate.mildest())]
    assert truncate.mildest() == {"keep": 1024, "probability": 0.0}
    needs_a_cut = lambda p: any(s.attributes.get("keep", 9999) <= 600 for s in p)  # noqa: E731
    harsher: FaultPlan = minimize(find(plans, needs_a_cut, settings=QUIET), needs_a_cut)
    assert [dict(s.attributes) for s in harsher] == [{"keep": 600, "probability": 0.0}]


def test_what_the_strategies_draw_a_real_proxy_accepts(
    truncate: type[Toxic], framed: ProxyHandle
) -> None:
    seen: list[int] = []

    @settings(database=None, max_examples=30, deadline=None)
    @given(toxics(allow=["truncate"]))
    def accepted(spec: ToxicSpec) -> None:
        assert 0 <= spec.attributes["keep"] <= 1024
        seen.append(spec.attributes["keep"])
        spec.add_to(framed, name="t")
        framed.remove_toxic("t")

    accepted()
    assert len(set(seen)) > 1
