"""Toxiproxy's HTTP API (v2.12.0) as a sans-IO handler over a :class:`ProxyEngine`.

:func:`handle` takes a parsed request (method, target, body, headers) and
returns an :class:`ApiResponse`; it runs on the engine loop and never touches a
socket, so :mod:`faultlab.proxy.server` (h11) is only transport and every rule
of the API can be tested without one. The rules are Toxiproxy's, read from its
``api.go``: routes, status codes, exact error messages, JSON key order, Go's
decoding quirks (case-insensitive keys, first JSON value only, ``null`` leaves a
field alone). Deliberate deviations are listed in ``docs/proxy.md``.

faultlab's own endpoints live under ``/faultlab/`` so they never collide with a
future Toxiproxy route: journal events, the seed, and the toxic catalogue.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import json
import logging
import os
import re
import socket
import struct
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

from faultlab import __version__
from faultlab.errors import FaultlabError
from faultlab.journal import Journal
from faultlab.proxy.engine import ProxyEngine, start_proxy
from faultlab.proxy.proxy import (
    FLOAT32_OVERFLOW,
    STREAMS,
    InvalidProxyRequest,
    ListenFailed,
    Proxy,
    ProxyError,
    ProxyExists,
    ProxyNotFound,
    ToxicEntry,
    effective_framing,
    to_uri,
    toxiproxy_address,
)
from faultlab.proxy.tlsintercept import TlsSettings, TlsSettingsError
from faultlab.proxy.validate import (
    check_address,
    check_framing,
    check_name,
    check_protocol,
    go_struct,
    query_uint,
    toxic_attributes,
)
from faultlab.toxics.base import InvalidToxic, get_toxic_class, toxic_types

__all__ = [
    "EXTENSION_PREFIX",
    "MAX_BODY",
    "MAX_DEPTH",
    "STANDARD_TOXICS",
    "TOXIPROXY_VERSION",
    "ApiResponse",
    "error_response",
    "handle",
    "http_status",
    "populate",
    "proxy_json",
    "toxic_json",
]

log = logging.getLogger("faultlab.proxy.api")

TOXIPROXY_VERSION = "2.12.0"
"""The Toxiproxy version whose API this is; ``GET /version`` reports it verbatim, because
clients and readiness probes treat it as a Toxiproxy version (faultlab's own is a header)."""
MAX_BODY = 1 << 20
"""Largest request body accepted (413 beyond): populate files are small, attacks are not."""
MAX_DEPTH = 256
"""Deepest JSON nesting accepted (400 beyond, Go's ``exceeded max depth``; Go allows 10000).
Toxiproxy's bodies are three levels deep; Python's decoder recurses once per level."""
STANDARD_TOXICS = frozenset(
    {"noop", "latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer", "limit_data"}
)
"""The eight toxic types a real Toxiproxy server knows; the others are faultlab's own."""
EXTENSION_PREFIX = "/faultlab/"

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
_NOSNIFF = (("X-Content-Type-Options", "nosniff"),)


class ApiResponse(NamedTuple):
    """``(status, content_type, body, extra_headers)``; ``content_type`` None: no header."""

    status: int
    content_type: str | None
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


# ---- proxy failures as HTTP statuses (the only place they meet) ---------------------
_STATUSES: tuple[tuple[type[ProxyError], int], ...] = (
    (InvalidProxyRequest, 400),
    (ProxyNotFound, 404),
    (ProxyExists, 409),
    (ListenFailed, 500),
)


def http_status(exc: ProxyError) -> int:
    """The status Toxiproxy answers ``exc`` with: 400 bad input, 404 not found, 409 a taken
    name, 500 a listen failure or anything else."""
    for cls, status in _STATUSES:
        if isinstance(exc, cls):
            return status
    return 500


class _ApiError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# ---- JSON encoding, as Go's encoding/json writes it -------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


def _dumps(obj: Any) -> bytes:
    """Compact JSON, UTF-8, with Go's HTML-safe escapes (``<``, ``>``, ``&``, U+2028/9)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        if raw in text:
            text = text.replace(raw, escaped)
    # a lone surrogate (a path's undecodable byte, a library caller's string) cannot be UTF-8:
    # written as its JSON escape, it keeps the body valid JSON instead of failing the request
    return text.encode("utf-8", "backslashreplace")


def _float32(value: float) -> float | int:
    """Toxicity is a Go float32: ``1.0`` renders as ``1``, ``0.2`` as ``0.2`` (shortest)."""
    if value == int(value) and abs(value) < 2**53:
        return int(value)
    f32 = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(1, 10):
        text = f"{f32:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == f32:
            return float(text)
    return float(f32)


def toxic_json(entry: ToxicEntry) -> dict[str, Any]:
    """``{attributes, name, type, stream, toxicity}``: ToxicWrapper's key order."""
    data = entry.to_json()
    return {
        "attributes": data["attributes"],
        "name": data["name"],
        "type": data["type"],
        "stream": data["stream"],
        "toxicity": _float32(float(data["toxicity"])),
    }


def proxy_json(proxy: Proxy) -> dict[str, Any]:
    """``{name, listen, upstream, enabled, Logger, toxics}``, as Toxiproxy 2.12 emits it.

    ``"Logger": {}`` is a leak of Toxiproxy's struct that recorded responses show;
    emitting it keeps byte-level fixtures of real clients valid.
    """
    data = proxy.to_json()
    out: dict[str, Any] = {
        "name": data["name"],
        "listen": data["listen"],
        "upstream": data["upstream"],
        "enabled": data["enabled"],
        "Logger": {},
    }
    # faultlab-only keys (clients ignore unknown keys); absent on a plain TCP proxy
    out.update((k, v) for k, v in data.items() if k not in out and k != "toxics")
    out["toxics"] = [toxic_json(e) for e in proxy.toxic_list()]
    return out


def _json(status: int, obj: Any) -> ApiResponse:
    return ApiResponse(status, JSON, _dumps(obj))


def error_response(status: int, message: str) -> ApiResponse:
    """Go's ``http.Error``: JSON text, newline, served as text/plain with nosniff."""
    body = _dumps({"error": message, "status": status}) + b"\n"
    return ApiResponse(status, TEXT, body, _NOSNIFF)


NOT_FOUND = ApiResponse(404, TEXT, b"404 page not found\n", _NOSNIFF)
METHOD_NOT_ALLOWED = ApiResponse(405, None, b"")
NO_CONTENT = ApiResponse(204, None, b"")
FORBIDDEN = ApiResponse(403, TEXT, b"User agent not allowed\n", _NOSNIFF)


# ---- JSON decoding, with Go's rules -----------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _parse_int(text: str) -> int | float:
    """Go skips a huge number in a field it ignores and refuses it in one it reads; Python's
    ``int()`` raises past 4300 digits, so such a number becomes an infinity here (ignored, or
    refused by the field's own check)."""
    if len(text) > 4000:
        return float("-inf") if text.startswith("-") else float("inf")
    return int(text)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int)
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATES = re.compile("[\ud800-\udfff]")


