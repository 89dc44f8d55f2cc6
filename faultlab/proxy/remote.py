"""Drive any Toxiproxy server (the real one, or ``faultlab proxy``) with the engine's API.

:class:`RemoteToxiproxy` mirrors :class:`~faultlab.proxy.engine.ProxyEngine`
and :class:`RemoteProxy` mirrors :class:`~faultlab.proxy.engine.ProxyHandle`,
so a test written against faultlab's embedded engine runs unchanged against a
``toxiproxy-server`` a team already has. Standard library only: one keep-alive
``http.client`` connection per client (reconnected when the server drops it),
a timeout on every request, and typed errors whose ``status`` is the HTTP
status (each also subclasses the engine's own, :class:`~faultlab.proxy.proxy.ProxyNotFound`
and so on, so code that catches the engine's errors catches these too).

A plain Toxiproxy knows only its eight toxics and has no journal: use
:meth:`RemoteToxiproxy.supports` / :meth:`~RemoteToxiproxy.unsupported_reason`
to skip cleanly, and expect :class:`NotSupportedByServer` from ``events()``.
"""

from __future__ import annotations

import http.client
import json
import threading
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from faultlab import __version__
from faultlab.errors import FaultlabError
from faultlab.proxy.api import EXTENSION_PREFIX, STANDARD_TOXICS
from faultlab.proxy.proxy import (
    InvalidProxyRequest,
    ListenFailed,
    ProxyError,
    ProxyExists,
    ProxyNotFound,
    to_uri,
)

__all__ = [
    "NotSupportedByServer",
    "RemoteProxy",
    "RemoteToxiproxy",
    "ToxiproxyApiError",
    "ToxiproxyBadRequest",
    "ToxiproxyConflict",
    "ToxiproxyListenFailed",
    "ToxiproxyNotFound",
    "ToxiproxyServerError",
    "ToxiproxyUnavailable",
]

DEFAULT_TIMEOUT = 10.0


class ToxiproxyApiError(ProxyError):
    """The server answered with an error status; ``message`` is its ``error`` text.

    The subclasses are also the engine's typed errors (``ToxiproxyNotFound`` is a
    :class:`ProxyNotFound`...), so ``except ProxyNotFound`` works with either backend.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.message = message
        self._status = status

    @property
    def status(self) -> int:
        """The HTTP status the server answered with."""
        return self._status

    def __str__(self) -> str:
        return f"HTTP {self.status}: {self.message}"

    @staticmethod
    def from_status(status: int, message: str) -> ToxiproxyApiError:
        cls = {400: ToxiproxyBadRequest, 404: ToxiproxyNotFound, 409: ToxiproxyConflict}.get(
            status, ToxiproxyServerError if status >= 500 else ToxiproxyApiError
        )
        if status == 500 and message.startswith("listen "):  # Toxiproxy's bind failures
            cls = ToxiproxyListenFailed
        return cls(status, message)


class ToxiproxyBadRequest(ToxiproxyApiError, InvalidProxyRequest):
    """400: bad body, missing field, invalid toxic type, stream or attribute."""


class ToxiproxyNotFound(ToxiproxyApiError, ProxyNotFound):
    """404: no such proxy or toxic."""


class ToxiproxyConflict(ToxiproxyApiError, ProxyExists):
    """409: a proxy or toxic of that name already exists."""


class ToxiproxyServerError(ToxiproxyApiError):
    """5xx: bind failures (port in use) and handler timeouts."""


class ToxiproxyListenFailed(ToxiproxyServerError, ListenFailed):
    """500 ``listen ...``: the server could not bind the proxy's address."""


class ToxiproxyUnavailable(FaultlabError):
    """No answer: connection refused, reset, or the request timed out."""


class NotSupportedByServer(FaultlabError):
    """A faultlab extension (journal, faultlab-only toxics) used against a plain Toxiproxy."""


