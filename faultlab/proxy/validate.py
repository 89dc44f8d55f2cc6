"""What a proxy may be called and where it may listen or connect, checked before anything acts.

The API and the library (:class:`~faultlab.proxy.engine.ProxyEngine`) both call
these checks first, so a proxy that could not be addressed in a URL, shown as
JSON, or parsed by the transport layer is never constructed, and a refused
request leaves nothing behind. Each check raises :class:`InvalidProxyRequest` (the
API answers 400) with a message that names the field and the reason.

The lines are drawn at Toxiproxy's: a name or an address Toxiproxy 2.12 would
accept *and could use* stays accepted. A ``host:port`` without a port (or one
that cannot bind) is left to the bind or the dial, which fail as Toxiproxy's do
(a :class:`ListenFailed`); only what cannot be parsed at all is refused here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from faultlab import transports
from faultlab.codecs.framing import framer_names
from faultlab.errors import FaultlabError
from faultlab.proxy.proxy import InvalidProxyRequest, to_uri
from faultlab.proxy.udprelay import options_problem
from faultlab.toxics._common import INT64_MAX, INT64_MIN
from faultlab.toxics.base import InvalidToxic, get_toxic_class

__all__ = [
    "HOST_SCHEMES",
    "MAX_NAME",
    "MAX_QUERY_INT",
    "address_problem",
    "check_address",
    "check_framing",
    "check_name",
    "check_protocol",
    "go_struct",
    "name_problem",
    "query_uint",
    "toxic_attributes",
]

MAX_NAME = 2048
"""Longest proxy or toxic name: two names percent-encoded at 12 bytes per character (4 UTF-8
bytes, each ``%XX``) still fit the API server's 64 KiB request head."""
MAX_QUERY_INT = 2**63 - 1
"""Largest integer query parameter (a Go int64, like every counter Toxiproxy exposes)."""
HOST_SCHEMES = frozenset({"tcp", "tls", "udp"})
"""Schemes whose address is ``host:port``; the others name a path or an object."""

_NAME_BAD = re.compile("[/?#\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_ADDRESS_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")


def _show(text: str, limit: int = 80) -> str:
    """A quoted, escaped, bounded rendering of user input for an error message."""
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


def _char_problem(char: str) -> str:
    if char == "/":
        return "'/' separates URL path segments, so the name could never be addressed"
    if char in "?#":
        return f"{char!r} ends a URL path, and Toxiproxy clients put names in URLs unescaped"
    if "\ud800" <= char <= "\udfff":
        return f"it contains a lone surrogate ({char!r}), which UTF-8 cannot encode"
    return f"it contains the control character {char!r}"


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a proxy or a toxic, or None if it can."""
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME:
        return f"it is longer than {MAX_NAME} characters"
    if name in (".", ".."):
        return "'.' and '..' are dot segments, which URL clients remove from paths"
    bad = _NAME_BAD.search(name)
    return None if bad is None else _char_problem(bad.group())


def check_name(name: object, kind: str = "proxy") -> str:
    """``name`` if any client can use it in ``/proxies/{name}``; else
    :class:`InvalidProxyRequest`."""
    if not isinstance(name, str):
        raise InvalidProxyRequest(
            f"invalid {kind} name: a name is a string, got {type(name).__name__}"
        )
    problem = name_problem(name)
    if problem is not None:
        raise InvalidProxyRequest(f"invalid {kind} name {_show(name)}: {problem}")
    return name


def _host_problem(host: str) -> str | None:
    """An IP literal or a DNS name (labels of letters, digits, ``-``, ``_``; IDNA for the
    rest): what a resolver can look up without raising instead of failing."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        return f"host {_show(host)} is not a valid host name ({exc.__cause__ or exc})"
    bare = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    if len(bare) > 253:
        return f"host {_show(host)} is longer than 253 characters"
    for label in bare.split("."):
        if not _LABEL.fullmatch(label):
            return (
                f"host {_show(host)} is not a valid host name (labels are 1 to 63 letters, "
                "digits, '-' or '_')"
            )
    return None


def _hostport_problem(hostport: str) -> str | None:
    """Go's ``SplitHostPort`` rules, then the host and a numeric port (0 to 65535)."""
    port: str | None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            return "missing ']' in address"
        host, rest = hostport[1:end], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            return f"unexpected {_show(rest)} after ']' in address"
        port = rest[1:] if rest else None
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            return f"{_show(host)} in brackets is not an IPv6 address"
        if literal.version != 6:
            return "only an IPv6 address goes in brackets"
    else:
        if ":" in hostport:
            host, _, port = hostport.rpartition(":")
        else:
            host, port = hostport, None
        if ":" in host:
            return "too many colons in address (an IPv6 host goes in brackets: [::1]:8080)"
        if host:
            problem = _host_problem(host)
            if problem is not None:
                return problem
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) < 65536):
        return f"invalid port {_show(port)}: a port is a number from 0 to 65535"
    return None


def address_problem(address: str) -> str | None:
    """Why ``address`` (Toxiproxy's ``host:port`` or a faultlab URI) can never be used as a
    listen or upstream address, or None. A missing port is not a problem here: the bind or
    the dial reports it, as Toxiproxy's do."""
    bad = _ADDRESS_BAD.search(address)
    if bad is not None:
        return _char_problem(bad.group())
    if "://" not in address:
        problem = _hostport_problem(address)
        if problem is not None:
            return problem
    uri = to_uri(address)
    try:
        parsed = transports.parse_address(uri)
        transports.get(parsed.scheme)
    except (FaultlabError, ValueError) as exc:
        return str(exc)
    if "://" in address and parsed.scheme in HOST_SCHEMES:
        netloc = urlsplit(uri).netloc
        if "@" in netloc:
            return "a user name has no meaning in a listen or upstream address"
        return _hostport_problem(netloc)
    return None