def _too_deep(text: str) -> bool:
    """Whether the first JSON value nests deeper than :data:`MAX_DEPTH` (a scan of brackets
    outside strings, run only when there are enough brackets to matter)."""
    if text[0] not in "[{" or text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif token in ("]", "}"):
            depth -= 1
            if depth <= 0:
                return False  # the first value is complete; Go reads no further
    return False


def _go_strings(value: Any) -> Any:
    """Go's decoder turns a lone surrogate escape (``"\\ud800"``) into U+FFFD, so every string
    it stores is valid UTF-8; Python's keeps the surrogate, which no encoder will write."""

    def fix(text: str) -> str:
        return _SURROGATES.sub("\ufffd", text)

    if isinstance(value, str):
        return fix(value)
    root: list[Any] = [value]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        parent, key = stack.pop()
        item = parent[key]
        if isinstance(item, str):
            parent[key] = fix(item)
        elif isinstance(item, list):
            stack.extend((item, i) for i in range(len(item)))
        elif isinstance(item, dict):
            fixed = {fix(k): v for k, v in item.items()}
            parent[key] = fixed
            stack.extend((fixed, k) for k in fixed)
    return root[0]


def _decode(body: bytes) -> Any:
    """The first JSON value of the body (Go's ``Decoder.Decode``); errors are Go-worded."""
    text = body.decode("utf-8", "replace").lstrip(" \t\r\n")
    if not text:
        raise _ApiError("bad request body: EOF", 400)
    if _too_deep(text):
        raise _ApiError("bad request body: exceeded max depth", 400)
    try:
        value, _ = _DECODER.raw_decode(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            detail = "unexpected EOF"
        elif exc.msg == "Expecting value":
            detail = f"invalid character {text[exc.pos]!r} looking for beginning of value"
        else:
            detail = f"{exc.msg} at offset {exc.pos}"
        raise _ApiError(f"bad request body: {detail}", 400) from None
    except (ValueError, RecursionError) as exc:
        raise _ApiError(f"bad request body: {exc}", 400) from None
    return _go_strings(value) if _SURROGATE_ESCAPE.search(text) else value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@dataclass(frozen=True)
class _Field:
    check: Callable[[Any], bool]
    go_type: str


_STR = _Field(lambda v: isinstance(v, str), "string")
_BOOL = _Field(lambda v: isinstance(v, bool), "bool")
_NUM = _Field(lambda v: isinstance(v, int | float) and not isinstance(v, bool), "float32")
_OBJ = _Field(lambda v: isinstance(v, dict), "map[string]interface {}")

_PROXY_FIELDS = {
    "name": _STR,
    "listen": _STR,
    "upstream": _STR,
    "enabled": _BOOL,
    "framing": _STR,  # faultlab: frame-aware toxics (drop, reorder...) need one
    "protocol": _STR,  # faultlab: protocol-aware toxics (rpc_error, version_skew)
    "tls": _OBJ,  # faultlab: {"mode": "intercept" | "passthrough", "upstream_ca": ...}
    "toxics": _Field(lambda v: True, "[]toxics.ToxicWrapper"),  # faultlab: populate only
}
_TOXIC_FIELDS = {
    "name": _STR,
    "type": _STR,
    "stream": _STR,
    "toxicity": _NUM,
    # Go decodes the body once with a noop toxic in place, before it knows the type
    "attributes": _Field(lambda v: isinstance(v, dict), "toxics.NoopToxic"),
}


_UPDATE_STRUCT = (
    'struct { Attributes interface {} "json:\\"attributes\\""; '
    'Toxicity float32 "json:\\"toxicity\\"" }'
)
_POPULATE_STRUCT = 'struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }'
"""The anonymous structs Toxiproxy decodes a toxic update and a populate entry into, as Go's
decode errors name them."""


def _update_fields(type_name: str) -> dict[str, _Field]:
    """An update decodes into an anonymous struct around the live toxic (so Go's messages
    name ``.toxicity`` and ``.attributes of type toxics.LatencyToxic``)."""
    return {
        "toxicity": _NUM,
        "attributes": _Field(lambda v: isinstance(v, dict), go_struct(type_name)),
    }


def _check_float32(fields: dict[str, Any], struct_name: str) -> None:
    """Toxicity is a Go float32: a number beyond its range is Go's decode error."""
    value = fields.get("toxicity")
    if value is not None and not abs(value) < FLOAT32_OVERFLOW:
        raise _ApiError(
            f"bad request body: json: cannot unmarshal number {value!r} into Go struct field "
            f"{struct_name}.toxicity of type float32",
            400,
        )


def _fields(
    value: Any, struct_name: str, spec: Mapping[str, _Field], go_value: str | None = None
) -> dict[str, Any]:
    """Decode an object into a Go struct: keys match case-insensitively, the last one wins,
    unknown keys are ignored, ``null`` leaves a field alone, a wrong JSON type is a 400.
    ``go_value`` is the Go type Go's message names for a body that is not an object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _ApiError(
            f"bad request body: json: cannot unmarshal {_kind(value)} into Go value of type "
            f"{go_value or 'toxiproxy.' + struct_name}",
            400,
        )
    lowered = {k.lower(): k for k in spec}
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = key if key in spec else lowered.get(key.lower())
        if name is None or item is None:
            continue
        field = spec[name]
        if not field.check(item):
            raise _ApiError(
                f"bad request body: json: cannot unmarshal {_kind(item)} into Go struct field "
                f"{struct_name}.{name} of type {field.go_type}",
                400,
            )
        out[name] = item
    return out


# ---- listen addresses --------------------------------------------------------
async def _resolve_listen(listen: str) -> str:
    """Go's ``ResolveTCPAddr(listen).String()``: what a host:port listen would bind.

    Only used to decide whether an update or populate entry differs from the
    proxy (``localhost:P`` equals ``127.0.0.1:P``); faultlab URIs compare as text.
    """
    address = toxiproxy_address(listen)
    if "://" in address:
        return address
    if not address:
        return ":0"
    host, sep, port = address.rpartition(":")
    if not sep:
        raise _ApiError(f"address {address}: missing port in address", 500)
    if not port.isdigit() or int(port) > 65535:
        raise _ApiError(f"address {address}: invalid port", 500)
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host:
        return f":{int(port)}"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = await _lookup(host)
    shown = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{shown}:{int(port)}"


async def _lookup(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), 5.0)
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: IDNA, NUL
        raise _ApiError(f"lookup {host}: {exc or 'timed out'}", 500) from None
    if not infos:
        raise _ApiError(f"lookup {host}: no such host", 500)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # Go prefers IPv4
    return ipaddress.ip_address(str(infos[0][4][0]).split("%")[0])


async def _differs(proxy: Proxy, listen: str, upstream: str) -> bool:
    """Toxiproxy's ``Differs``: the resolved new listen against the stored one, upstreams
    as text (``enabled`` is not compared)."""
    if await _resolve_listen(listen) != toxiproxy_address(proxy.listen):
        return True
    return toxiproxy_address(upstream) != toxiproxy_address(proxy.upstream)


# ---- request context and routes ----------------------------------------------
@dataclass
class _Request:
    engine: ProxyEngine
    method: str
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes


Handler = Callable[[_Request], Awaitable[ApiResponse]]


async def _proxy_index(req: _Request) -> ApiResponse:
    proxies = req.engine.proxies
    return _json(200, {name: proxy_json(proxies[name]) for name in sorted(proxies)})


async def _proxy_create(req: _Request) -> ApiResponse:
    fields = _fields(_decode(req.body), "Proxy", _PROXY_FIELDS)
    name, upstream = fields.get("name", ""), fields.get("upstream", "")
    if not name:
        raise _ApiError("missing required field: name", 400)
    if not upstream:
        raise _ApiError("missing required field: upstream", 400)
    # create_async checks name, addresses, framing and protocol before anything binds
    proxy = await req.engine.create_async(
        name,
        fields.get("listen", ""),
        upstream,
        enabled=fields.get("enabled", True),
        framing=fields.get("framing") or None,
        protocol=fields.get("protocol") or None,
        tls=fields.get("tls"),
    )
    return _json(201, proxy_json(proxy))


def _same_tls(proxy: Proxy, value: Any) -> None:
    """A live proxy keeps its TLS mode: the same ``tls`` may be sent back, a change is a 400."""
    try:
        wanted = TlsSettings.parse(value)
    except TlsSettingsError as exc:
        raise _ApiError(str(exc), 400) from None
    if wanted != proxy.tls:
        raise _ApiError(
            f"proxy {proxy.name!r}: tls cannot change on an existing proxy; delete it and "
            "create it again with the new tls",
            400,
        )


async def _proxy_show(req: _Request) -> ApiResponse:
    return _json(200, proxy_json(req.engine.get(req.params["proxy"])))


async def _proxy_update(req: _Request) -> ApiResponse:
    """A merge over the current listen/upstream/enabled; a changed address restarts the
    proxy (dropping its connections), then ``enabled`` is applied.

    New addresses are checked before anything stops. If the listen then fails (500, as
    Toxiproxy), the old addresses and state are restored: Toxiproxy would leave the proxy
    stopped on the new address, so a failed request would change it."""
    proxy = req.engine.get(req.params["proxy"])
    fields = _fields(_decode(req.body), "Proxy", _PROXY_FIELDS)
    if "tls" in fields:
        _same_tls(proxy, fields["tls"])
    intercepting = proxy.tls is not None and proxy.tls.intercept
    for role in ("listen", "upstream"):
        if role in fields:
            check_address(fields[role], role)
            if proxy.framing and not intercepting and to_uri(fields[role]).startswith("tls://"):
                raise _ApiError(  # the rule Proxy() applies at creation
                    f"proxy {proxy.name!r} has framing {proxy.framing!r}, and a TLS proxy "
                    "passes encrypted records through, so it cannot see frames",
                    400,
                )
    listen = fields.get("listen", toxiproxy_address(proxy.listen))
    upstream = fields.get("upstream", toxiproxy_address(proxy.upstream))
    enabled = fields.get("enabled", proxy.enabled)
    before = (proxy.listen, proxy.upstream, proxy.enabled)
    changed = await _differs(proxy, listen, upstream)
    try:
        if changed:
            await proxy.stop()
            proxy.listen, proxy.upstream = listen, upstream
        if enabled != proxy.enabled:
            await (start_proxy(proxy) if enabled else proxy.stop())
    except BaseException:
        if changed or proxy.enabled != before[2]:
            await proxy.stop()
            proxy.listen, proxy.upstream = before[0], before[1]
            if before[2]:
                with contextlib.suppress(ProxyError):
                    await start_proxy(proxy)
        raise
    if changed:
        req.engine.journal.record(
            "proxy_updated", proxy=proxy.name, listen=listen, upstream=upstream
        )
    return _json(200, proxy_json(proxy))


async def _proxy_delete(req: _Request) -> ApiResponse:
    await req.engine.delete_async(req.params["proxy"])
    return NO_CONTENT


async def _toxic_index(req: _Request) -> ApiResponse:
    proxy = req.engine.get(req.params["proxy"])
    return _json(200, [toxic_json(e) for e in proxy.toxic_list()])


async def _toxic_create(req: _Request) -> ApiResponse:
    proxy = req.engine.get(req.params["proxy"])
    fields = _fields(_decode(req.body), "ToxicWrapper", _TOXIC_FIELDS, "toxics.ToxicWrapper")
    _check_float32(fields, "ToxicWrapper")
    if fields.get("type") == SETTINGS_TOXIC:
        return await _settings_toxic(req.engine, proxy, fields)
    name = fields.get("name") or None
    if name is not None:
        check_name(name, "toxic")
    type_name, stream = fields.get("type", ""), fields.get("stream", "downstream")
    attributes = fields.get("attributes")
    if attributes is not None:
        try:
            attributes = toxic_attributes(type_name, attributes)
        except InvalidProxyRequest:
            _before_attributes(proxy, type_name, name, stream)
            raise
    entry = proxy.add_toxic(
        type_name,
        name=name,
        stream=stream,
        toxicity=fields.get("toxicity", 1.0),
        attributes=attributes,
    )
    return _json(200, toxic_json(entry))


SETTINGS_TOXIC = "faultlab"
"""The toxic type that sets a proxy's faultlab options (``framing``, ``protocol``, ``tls``) for
clients that can only send Toxiproxy's keys (toxiproxy-python's ``create`` takes four)."""
_SETTINGS = ("framing", "protocol", "tls")


async def _settings_toxic(engine: ProxyEngine, proxy: Proxy, fields: dict[str, Any]) -> ApiResponse:
    """``{"type": "faultlab", "attributes": {"framing": ..., "protocol": ..., "tls": ...}}``:
    the proxy is created again with the same name, addresses and state and these options (its
    connections drop; no toxic may be on it yet, since the options decide which toxics fit).
    Nothing is stored as a toxic; the answer is toxic-shaped so every client can read it."""
    given = fields.get("attributes") or {}
    lowered = {key.lower(): value for key, value in given.items()}
    unknown = sorted(set(lowered) - set(_SETTINGS))
    if unknown:
        raise InvalidProxyRequest(
            f"faultlab: unknown attribute {unknown[0]!r}; known: {', '.join(_SETTINGS)}"
        )
    for key in ("framing", "protocol"):
        if lowered.get(key) is not None and not isinstance(lowered[key], str):
            raise InvalidProxyRequest(f"faultlab: attribute {key!r} must be a string")
    if proxy.toxics:
        raise InvalidProxyRequest(
            f"faultlab: set framing, protocol and tls on proxy {proxy.name!r} before adding "
            f"toxics (it has {', '.join(sorted(proxy.toxics))})"
        )
    framing = lowered.get("framing", proxy.framing) or None
    protocol = lowered.get("protocol", proxy.protocol) or None
    tls = lowered["tls"] if "tls" in lowered else (proxy.tls.to_json() if proxy.tls else None)
    check_framing(framing)
    check_protocol(protocol)
    try:
        TlsSettings.parse(tls)
    except TlsSettingsError as exc:
        raise InvalidProxyRequest(str(exc)) from None
    listen, enabled = toxiproxy_address(proxy.listen), proxy.enabled
    await proxy.stop()
    del engine.proxies[proxy.name]
    try:
        new = await engine.create_async(
            proxy.name,
            listen,
            toxiproxy_address(proxy.upstream),
            enabled=enabled,
            framing=framing,
            protocol=protocol,
            tls=tls,
            record_chunks=proxy.record_chunks,
        )
    except BaseException:
        engine.proxies.setdefault(proxy.name, proxy)  # the old proxy, as it was
        if enabled:
            with contextlib.suppress(ProxyError):
                await start_proxy(proxy)
        raise
    engine.journal.record("proxy_replaced", proxy=proxy.name)
    shown = new.to_json()
    return _json(
        200,
        {
            "attributes": {key: shown.get(key) for key in _SETTINGS},
            "name": fields.get("name") or SETTINGS_TOXIC,
            "type": SETTINGS_TOXIC,
            "stream": fields.get("stream", "downstream"),
            "toxicity": 1,
        },
    )


def _before_attributes(proxy: Proxy, type_name: str, name: str | None, stream: str) -> None:
    """The errors Toxiproxy reports before it decodes a toxic's attributes (AddToxicJson's
    order: the stream, the type, a taken name)."""
    if stream.lower() not in STREAMS:
        raise InvalidProxyRequest("stream was invalid, can be either upstream or downstream")
    try:
        get_toxic_class(type_name)
    except InvalidToxic as exc:
        raise InvalidProxyRequest(str(exc)) from None
    if (name or f"{type_name}_{stream}") in proxy.toxics:
        raise ProxyExists("toxic already exists")


def _toxic(proxy: Proxy, name: str) -> ToxicEntry:
    entry = proxy.toxics.get(name)
    if entry is None:
        raise _ApiError("toxic not found", 404)
    return entry


async def _toxic_show(req: _Request) -> ApiResponse:
    proxy = req.engine.get(req.params["proxy"])
    return _json(200, toxic_json(_toxic(proxy, req.params["toxic"])))


async def _toxic_update(req: _Request) -> ApiResponse:
    """Attributes merge into the live toxic; ``toxicity`` kept if omitted; name, type and
    stream cannot change (silently ignored, as Toxiproxy)."""
    proxy = req.engine.get(req.params["proxy"])
    found = _toxic(proxy, req.params["toxic"])
    type_name = found.toxic.type_name
    fields = _fields(_decode(req.body), "", _update_fields(type_name), _UPDATE_STRUCT)
    _check_float32(fields, "")
    attributes = fields.get("attributes")
    if attributes is not None:
        attributes = toxic_attributes(type_name, attributes)
    entry = proxy.update_toxic(found.name, toxicity=fields.get("toxicity"), attributes=attributes)
    return _json(200, toxic_json(entry))


async def _toxic_delete(req: _Request) -> ApiResponse:
    req.engine.get(req.params["proxy"]).remove_toxic(req.params["toxic"])
    return NO_CONTENT


async def _reset(req: _Request) -> ApiResponse:
    await req.engine.reset_async()
    return NO_CONTENT


async def _version(req: _Request) -> ApiResponse:
    body = f'{{"version": "{TOXIPROXY_VERSION}"}}\n'.encode()
    return ApiResponse(200, "application/json;charset=utf-8", body)


async def _populate(req: _Request) -> ApiResponse:
    return await populate(req.engine, req.body)


async def populate(engine: ProxyEngine, body: bytes) -> ApiResponse:
    """``POST /populate`` and config files: validate every entry, then add or replace in
    order; an identical existing proxy is kept with its toxics and connections.

    The first failure stops the run; the reply carries its status and the proxies
    processed so far (``null`` if none), merged into one object as Toxiproxy does.
    """
    processed: list[Proxy] = []

    def reply(status: int, error: str | None = None) -> ApiResponse:
        payload: dict[str, Any] = {}
        if error is not None:
            payload = {"error": error, "status": status}
        payload["proxies"] = [proxy_json(p) for p in processed] or None
        return _json(status, payload)

    try:
        entries = _populate_entries(_decode(body), engine.seed)
    except _ApiError as exc:
        return reply(exc.status, exc.message)
    for name, listen, upstream, enabled, framing, protocol, tls_field, toxics in entries:
        existing = engine.proxies.get(name)
        try:
            if existing is not None:
                settings = TlsSettings.parse(tls_field)
                opaque = not (settings and settings.intercept) and any(
                    to_uri(a).startswith("tls://") for a in (listen, upstream)
                )
                wanted = (effective_framing(framing, protocol, tls=opaque), protocol, settings)
                same_kind = (existing.framing, existing.protocol, existing.tls) == wanted
                same_toxics = toxics is None or _toxics_shown(existing) == [
                    _toxic_shown(t) for t in toxics
                ]
                if same_kind and same_toxics and not await _differs(existing, listen, upstream):
                    processed.append(existing)
                    continue
                await existing.stop()
                del engine.proxies[name]
            try:
                proxy = await engine.create_async(
                    name,
                    listen,
                    upstream,
                    enabled=enabled,
                    framing=framing,
                    protocol=protocol,
                    tls=tls_field,
                )
            except BaseException:
                if existing is not None:  # Toxiproxy keeps the old one, stopped
                    engine.proxies.setdefault(name, existing)
                raise
        except _ApiError as exc:
            return reply(exc.status, exc.message)
        except ProxyError as exc:
            return reply(http_status(exc), str(exc))
        except FaultlabError as exc:
            return reply(500, str(exc))
        for toxic in toxics or ():  # checked on a scratch proxy already: these cannot fail
            proxy.add_toxic(
                toxic["type"],
                name=toxic["name"],
                stream=toxic["stream"],
                toxicity=toxic["toxicity"],
                attributes=toxic["attributes"],
            )
        if existing is not None:
            engine.journal.record("proxy_replaced", proxy=name)
        processed.append(proxy)
    return reply(201)


def _toxic_shown(toxic: dict[str, Any]) -> dict[str, Any]:
    return {k: toxic[k] for k in ("name", "type", "stream", "toxicity", "attributes")}


def _toxics_shown(proxy: Proxy) -> list[dict[str, Any]]:
    """A proxy's toxics as a populate entry lists them (to tell a changed entry)."""
    return [
        {
            "name": e.name,
            "type": e.toxic.type_name,
            "stream": e.stream,
            "toxicity": e.toxicity,
            "attributes": e.toxic.attributes,
        }
        for e in proxy.toxic_list()
    ]


