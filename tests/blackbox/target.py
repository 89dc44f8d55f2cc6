"""The FastAPI service as a suite target, given only as a Command (no Python class restating
it), with its user's client (``requests`` + urllib3's ``Retry``) and declared policies::

    pytest --pyargs faultlab.suites --faultlab-target tests.blackbox.target:fastapi
"""

from __future__ import annotations

from typing import Any

import httpx
import requests

from faultlab.suites.target import Probe, Target
from tests.blackbox.clients import Client, requests_client
from tests.blackbox.harness import fastapi_command


class _Bound:
    """The user's client bound to one base URL (through the proxy, or straight)."""

    def __init__(self, client: Client, base: str) -> None:
        self.client = client
        self.base = base


def _connect(base: str) -> _Bound:
    return _Bound(requests_client(), base)


def _call(bound: _Bound, probe: Probe) -> Any:
    if probe.method == "GET /items":
        return bound.client.get_item(bound.base, *probe.args)
    if probe.method == "POST /orders":
        return bound.client.create_order(bound.base, *probe.args)
    raise ValueError(f"unknown probe {probe.method}")


def _transient(exc: BaseException) -> bool:
    """What a fault may make this client raise (its GETs fall back instead)."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code >= 500
    return isinstance(exc, requests.ConnectionError | requests.Timeout | requests.RequestException)


def _effects(server_url: str) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = httpx.get(f"{server_url}/orders", timeout=5).json()
    return [{"key": o.get("key"), "method": "POST /orders"} for o in orders]


def fastapi() -> Target:
    return Target(
        name="fastapi-on-uvicorn",
        service=fastapi_command(),
        protocols=("http",),
        transports=("tcp",),
        probes=(
            Probe("GET /items", (1,), expected={"id": 1, "name": "item-1"}),
            Probe("GET /items", (2,), expected={"id": 2, "name": "item-2"}),
            Probe("POST /orders", (7,), idempotent=False, check_result=False),
        ),
        connect=_connect,
        call=_call,
        policies=requests_client().policies,
        transient=_transient,
        effects=_effects,
        codecs=(),
        roundtrip_method=None,
        effects_method=None,
    )
