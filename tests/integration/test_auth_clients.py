"""Unmodified ``httpx`` and ``requests`` token-refresh clients against a real service behind
the proxy, judged by ``check_auth`` from the wire.

The service (``tests/integration/auth_service.py``) runs as a ``faultlab.Command`` and
issues bearer tokens at ``POST /token``; the proxy's ``auth_error`` rejects the tokens the
scenario says. The clients are written the way their users write them: httpx's documented
``Auth.auth_flow`` refresh, a ``requests`` response hook; the storms retry on 401 with the
same token, or refresh on every 401 without bound. Every client fetches its token through
the proxy, so the token requests are on the wire too (and are not retries of the call).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
import requests

import faultlab
from faultlab.lab import Lab, Pair
from faultlab.oracles import AuthPolicy, check_auth
from faultlab.oracles.auth import A1, A2, A4

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 5.0
STORM = 5
"""How many times the storm clients send a call that keeps getting 401."""
CLEAR_TEXT_OK = AuthPolicy(require_tls=False)
"""The proxy here is plain TCP: A4 is judged on its own (test_bearer_tokens_in_clear...)."""


# ---- the clients -----------------------------------------------------------------------------
class Client(Protocol):
    def get_item(self, n: int) -> Any: ...

    def close(self) -> None: ...


class RefreshingAuth(httpx.Auth):
    """httpx's documented custom-auth pattern: on a 401, refresh the token, re-send once."""

    requires_response_body = True

    def __init__(self, token_url: str) -> None:
        self.token_url = token_url
        self.token: str | None = None

    def build_refresh_request(self) -> httpx.Request:
        return httpx.Request("POST", self.token_url, json={"client_id": "tests"})

    def update_tokens(self, response: httpx.Response) -> None:
        self.token = response.json()["access_token"]

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.token is None:
            self.update_tokens((yield self.build_refresh_request()))
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401:
            refresh_response = yield self.build_refresh_request()
            self.update_tokens(refresh_response)
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


class RefreshEveryTime(RefreshingAuth):
    """The refresh storm: a new token on every 401, again and again."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.token is None:
            self.update_tokens((yield self.build_refresh_request()))
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        for _ in range(STORM - 1):
            if response.status_code != 401:
                return
            self.update_tokens((yield self.build_refresh_request()))
            request.headers["Authorization"] = f"Bearer {self.token}"
            response = yield request


class HttpxClient:
    def __init__(self, base: str, auth: RefreshingAuth) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, auth=auth, timeout=TIMEOUT)

    def get_item(self, n: int) -> Any:
        response = self.http.get(f"/items/{n}")
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self.http.close()


class RequestsHookClient:
    """A ``requests`` session whose response hook refreshes the token on a 401 and re-sends
    the request once (the usual recipe)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.refresh()
        self.session.hooks["response"].append(self._on_response)

    def refresh(self) -> None:
        reply = self.session.post(
            f"{self.base}/token", json={"client_id": "tests"}, timeout=TIMEOUT
        )
        reply.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> Any:
        request = response.request
        if response.status_code != 401 or getattr(request, "refreshed", False):
            return response
        self.refresh()
        retry = request.copy()
        retry.headers["Authorization"] = self.session.headers["Authorization"]
        retry.refreshed = True  # type: ignore[attr-defined]
        return self.session.send(retry, **kwargs)

    def get_item(self, n: int) -> Any:
        response = self.session.get(f"{self.base}/items/{n}", timeout=TIMEOUT)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self.session.close()