def _entry_toxics(value: Any, entry: _Entry, seed: int) -> list[dict[str, Any]]:
    """faultlab's ``toxics`` in a populate or config entry (Toxiproxy #79, #447; Toxiproxy
    ignores the key): each is a toxic create body, decoded and checked as ``POST
    /proxies/{p}/toxics`` would, on a scratch proxy that never binds. Returns them with every
    default filled in, as applied and as compared with an existing proxy's."""
    if not isinstance(value, list):
        raise InvalidProxyRequest(
            f"bad request body: toxics must be an array of toxics, got {_kind(value)}"
        )
    scratch = Proxy(
        entry.name,
        entry.listen,
        entry.upstream,
        journal=Journal(),
        seed=seed,
        framing=entry.framing,
        protocol=entry.protocol,
        tls=entry.tls,
    )
    out = []
    for item in value:
        try:
            fields = _fields(item, "ToxicWrapper", _TOXIC_FIELDS, "toxics.ToxicWrapper")
            _check_float32(fields, "ToxicWrapper")
        except _ApiError as exc:
            raise InvalidProxyRequest(exc.message) from None
        name = fields.get("name") or None
        if name is not None:
            check_name(name, "toxic")
        type_name, stream = fields.get("type", ""), fields.get("stream", "downstream")
        attributes = toxic_attributes(type_name, fields.get("attributes") or {})
        added = scratch.add_toxic(
            type_name,
            name=name,
            stream=stream,
            toxicity=fields.get("toxicity", 1.0),
            attributes=attributes,
        )
        out.append(
            {
                "name": added.name,
                "type": type_name,
                "stream": added.stream,
                "toxicity": added.toxicity,
                "attributes": dict(added.toxic.attributes),
            }
        )
    return out


