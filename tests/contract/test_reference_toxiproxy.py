"""The reference toxiproxy-server helper: it starts, answers, and leaves no process."""

from __future__ import annotations

import json
import os
import urllib.request

from faultlab.proxy.reference import RealToxiproxy


def test_real_toxiproxy_answers_version_and_is_gone_after_close(
    real_toxiproxy: RealToxiproxy,
) -> None:
    with urllib.request.urlopen(real_toxiproxy.url + "/version", timeout=5) as response:
        body = json.loads(response.read())
    assert body["version"].startswith("2.")
    pid = real_toxiproxy.pid
    real_toxiproxy.close()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    raise AssertionError(f"toxiproxy-server {pid} still alive after close")