def check_address(address: object, role: str) -> str:
    """``address`` if it is a well-formed ``role`` (``listen`` or ``upstream``);
    else :class:`InvalidProxyRequest`."""
    if not isinstance(address, str):
        kind = type(address).__name__
        raise InvalidProxyRequest(f"invalid {role} address: an address is a string, got {kind}")
    problem = address_problem(address)
    if problem is None and address.startswith("udp://"):  # the plain UDP relay's bounds
        options = transports.parse_address(address).options
        problem = options_problem(options) if role == "listen" else None
        if options and role != "listen":
            problem = "udp options (idle_timeout, max_flows, ...) belong on the listen address"
    if problem is not None:
        raise InvalidProxyRequest(f"invalid {role} address {_show(address)}: {problem}")
    return address


def check_framing(framing: str | None) -> None:
    """faultlab's ``framing``: one of the registered framers (frame-aware toxics need one)."""
    if framing is not None and framing not in framer_names():
        known = ", ".join(sorted(framer_names()))
        raise InvalidProxyRequest(f"unknown framing {_show(framing)}: known framings are {known}")


def check_protocol(protocol: str | None) -> None:
    """faultlab's ``protocol``: one of the registered RPC protocols (protocol-aware toxics
    speak it, so an unknown one would only fail later, when a toxic is added)."""
    if protocol is None:
        return
    from faultlab.rpc.base import protocol_names

    known = protocol_names()
    if protocol not in known:
        names = ", ".join(sorted(known))
        raise InvalidProxyRequest(
            f"unknown protocol {_show(protocol)}: known protocols are {names}"
        )


def query_uint(values: list[str] | None, name: str, default: int) -> int:
    """The last ``name=`` value as an integer from 0 to :data:`MAX_QUERY_INT` (ASCII digits
    only: ``int()`` would take other scripts' digits and choke on 5,000 of them)."""
    if not values:
        return default
    text = values[-1]
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > MAX_QUERY_INT:
        raise InvalidProxyRequest(
            f"query parameter {name!r} must be an integer from 0 to {MAX_QUERY_INT}, "
            f"got {_show(text)}"
        )
    return int(text)


TOXIPROXY_STRUCTS: dict[str, tuple[str, dict[str, str]]] = {
    "latency": ("LatencyToxic", {"latency": "int64", "jitter": "int64"}),
    "bandwidth": ("BandwidthToxic", {"rate": "int64"}),
    "slow_close": ("SlowCloseToxic", {"delay": "int64"}),
    "timeout": ("TimeoutToxic", {"timeout": "int64"}),
    "reset_peer": ("ResetToxic", {"timeout": "int64"}),
    "slicer": ("SlicerToxic", {"average_size": "int", "size_variation": "int", "delay": "int"}),
    "limit_data": ("LimitDataToxic", {"bytes": "int64"}),
    "noop": ("NoopToxic", {}),
}
"""Toxiproxy 2.12's toxic structs (``toxics/*.go``): the Go name and each field's Go type, so
a value Go cannot store is refused with Go's own words."""


def go_struct(type_name: str) -> str:
    """The Go type an update decodes ``attributes`` into (``toxics.LatencyToxic``)."""
    known = TOXIPROXY_STRUCTS.get(type_name)
    if known is not None:
        return f"toxics.{known[0]}"
    try:
        return f"toxics.{get_toxic_class(type_name).__name__}"
    except InvalidToxic:
        return "toxics.NoopToxic"


def _go_int_problem(value: Any) -> str | None:
    """What Go's decoder calls ``value`` when it cannot store it in an int64, or None.

    An exact-integer float (``100.0``) is stored, a deviation: Python clients send them."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, float):
        if not value.is_integer():  # also the infinities and NaN
            return f"number {value!r}"
        value = int(value)
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return f"number {value}"
    return None


def toxic_attributes(type_name: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """``attributes`` as Toxiproxy's decoder takes them: ``null`` leaves an attribute alone, and
    a value one of Toxiproxy's toxics cannot store (a string, a fraction, beyond int64) is
    :class:`InvalidProxyRequest` worded as Go words it. Every value Go stores is passed on;
    each toxic gives it a meaning. An unknown ``type_name`` passes through untouched (the
    caller refuses the type)."""
    try:
        cls = get_toxic_class(type_name)
    except InvalidToxic:
        return dict(attributes)
    known = {name.lower(): name for name in cls.attributes_spec}
    struct_name, go_fields = TOXIPROXY_STRUCTS.get(type_name, ("", {}))
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        name = known.get(key.lower())
        if value is None and (name is not None or cls.ignores_unknown_attributes):
            continue  # Go's decoder leaves a field alone for null
        go_type = go_fields.get(name or "")
        problem = None if go_type is None else _go_int_problem(value)
        if problem is not None:
            raise InvalidProxyRequest(
                f"bad request body: json: cannot unmarshal {problem} into Go struct field "
                f"{struct_name}.attributes.{name} of type {go_type}"
            )
        out[key] = value
    return out