def _populate_entries(value: Any, seed: int = 0) -> list[_Entry]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _ApiError(
            f"bad request body: json: cannot unmarshal {_kind(value)} into Go value of type "
            f"[]{_POPULATE_STRUCT}",
            400,
        )
    decoded = [_fields(item, "", _PROXY_FIELDS, _POPULATE_STRUCT) for item in value]
    for index, fields in enumerate(decoded, 1):
        if not fields.get("name"):
            raise _ApiError(f"missing required field: name at proxy {index}", 400)
        if not fields.get("upstream"):
            raise _ApiError(f"missing required field: upstream at proxy {index}", 400)
    entries = []
    for index, fields in enumerate(decoded, 1):
        entry = _Entry(
            fields["name"],
            fields.get("listen", ""),
            fields["upstream"],
            fields.get("enabled", True),
            fields.get("framing") or None,
            fields.get("protocol") or None,
            fields.get("tls"),
            None,
        )
        try:  # every entry, before the first is applied: a refused populate changes nothing
            check_name(entry.name)
            check_address(entry.listen, "listen")
            check_address(entry.upstream, "upstream")
            check_framing(entry.framing)
            check_protocol(entry.protocol)
            TlsSettings.parse(entry.tls)
            if fields.get("toxics") is not None:
                entry = entry._replace(toxics=_entry_toxics(fields["toxics"], entry, seed))
        except TlsSettingsError as exc:
            raise _ApiError(f"{exc} at proxy {index}", 400) from None
        except ProxyError as exc:
            raise _ApiError(f"{exc} at proxy {index}", http_status(exc)) from None
        entries.append(entry)
    return entries


