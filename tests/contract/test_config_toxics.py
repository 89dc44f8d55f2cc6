"""Toxics in a populate body or a ``--config`` file (Toxiproxy #79, #447).

A populate entry may carry ``"toxics": [{...}]``, each a toxic create body. They are decoded and
checked like ``POST /proxies/{p}/toxics`` before anything binds, so a bad toxic refuses the
whole populate (nothing is created) and names the entry; they are applied right after their
proxy is created. Toxiproxy ignores the key, so a file written for it works unchanged.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from faultlab.proxy.remote import RemoteToxiproxy
from tests.contract.conftest import RawClient, echo_through
from tests.contract.test_cli_proxy import run_proxy, start  # noqa: F401 (a fixture)

pytestmark = pytest.mark.timeout(60)


def _entry(name: str, echo: str, *toxics: dict[str, object]) -> dict[str, object]:
    return {"name": name, "listen": "127.0.0.1:0", "upstream": echo, "toxics": list(toxics)}


LATENCY = {"type": "latency", "name": "lag", "attributes": {"latency": 200}}


def test_populate_applies_each_entrys_toxics(raw: RawClient, echo: str) -> None:
    body = [
        _entry("slow", echo, LATENCY, {"type": "bandwidth", "stream": "upstream"}),
        _entry("plain", echo),
    ]
    reply = raw.request("POST", "/populate", body)
    assert reply.status == 201, reply.body
    slow, plain = reply.json["proxies"]
    assert [t["name"] for t in slow["toxics"]] == ["bandwidth_upstream", "lag"]
    assert slow["toxics"][1] == {
        "attributes": {"latency": 200, "jitter": 0},
        "name": "lag",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
    }
    assert plain["toxics"] == []
    raw.request("DELETE", "/proxies/slow/toxics/bandwidth_upstream")  # rate 0 stalls
    start = time.monotonic()
    assert echo_through(slow["listen"]) == b"ping"
    assert time.monotonic() - start >= 0.19


@pytest.mark.parametrize(
    ("toxics", "status", "fragment"),
    [
        ([{"type": "nope"}], 400, "invalid toxic type at proxy 2"),
        ([{"type": "latency", "stream": "sideways"}], 400, "stream was invalid"),
        (
            [{"type": "latency", "attributes": {"latency": "x"}}],
            400,
            "cannot unmarshal string into Go struct field LatencyToxic.attributes.latency",
        ),
        ([{"type": "latency", "toxicity": 1e39}], 400, "of type float32 at proxy 2"),
        ([LATENCY, LATENCY], 409, "toxic already exists at proxy 2"),
        ([{"type": "drop"}], 400, "acts on whole messages"),
        ([5], 400, "cannot unmarshal number into Go value of type toxics.ToxicWrapper"),
        ({"type": "latency"}, 400, "toxics must be an array of toxics, got object"),
    ],
)
def test_a_bad_toxic_refuses_the_whole_populate(
    raw: RawClient, echo: str, toxics: object, status: int, fragment: str
) -> None:
    body = [_entry("first", echo), {**_entry("second", echo), "toxics": toxics}]
    reply = raw.request("POST", "/populate", body)
    assert reply.status == status, reply.body
    assert fragment in reply.json["error"]
    assert reply.json["proxies"] is None
    assert raw.request("GET", "/proxies").json == {}  # nothing bound, nothing stored


def test_a_framed_entry_takes_frame_toxics(raw: RawClient, echo: str) -> None:
    entry = {**_entry("framed", echo, {"type": "drop", "stream": "upstream"}), "framing": "lines"}
    reply = raw.request("POST", "/populate", [entry])
    assert reply.status == 201, reply.body
    assert reply.json["proxies"][0]["toxics"][0]["type"] == "drop"


def test_populate_again_keeps_an_identical_entry_and_replaces_a_changed_one(
    raw: RawClient, echo: str
) -> None:
    body = [_entry("same", echo, LATENCY)]
    first = raw.request("POST", "/populate", body).json["proxies"][0]
    body[0]["listen"] = first["listen"]
    assert raw.request("POST", "/populate", body).json["proxies"][0] == first
    host, _, port = first["listen"].rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as kept:
        assert raw.request("POST", "/populate", body).status == 201
        kept.sendall(b"still")  # an identical entry keeps the proxy and its connections
        kept.settimeout(5)
        assert kept.recv(10) == b"still"
    body[0]["toxics"] = [{**LATENCY, "attributes": {"latency": 5}}]
    changed = raw.request("POST", "/populate", body).json["proxies"][0]
    assert changed["toxics"][0]["attributes"]["latency"] == 5
    body[0].pop("toxics")  # no key: the proxy keeps whatever toxics it has
    assert raw.request("POST", "/populate", body).json["proxies"][0] == changed


def test_config_file_toxics_through_faultlab_proxy(
    run_proxy: list[subprocess.Popen[str]],  # noqa: F811
    tmp_path: Path,
    echo: str,
) -> None:
    config = tmp_path / "toxiproxy.json"
    config.write_text(json.dumps([_entry("cfg", echo, LATENCY)]))
    _, url, _ = start(run_proxy, "-host=127.0.0.1", "-port=0", f"-config={config}")
    with RemoteToxiproxy(url, timeout=5) as client:
        proxy = client.proxy("cfg")
        assert [t["name"] for t in proxy.toxics()] == ["lag"]
        begun = time.monotonic()
        assert echo_through(proxy.listen) == b"ping"
        assert time.monotonic() - begun >= 0.19


def test_a_config_file_with_a_bad_toxic_creates_nothing(
    run_proxy: list[subprocess.Popen[str]],  # noqa: F811
    tmp_path: Path,
    echo: str,
) -> None:
    config = tmp_path / "toxiproxy.json"
    config.write_text(
        json.dumps([_entry("good", echo), _entry("bad", echo, {"type": "latency", "stream": "x"})])
    )
    proc, url, _ = start(run_proxy, "-host=127.0.0.1", "-port=0", f"-config={config}")
    with RemoteToxiproxy(url, timeout=5) as client:
        assert client.list_proxies() == []
    proc.terminate()
    _, err = proc.communicate(timeout=20)
    assert "stream was invalid" in err
    assert "at proxy 2" in err