class SameTokenStorm:
    """The retry storm: a loop that re-sends on 401 with the token it has."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        token = self.session.post(f"{base}/token", json={}, timeout=TIMEOUT).json()
        self.session.headers["Authorization"] = f"Bearer {token['access_token']}"

    def get_item(self, n: int) -> Any:
        for _ in range(STORM):
            response = self.session.get(f"{self.base}/items/{n}", timeout=TIMEOUT)
            if response.status_code != 401:
                break
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self.session.close()


CORRECT: dict[str, Callable[[str], Client]] = {
    "httpx-auth-flow": lambda base: HttpxClient(base, RefreshingAuth(f"{base}/token")),
    "requests-hook": RequestsHookClient,
}
STORMS: dict[str, tuple[Callable[[str], Client], str]] = {
    "httpx-refresh-storm": (lambda base: HttpxClient(base, RefreshEveryTime(f"{base}/token")), A1),
    "requests-same-token": (SameTokenStorm, A2),
}

# ---- scenarios: what the server (the proxy) rejects --------------------------------------------
REVOKED_ONCE = {"nth": 2, "scope": "proxy"}
"""The second items request is rejected and its token revoked; a refreshed token works."""
ALWAYS = {"every": 1}
"""Every token is rejected: a correct client refreshes once, retries once, and gives up."""


# ---- the service and the run -------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair(faultlab_seed: int) -> Iterator[Pair]:
    argv = [sys.executable, "-m", "tests.integration.auth_service"]
    service = faultlab.Command(
        [*argv, "--host", "{host}", "--port", "{port}"],
        cwd=str(REPO),
        ready=faultlab.ready.http(path="/health", status=200),
    )
    lab = Lab(seed=faultlab_seed)
    try:
        yield lab.pair(service, protocol="http")
    finally:
        lab.close()


def run(
    pair: Pair, make: Callable[[str], Client], rejects: dict[str, Any]
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Three logical calls (get item 1, 2, 3) under ``auth_error`` on ``/items/*``: what
    each returned (or the error's type) and the journal excerpt."""
    pair.clear_faults()
    since = pair.journal.record("mark", proxy=pair.name)["seq"]
    pair.proxy.add_toxic("auth_error", stream="upstream", match_path="/items/*", **rejects)
    client = make(pair.url)
    got: list[Any] = []
    try:
        for n in (1, 2, 3):
            try:
                with pair.logical_call(f"get {n}", method="GET /items") as record:
                    record.value = client.get_item(n)
                got.append(record.value)
            except (httpx.HTTPError, requests.RequestException) as exc:
                got.append(type(exc).__name__)
    finally:
        client.close()
        pair.clear_faults()
    return got, pair.events(since=since)


def _rejections(events: list[dict[str, Any]]) -> int:
    return sum(1 for e in events if e["kind"] == "fault" and e.get("decision") == "auth_error")


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_a_refresh_client_recovers_from_a_revoked_token(pair: Pair, name: str) -> None:
    got, events = run(pair, CORRECT[name], REVOKED_ONCE)
    assert got == [{"id": "1"}, {"id": "2"}, {"id": "3"}]
    assert _rejections(events) == 1
    verdict = check_auth(events, CLEAR_TEXT_OK)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous
    assert "1 rejection(s), 1 retried" in verdict.message


@pytest.mark.parametrize("name", sorted(CORRECT))
def test_a_refresh_client_gives_up_when_every_token_is_rejected(pair: Pair, name: str) -> None:
    got, events = run(pair, CORRECT[name], ALWAYS)
    assert got == ["HTTPStatusError" if name.startswith("httpx") else "HTTPError"] * 3
    assert _rejections(events) == 6  # each call: the token it held, then one refreshed token
    verdict = check_auth(events, CLEAR_TEXT_OK)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous


@pytest.mark.parametrize("name", sorted(STORMS))
def test_a_storm_client_is_caught(pair: Pair, name: str) -> None:
    make, expected = STORMS[name]
    got, events = run(pair, make, ALWAYS)
    assert all(isinstance(g, str) for g in got)  # every call failed
    assert _rejections(events) == 3 * STORM
    verdict = check_auth(events, CLEAR_TEXT_OK)
    assert not verdict.passed
    assert verdict.property == expected, verdict.report()
    assert verdict.message.startswith("call ")
    assert "GET /items/1" in verdict.message