class _Entry(NamedTuple):
    name: str
    listen: str
    upstream: str
    enabled: bool
    framing: str | None
    protocol: str | None
    tls: Any
    toxics: list[dict[str, Any]] | None


# ---- faultlab extensions -------------------------------------------------------
def _events_reply(req: _Request, proxy: str | None) -> ApiResponse:
    since = query_uint(req.query.get("since"), "since", 0)
    kinds = [k for v in req.query.get("kind", []) for k in v.split(",") if k] or None
    journal = req.engine.journal
    events = journal.events(since=since, kinds=kinds)
    if proxy is not None:
        events = [e for e in events if e.get("proxy") == proxy]
    next_seq = max([since] + [e["seq"] + 1 for e in events])
    return _json(
        200,
        {"events": events, "next": next_seq, "dropped": journal.dropped, "seed": req.engine.seed},
    )


async def _ext_events(req: _Request) -> ApiResponse:
    return _events_reply(req, None)


async def _ext_proxy_events(req: _Request) -> ApiResponse:
    name = req.params["proxy"]
    if name not in req.engine.proxies and not any(
        e.get("proxy") == name for e in req.engine.journal.events()
    ):
        raise _ApiError("proxy not found", 404)
    return _events_reply(req, name)


async def _ext_seed(req: _Request) -> ApiResponse:
    return _json(200, {"seed": req.engine.seed})