def _jsonable(value: Any) -> Any:
    """Exact-integer floats go out as integers: real Toxiproxy rejects ``100.0`` for an int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class RemoteToxiproxy:
    """A Toxiproxy server at ``url``, used like a :class:`ProxyEngine`."""

    def __init__(self, url: str = "http://127.0.0.1:8474", *, timeout: float = DEFAULT_TIMEOUT):
        split = urlsplit(url if "://" in url else f"http://{url}")
        if split.scheme not in ("http", "https") or not split.hostname:
            raise ValueError(f"not a Toxiproxy API URL: {url!r}")
        self.url = f"{split.scheme}://{split.netloc}{split.path.rstrip('/')}"
        self.timeout = timeout
        self._scheme = split.scheme
        self._host = split.hostname
        self._port = split.port or (443 if split.scheme == "https" else 80)
        self._prefix = split.path.rstrip("/")
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._faultlab: bool | None = None
        self._catalogue: dict[str, Any] | None = None

    # ---- transport -------------------------------------------------------------
    def _connect(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """One request; returns ``(status, body)``. Raises only :class:`ToxiproxyUnavailable`.

        A request on a reused keep-alive connection that the server had already
        closed is retried once on a fresh one (the server never saw it).
        """
        payload = None if body is None else json.dumps(body).encode()
        headers = {"User-Agent": f"faultlab/{__version__}", "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        with self._lock:
            for attempt in (0, 1):
                reused = self._conn is not None
                if self._conn is None:
                    self._conn = self._connect()
                conn = self._conn
                try:
                    conn.request(method, self._prefix + path, payload, headers)
                    response = conn.getresponse()
                    data = response.read()
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    self._drop()
                    if reused and attempt == 0:
                        continue
                    raise ToxiproxyUnavailable(
                        f"{method} {self.url}{path}: connection closed by the server"
                    ) from None
                except TimeoutError:
                    self._drop()
                    raise ToxiproxyUnavailable(
                        f"{method} {self.url}{path}: no answer within {self.timeout:g} s"
                    ) from None
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    raise ToxiproxyUnavailable(f"{method} {self.url}{path}: {exc}") from None
                if response.will_close:
                    self._drop()
                return response.status, data
        raise AssertionError("unreachable")  # pragma: no cover

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """A request whose error statuses raise :class:`ToxiproxyApiError` subclasses."""
        status, data = self.request(method, path, body)
        if status >= 400:
            raise ToxiproxyApiError.from_status(status, _error_message(status, data))
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode("utf-8", "replace")

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> RemoteToxiproxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- proxies (ProxyEngine's API) ------------------------------------------------
    def create(
        self,
        name: str,
        *,
        listen: str = "127.0.0.1:0",
        upstream: str,
        enabled: bool = True,
    ) -> RemoteProxy:
        self.call(
            "POST",
            "/proxies",
            {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled},
        )
        return RemoteProxy(self, name)

    def proxy(self, name: str) -> RemoteProxy:
        """A handle on an existing proxy (:class:`ToxiproxyNotFound` if there is none)."""
        self.call("GET", f"/proxies/{_seg(name)}")
        return RemoteProxy(self, name)

    def proxies(self) -> dict[str, dict[str, Any]]:
        """Every proxy's JSON, by name."""
        result: dict[str, dict[str, Any]] = self.call("GET", "/proxies")
        return result

    def list_proxies(self) -> list[str]:
        return sorted(self.proxies())

    def delete(self, name: str) -> None:
        self.call("DELETE", f"/proxies/{_seg(name)}")

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self.call("POST", "/reset")

    def populate(self, proxies: list[dict[str, Any]]) -> list[RemoteProxy]:
        """``POST /populate``: identical proxies are kept, changed ones replaced."""
        result = self.call("POST", "/populate", proxies)
        return [RemoteProxy(self, p["name"]) for p in (result or {}).get("proxies") or []]

    def version(self) -> str:
        status, data = self.request("GET", "/version")
        if status >= 400:
            raise ToxiproxyApiError.from_status(status, _error_message(status, data))
        text = data.decode("utf-8", "replace").strip()
        try:
            parsed = json.loads(text)
        except ValueError:
            return text  # Toxiproxy <= 2.5 answered a bare string
        return str(parsed.get("version", text)) if isinstance(parsed, dict) else text

    # ---- faultlab extensions ---------------------------------------------------
    @property
    def is_faultlab(self) -> bool:
        """Whether the server offers faultlab's extensions (probed once)."""
        if self._faultlab is None:
            status, _ = self.request("GET", EXTENSION_PREFIX + "seed")
            self._faultlab = status == 200
        return self._faultlab

    def _extension(self, path: str, what: str) -> Any:
        if not self.is_faultlab:
            raise NotSupportedByServer(
                f"{what} needs a faultlab server; {self.url} is a plain Toxiproxy"
            )
        return self.call("GET", EXTENSION_PREFIX + path)

    @property
    def seed(self) -> int:
        """The server's session seed (faultlab servers only)."""
        return int(self._extension("seed", "the seed")["seed"])

    def toxic_catalogue(self) -> dict[str, Any]:
        """Toxic types the server offers with their attribute specs."""
        if self._catalogue is None:
            if self.is_faultlab:
                self._catalogue = self._extension("toxics", "the toxic catalogue")
            else:
                self._catalogue = {t: {"standard": True} for t in sorted(STANDARD_TOXICS)}
        return dict(self._catalogue or {})

    def unsupported_reason(self, toxic_type: str) -> str | None:
        """Why ``toxic_type`` cannot be used on this server (a skip reason), or None."""
        if toxic_type in STANDARD_TOXICS:
            return None
        if not self.is_faultlab:
            return (
                f"toxic {toxic_type!r} is faultlab-only; {self.url} is a plain Toxiproxy "
                f"(standard toxics: {', '.join(sorted(STANDARD_TOXICS))})"
            )
        if toxic_type not in self.toxic_catalogue():
            return f"the faultlab server at {self.url} has no toxic {toxic_type!r}"
        return None

    def supports(self, toxic_type: str) -> bool:
        """True for the eight standard toxics anywhere, faultlab's own only on faultlab."""
        return self.unsupported_reason(toxic_type) is None

    def events(
        self, *, since: int = 0, kinds: list[str] | None = None, proxy: str | None = None
    ) -> list[dict[str, Any]]:
        """Journal events (faultlab servers only; :class:`NotSupportedByServer` otherwise)."""
        query: dict[str, Any] = {"since": since}
        if kinds:
            query["kind"] = ",".join(kinds)
        path = f"proxies/{_seg(proxy)}/events" if proxy is not None else "events"
        result = self._extension(f"{path}?{urlencode(query)}", "the event journal")
        events: list[dict[str, Any]] = result["events"]
        return events