def test_a_same_token_storm_is_caught_even_when_a_refresh_would_have_worked(pair: Pair) -> None:
    got, events = run(pair, SameTokenStorm, REVOKED_ONCE)
    assert got[0] == {"id": "1"}
    verdict = check_auth(events, CLEAR_TEXT_OK)
    assert verdict.property == A2, verdict.report()
    assert "(get 2): GET /items/2 (connection" in verdict.message


def test_bearer_tokens_in_clear_text_are_flagged(pair: Pair) -> None:
    """The eavesdropping check: the same correct client, over a proxy without TLS."""
    tokens: list[str] = []

    class Recording(RefreshingAuth):
        def update_tokens(self, response: httpx.Response) -> None:
            super().update_tokens(response)
            tokens.append(str(self.token))

    _, events = run(pair, lambda base: HttpxClient(base, Recording(f"{base}/token")), REVOKED_ONCE)
    verdict = check_auth(events)  # the default policy requires TLS
    assert verdict.property == A4
    assert "crossed the link in clear text" in verdict.message
    assert "with a Bearer credential" in verdict.message
    assert "anyone on the link can read and replay it" in verdict.message
    clear = [e for e in verdict.evidence if e["kind"] == "wire_request"]
    assert len(clear) == 4  # items 1, 2 (rejected), 2 again, 3: all with a token
    assert all(e["credential"] and "tls" not in e for e in clear)
    token_requests = [e for e in events if e["kind"] == "wire_request" and e["target"] == "/token"]
    assert len(token_requests) == 2
    assert all("credential" not in e for e in token_requests)  # they carry none: not flagged
    assert len(tokens) == 2
    text = verdict.report() + repr(events)
    assert not any(token in text for token in tokens)  # never journaled, never reported


# ---- the same client inside TLS: A4 holds ------------------------------------------------------
@pytest.fixture
def https_service() -> Iterator[str]:
    """The auth service's handler behind ``ssl`` (the lab's test CA), in a thread."""
    import ssl
    import threading

    from faultlab.transports import tls as tls_transport
    from tests.integration.auth_service import Handler

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(tls_transport.test_ca_files()[1]))

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> tuple[Any, Any]:
            sock, addr = self.socket.accept()
            sock.settimeout(TIMEOUT)
            return ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(TIMEOUT)


def test_inside_an_intercepting_tls_proxy_the_refresh_client_passes_a4(https_service: str) -> None:
    """auth_error acts on requests read inside TLS, each journaled with ``tls: true``: the
    correct client passes every property under the default policy (TLS required)."""
    import ssl

    from faultlab.journal import Journal
    from faultlab.proxy import ProxyEngine
    from faultlab.transports import tls as tls_transport
    from tests.integration.toxic_helpers import settle

    with ProxyEngine(journal=Journal(), seed=7) as engine:
        proxy = engine.create(
            "api", upstream=https_service, framing="http", tls={"mode": "intercept"}
        )
        proxy.add_toxic("auth_error", stream="upstream", match_path="/items/*", nth=2)
        base = f"https://localhost:{proxy.listen.rsplit(':', 1)[1]}"
        trust = ssl.create_default_context(cafile=str(tls_transport.test_ca_files()[0]))
        auth = RefreshingAuth(f"{base}/token")
        with httpx.Client(base_url=base, auth=auth, verify=trust, timeout=TIMEOUT) as http:
            got = [http.get(f"/items/{n}").json() for n in (1, 2, 3)]
        settle(engine)
        events = engine.journal.events()
    assert got == [{"id": "1"}, {"id": "2"}, {"id": "3"}]
    carried = [e for e in events if e["kind"] == "wire_request" and e.get("credential")]
    assert len(carried) == 4  # items 1, 2 (rejected), 2 again, 3
    assert all(e.get("tls") is True for e in carried)
    verdict = check_auth(events)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous
    checks = {c.property: c for c in verdict.checks}
    assert not checks[A4].vacuous
    assert "all in TLS" in checks[A4].message