def toxic_catalogue() -> dict[str, Any]:
    """Every registered toxic type as it declares itself (what ``/faultlab/toxics`` shows).

    Built from the same declarations that validate attributes and feed the
    Hypothesis strategies, so a plugin toxic appears here with nothing else to
    edit: its attributes (legal range and choices, what tests draw, mildest
    end first), its mildest setting, and whether unknown attributes are
    refused (faultlab's own) or ignored (Toxiproxy's eight).
    """
    out: dict[str, Any] = {}
    for type_name in toxic_types():
        cls = get_toxic_class(type_name)
        attributes: dict[str, Any] = {}
        for name, attr in cls.attributes_spec.items():
            values, bounds = attr.draw_values(), attr.draw_range()
            drawn: dict[str, Any] | None = None
            if values:
                drawn = {"values": list(values)}
            elif bounds is not None:
                drawn = {"range": list(bounds), "also": list(attr.also), "step": attr.step}
            attributes[name] = {
                "type": attr.kind.__name__,
                "default": attr.default,
                "minimum": attr.minimum,
                "maximum": attr.maximum,
                "choices": list(attr.choices) or None,
                "help": attr.help,
                "drawn": drawn,
            }
        out[type_name] = {
            "standard": type_name in STANDARD_TOXICS,
            "description": cls.description,
            "needs_frames": cls.needs_frames,
            "closes_on_remove": cls.closes_on_remove,
            "unknown_attributes": "ignored" if cls.ignores_unknown_attributes else "refused",
            "mildest": cls.mildest(),
            "attributes": attributes,
        }
    return out