class RemoteProxy:
    """One proxy on a remote server, used like a :class:`ProxyHandle`."""

    def __init__(self, client: RemoteToxiproxy, name: str) -> None:
        self.client = client
        self.name = name

    @property
    def _path(self) -> str:
        return f"/proxies/{_seg(self.name)}"

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self.client.call("GET", self._path)
        return result

    @property
    def listen(self) -> str:
        """The listen address as the server reports it (the real port for port 0)."""
        return str(self.info()["listen"])

    @property
    def address(self) -> str:
        """The listen address as a faultlab URI (``tcp://host:port``)."""
        return to_uri(self.listen)

    @property
    def upstream(self) -> str:
        return str(self.info()["upstream"])

    @property
    def enabled(self) -> bool:
        return bool(self.info()["enabled"])

    def update(self, *, listen: str | None = None, upstream: str | None = None) -> dict[str, Any]:
        """Change listen and/or upstream (drops live connections, as Toxiproxy does)."""
        body = {k: v for k, v in (("listen", listen), ("upstream", upstream)) if v is not None}
        result: dict[str, Any] = self.client.call("POST", self._path, body)
        return result

    def enable(self) -> None:
        self.client.call("POST", self._path, {"enabled": True})

    def disable(self) -> None:
        """Stop listening and close every connection; toxics are kept."""
        self.client.call("POST", self._path, {"enabled": False})

    def delete(self) -> None:
        self.client.call("DELETE", self._path)

    def add_toxic(
        self,
        type_name: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": type_name,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": {k: _jsonable(v) for k, v in attributes.items()},
        }
        if name is not None:
            body["name"] = name
        result: dict[str, Any] = self.client.call("POST", f"{self._path}/toxics", body)
        return result

    def update_toxic(
        self, name: str, *, toxicity: float | None = None, **attributes: Any
    ) -> dict[str, Any]:
        """Merge attributes into the toxic; ``toxicity`` kept unless given."""
        body: dict[str, Any] = {"attributes": {k: _jsonable(v) for k, v in attributes.items()}}
        if toxicity is not None:
            body["toxicity"] = toxicity
        result: dict[str, Any] = self.client.call(
            "PATCH", f"{self._path}/toxics/{_seg(name)}", body
        )
        return result

    def remove_toxic(self, name: str) -> None:
        self.client.call("DELETE", f"{self._path}/toxics/{_seg(name)}")

    def toxic(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.client.call("GET", f"{self._path}/toxics/{_seg(name)}")
        return result

    def toxics(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.client.call("GET", f"{self._path}/toxics")
        return result

    def clear(self) -> None:
        """Remove every toxic of this proxy (keeps it enabled or not, unlike ``reset``)."""
        for toxic in self.toxics():
            try:
                self.remove_toxic(toxic["name"])
            except ToxiproxyNotFound:
                pass  # removed concurrently

    def connections(self) -> int:
        raise NotSupportedByServer("the Toxiproxy API does not expose live connection counts")

    def events(self, *, since: int = 0, kinds: list[str] | None = None) -> list[dict[str, Any]]:
        """This proxy's journal events (faultlab servers only)."""
        return self.client.events(since=since, kinds=kinds, proxy=self.name)

    def __repr__(self) -> str:
        return f"RemoteProxy({self.name!r} on {self.client.url})"


def _seg(name: str) -> str:
    return quote(name, safe="")


def _error_message(status: int, data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        return text or f"HTTP {status}"
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return str(parsed["error"])
    return text