async def _ext_toxics(req: _Request) -> ApiResponse:
    return _json(200, toxic_catalogue())


async def _ext_ca(req: _Request) -> ApiResponse:
    """The lab CA an intercepting proxy's certificates chain to: trust it in the client."""
    from faultlab.transports.tls import lab_ca

    pem = lab_ca().cert_pem.bytes()
    return ApiResponse(200, "application/x-pem-file", pem, _NOSNIFF)


@dataclass(frozen=True)
class _Route:
    pattern: tuple[str, ...]
    methods: Mapping[str, Handler]
    locked: bool = True
    """Serialised with the other mutating routes (Toxiproxy's collection lock)."""


class _EveryMethod(Mapping[str, Handler]):
    """A gorilla/mux route without ``Methods()``: one handler for any method (``/metrics``)."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    def __getitem__(self, method: str) -> Handler:
        return self._handler

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


_UPDATE_PROXY = {"GET": _proxy_show, "POST": _proxy_update, "PATCH": _proxy_update}
_UPDATE_TOXIC = {"GET": _toxic_show, "POST": _toxic_update, "PATCH": _toxic_update}
ROUTES: tuple[_Route, ...] = (
    _Route(("reset",), {"POST": _reset}),
    _Route(("proxies",), {"GET": _proxy_index, "POST": _proxy_create}),
    _Route(("populate",), {"POST": _populate}),
    _Route(("proxies", "{proxy}"), {**_UPDATE_PROXY, "DELETE": _proxy_delete}),
    _Route(("proxies", "{proxy}", "toxics"), {"GET": _toxic_index, "POST": _toxic_create}),
    _Route(("proxies", "{proxy}", "toxics", "{toxic}"), {**_UPDATE_TOXIC, "DELETE": _toxic_delete}),
    _Route(("version",), {"GET": _version}, locked=False),
)
EXTENSION_ROUTES: tuple[_Route, ...] = (
    _Route(("faultlab", "events"), {"GET": _ext_events}, locked=False),
    _Route(("faultlab", "proxies", "{proxy}", "events"), {"GET": _ext_proxy_events}, False),
    _Route(("faultlab", "seed"), {"GET": _ext_seed}, locked=False),
    _Route(("faultlab", "toxics"), {"GET": _ext_toxics}, locked=False),
    _Route(("faultlab", "ca.pem"), {"GET": _ext_ca}, locked=False),
)


def _match(path: str, extensions: bool) -> tuple[_Route, dict[str, str]] | None:
    """gorilla/mux on the decoded path: ``{var}`` is ``[^/]+``, no trailing-slash folding."""
    if not path.startswith("/"):
        return None
    parts = path[1:].split("/")
    for route in ROUTES + (EXTENSION_ROUTES if extensions else ()):
        if len(route.pattern) != len(parts):
            continue
        params: dict[str, str] = {}
        for want, got in zip(route.pattern, parts, strict=True):
            if want.startswith("{"):
                if not got:
                    break
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            return route, params
    return None


# ---- request ids (xid, as Toxiproxy's hlog.RequestIDHandler) ----------------------
_XID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"
_xid_counter = itertools.count(int.from_bytes(os.urandom(3), "big"))
_xid_machine = os.urandom(3)


def _request_id() -> str:
    raw = (
        int(time.time()).to_bytes(4, "big")
        + _xid_machine
        + (os.getpid() & 0xFFFF).to_bytes(2, "big")
        + (next(_xid_counter) & 0xFFFFFF).to_bytes(3, "big")
    )
    number = int.from_bytes(raw, "big") << 4  # 96 bits -> 20 base32 digits (100 bits)
    return "".join(_XID_ALPHABET[(number >> (5 * i)) & 31] for i in range(19, -1, -1))


# ---- the entry point -------------------------------------------------------------
_locks: weakref.WeakKeyDictionary[ProxyEngine, asyncio.Lock] = weakref.WeakKeyDictionary()

Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]


def _header_map(headers: Headers) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, str] = {}
    for key, value in items:
        k = key.decode("latin-1") if isinstance(key, bytes) else key
        v = value.decode("latin-1") if isinstance(value, bytes) else value
        out[k.lower()] = v
    return out


async def handle(
    engine: ProxyEngine,
    method: str,
    path: str,
    body: bytes,
    headers: Headers,
    *,
    extensions: bool = True,
    metrics: Handler | None = None,
) -> ApiResponse:
    """Answer one request on the engine loop, exactly as Toxiproxy 2.12 would.

    ``path`` is the request target (query string allowed). Unrouted requests
    (404, 405) get Go's bare answers without the middleware, like gorilla/mux;
    routed ones get a request id and the browser check. ``extensions=False``
    hides the ``/faultlab/`` routes (a strict Toxiproxy double). ``metrics`` answers
    ``/metrics`` (:mod:`faultlab.proxy.metrics`); without it that path is a 404.
    """
    if path.startswith(("http://", "https://")):
        try:
            split = urlsplit(path)
        except ValueError as exc:  # e.g. "http://[::1/": Go's server refuses it before routing
            return error_response(400, f"malformed request target: {exc}")
        raw_path, query = split.path or "/", split.query
    else:
        raw_path, _, query = path.partition("?")
    # surrogateescape: a byte that is not UTF-8 (%FF) matches no name, as in Go, rather than
    # becoming U+FFFD and matching a proxy really named that
    decoded = unquote(raw_path, errors="surrogateescape")
    found = _match(decoded, extensions)
    if found is None and metrics is not None and decoded == "/metrics":
        # api.go registers /metrics only behind a metrics flag, and for every method
        found = _Route(("metrics",), _EveryMethod(metrics), locked=False), {}
    if found is None:
        return NOT_FOUND
    route, params = found
    handler = route.methods.get(method)
    if handler is None:
        return METHOD_NOT_ALLOWED
    extra = (("X-Toxiproxy-Request-Id", _request_id()), ("X-Faultlab-Version", __version__))
    response = await _dispatch(engine, route, handler, method, params, query, body, headers)
    return response._replace(headers=response.headers + extra)


async def _dispatch(
    engine: ProxyEngine,
    route: _Route,
    handler: Handler,
    method: str,
    params: dict[str, str],
    query: str,
    body: bytes,
    headers: Headers,
) -> ApiResponse:
    if _header_map(headers).get("user-agent", "").startswith("Mozilla/"):
        return FORBIDDEN  # Toxiproxy's anti-CSRF measure
    if len(body) > MAX_BODY:
        return error_response(413, f"request body too large: limit is {MAX_BODY} bytes")
    request = _Request(engine, method, params, parse_qs(query), body)
    if handler not in _BINDING:
        return await _run(route, handler, request)
    # binds or closes sockets: shielded, so a caller's timeout never stops it halfway, and
    # owned by the engine, whose close waits for it
    return await asyncio.shield(engine.spawn(_run(route, handler, request)))


_BINDING: frozenset[Handler] = frozenset(
    {_proxy_create, _proxy_update, _proxy_delete, _populate, _reset}
)


async def _run(route: _Route, handler: Handler, request: _Request) -> ApiResponse:
    try:
        if route.locked:
            lock = _locks.get(request.engine)
            if lock is None:
                lock = _locks[request.engine] = asyncio.Lock()
            async with lock:
                return await handler(request)
        return await handler(request)
    except _ApiError as exc:
        return error_response(exc.status, exc.message)
    except ProxyError as exc:
        return error_response(http_status(exc), str(exc))
    except FaultlabError as exc:
        return error_response(500, str(exc))
    except Exception as exc:
        log.exception("API %s %s failed", request.method, route.pattern)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
