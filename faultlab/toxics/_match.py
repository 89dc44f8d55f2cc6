"""Which requests a toxic acts on, and which of those: the matching attributes toxics share.

Why: a black-box test wants "the second ``POST /items/*`` fails, then it recovers", or
"every request carrying an ``Idempotency-Key`` fails twice", not "frame 3 of connection 1".
A toxic declares :data:`MATCH_ATTRIBUTES` (or a subset) next to its own, builds one
:class:`RequestMatcher` from its attributes, and for each request asks

1. **does it match?** :meth:`RequestMatcher.mismatch` compares the HTTP method
   (``match_method``), the path without query (``match_path``), one header
   (``match_header``, ``"Name: value-glob"``) and the RPC method read with the proxy's
   protocol (``match_rpc_method``); globs are :func:`fnmatch.fnmatchcase` patterns (``*``
   also matches ``/``), the HTTP method and header names compare case-insensitively;
2. **does it act on this match?** :meth:`RequestMatcher.fire` counts the match (per
   connection, or across the proxy with ``scope="proxy"``) and applies the selection: only
   the ``nth`` match, the first ``times`` matches, a ``sequence`` such as ``"fail,fail,pass"``
   (``"FFP"``) then pass, or else every ``every``-th match. At most one of ``nth``,
   ``times``, ``sequence`` is set, and ``every`` only counts when none is.

Callers journal each decision: a ``pass`` with ``reason`` the criterion that excluded the
request (``method``, ``path``, ``header``, ``rpc_method``) or the selection that skipped it
(``nth``, ``times``, ``sequence``, ``every``) and ``match=n``; the fault itself with ``match=n``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from faultlab.codecs.framing.httpinfo import HttpHeadInfo
from faultlab.toxics import _rpcwire as wire
from faultlab.toxics._common import SCOPES, count
from faultlab.toxics.base import Attr, Chunk, InvalidToxic, ToxicContext

__all__ = [
    "HTTP_MATCHES",
    "MATCH_ATTRIBUTES",
    "MAX_PATTERN",
    "MAX_SEQUENCE",
    "MAX_TIMES",
    "SELECTIONS",
    "RequestMatcher",
    "parse_header_match",
    "parse_sequence",
    "rpc_methods",
]

INT32 = 2**31 - 1
MAX_PATTERN = 1024
"""Longest glob or header spec accepted (a longer one is a mistake, not a pattern)."""
MAX_SEQUENCE = 1000
"""Most steps in a ``sequence``."""
MAX_TIMES = 1_000_000
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
"""An HTTP field name (RFC 9110 ``token``)."""

MATCH_ATTRIBUTES: dict[str, Attr] = {
    "match_method": Attr(
        str, "*", help="glob over the HTTP method, case-insensitive (HTTP framing, upstream)"
    ),
    "match_path": Attr(
        str, "*", help="glob over the request path without its query; '*' also matches '/'"
    ),
    "match_header": Attr(
        str, "", help="'Name: value-glob': the request carries that header (empty: any request)"
    ),
    "match_rpc_method": Attr(
        str,
        "*",
        help="glob over the RPC method read with the proxy's protocol (any call of a batch)",
    ),
    "nth": Attr(int, 0, 0, INT32, "only the Nth matching request (0: not used)", options=(0,)),
    "times": Attr(
        int, 0, 0, MAX_TIMES, "the first N matching requests, then pass (0: not used)", options=(0,)
    ),
    "sequence": Attr(
        str, "", help="per matching request in order, then pass: 'fail,fail,pass' or 'FFP'"
    ),
    "every": Attr(int, 1, 1, INT32, "every Nth matching request (1: all)", generate=(4, 1)),
    "scope": Attr(
        str,
        "connection",
        help="count matching requests per connection or per proxy",
        choices=SCOPES,
    ),
}
"""Every matching attribute, each with its default meaning "any request" / "not used"."""
HTTP_MATCHES = ("match_method", "match_path", "match_header")
"""The attributes that read an HTTP request's head (HTTP framing, upstream stream only)."""
SELECTIONS = ("nth", "times", "sequence")
"""The selections that exclude each other (``every`` applies when none is set)."""
_ANY = {"match_method": "*", "match_path": "*", "match_header": "", "match_rpc_method": "*"}
_STEPS = {"fail": True, "f": True, "pass": False, "p": False}


def parse_sequence(toxic: str, text: str, name: str = "sequence") -> tuple[bool, ...]:
    """``"fail,fail,pass"``, ``"fail pass"`` or ``"FFP"`` as steps (True: fail); ``""``: none."""
    stripped = text.strip(" \t,")
    if not stripped:
        return ()
    example = "e.g. 'fail,fail,pass' or 'FFP'"
    tokens = [t for t in re.split(r"[\s,]+", stripped) if t]
    if (
        len(tokens) == 1
        and tokens[0].lower() not in _STEPS
        and set(tokens[0].upper()) <= {"F", "P"}
    ):
        tokens = list(tokens[0])  # the compact form: one letter per step
    if len(tokens) > MAX_SEQUENCE:
        raise InvalidToxic(
            f"{toxic}: attribute {name!r} has {len(tokens)} steps, at most {MAX_SEQUENCE}"
        )
    steps = []
    for position, token in enumerate(tokens, 1):
        step = _STEPS.get(token.lower())
        if step is None:
            raise InvalidToxic(
                f"{toxic}: attribute {name!r} lists fail/pass steps ({example}); "
                f"step {position} is {token!r}"
            )
        steps.append(step)
    if not any(steps):
        raise InvalidToxic(f"{toxic}: attribute {name!r} never fails: {text!r} ({example})")
    return tuple(steps)


def parse_header_match(toxic: str, text: str, name: str = "match_header") -> tuple[str, str] | None:
    """``"Name: value-glob"`` as (lower-case name, glob); ``""``: any request."""
    if not text.strip():
        return None
    field_name, sep, glob = text.partition(":")
    field_name, glob = field_name.strip(), glob.strip()
    if not sep or not TOKEN.fullmatch(field_name):
        raise InvalidToxic(
            f"{toxic}: attribute {name!r} must be 'Name: value-glob' "
            f"(e.g. 'Idempotency-Key: *'), got {text!r}"
        )
    if not glob:
        raise InvalidToxic(
            f"{toxic}: attribute {name!r} needs a value glob after {field_name + ':'!r} "
            "('*': any value)"
        )
    return field_name.lower(), glob


def _pattern(toxic: str, name: str, value: str) -> str:
    if len(value) > MAX_PATTERN:
        raise InvalidToxic(
            f"{toxic}: attribute {name!r} is {len(value)} characters long, at most {MAX_PATTERN}"
        )
    if name != "match_header" and not value:
        raise InvalidToxic(f"{toxic}: attribute {name!r} must not be empty ('*': any)")
    return value


def rpc_methods(protocol: str | None, data: bytes, *, http: bool) -> list[str] | None:
    """The RPC methods of the request(s) in ``data``; ``None`` if it is not a request of it."""
    if protocol is None:
        return None
    message = wire.decode(protocol, data, http=http, request=True)
    if message is None or not message.request:
        return None
    return [item.method or "" for item in message.items]


@dataclass(frozen=True, slots=True)
class RequestMatcher:
    """One toxic's matching criteria and selection, validated (build with ``from_attributes``)."""

    http_method: str = "*"
    path: str = "*"
    header: tuple[str, str] | None = None
    rpc_method: str = "*"
    nth: int = 0
    times: int = 0
    sequence: tuple[bool, ...] = ()
    every: int = 1
    scope: str = "connection"
    key: str = "matched"
    """Where the count lives in ``ctx.state`` / ``ctx.shared``."""
    rpc_attribute: str = "match_rpc_method"
    """The toxic's name for the RPC method glob (``rpc_error`` calls it ``method``)."""

    @classmethod
    def from_attributes(
        cls,
        toxic: str,
        attributes: Mapping[str, Any],
        *,
        rpc_attribute: str = "match_rpc_method",
        times: int | None = None,
        key: str = "matched",
    ) -> RequestMatcher:
        """Validate and build; attributes a toxic does not declare keep their "any" default.

        ``times`` overrides the ``times`` attribute (``fail_first``'s ``count``) unless a
        ``sequence`` is set. Raises :class:`InvalidToxic` with the attribute's name.
        """
        patterns = {
            name: _pattern(toxic, name, str(attributes.get(name, default)))
            for name, default in _ANY.items()
            if name != "match_rpc_method"
        }
        rpc_glob = _pattern(toxic, rpc_attribute, str(attributes.get(rpc_attribute, "*")))
        sequence = parse_sequence(toxic, str(attributes.get("sequence", "")))
        selected = {
            "nth": int(attributes.get("nth", 0)),
            "times": int(attributes.get("times", 0)),
            "sequence": bool(sequence),
        }
        chosen = [name for name in SELECTIONS if selected[name]]
        if len(chosen) > 1:
            raise InvalidToxic(
                f"{toxic}: {' and '.join(chosen)} exclude each other: "
                "set at most one of nth, times, sequence"
            )
        every = int(attributes.get("every", 1))
        if chosen and every != 1:
            raise InvalidToxic(
                f"{toxic}: every={every} cannot combine with {chosen[0]}: "
                "every selects among all matching requests"
            )
        return cls(
            http_method=patterns["match_method"].upper(),
            path=patterns["match_path"],
            header=parse_header_match(toxic, patterns["match_header"]),
            rpc_method=rpc_glob,
            nth=selected["nth"],
            times=selected["times"] if times is None or sequence else times,
            sequence=sequence,
            every=every,
            scope=str(attributes.get("scope", "connection")),
            key=key,
            rpc_attribute=rpc_attribute,
        )

    # ---- what it needs ------------------------------------------------------------
    @property
    def http_criteria(self) -> list[str]:
        """The HTTP attributes set to something else than "any"."""
        set_ = {
            "match_method": self.http_method != "*",
            "match_path": self.path != "*",
            "match_header": self.header is not None,
        }
        return [name for name in HTTP_MATCHES if set_[name]]

    @property
    def needs_http(self) -> bool:
        return bool(self.http_criteria)

    @property
    def needs_rpc(self) -> bool:
        """Whether requests must be decoded with the protocol to be matched."""
        return self.rpc_method != "*"

    @property
    def selection(self) -> str:
        """Which selection applies: ``nth``, ``times``, ``sequence`` or ``every``."""
        if self.nth:
            return "nth"
        if self.sequence:
            return "sequence"
        if self.times:
            return "times"
        return "every"

    def unsupported_reason(self, *, stream: str, framing: str | None) -> str | None:
        """Why these criteria cannot be read on such a proxy and stream, or ``None``."""
        names = ", ".join(self.http_criteria)
        if names and framing not in ("http", "h2"):
            return (
                f'{names} match HTTP requests: create the proxy with framing="http" '
                '(or "h2", or protocol="grpc")'
            )
        if names and stream != "upstream":
            return (
                f"{names} match requests, which travel on the upstream stream: "
                'add the toxic with stream="upstream" (responses carry no method, path '
                "or request header)"
            )
        if self.needs_rpc and stream == "downstream":
            return (
                "replies carry no method name: "
                f"on the downstream stream {self.rpc_attribute!r} must be '*'"
            )
        return None

    # ---- deciding -----------------------------------------------------------------
    def mismatch(
        self, head: HttpHeadInfo | None, rpc_method: str | Iterable[str] | None = None
    ) -> str | None:
        """The criterion that excludes this request (``method``, ``path``, ``header``,
        ``rpc_method``), or ``None`` if it matches.

        ``head`` is the request's HTTP head (``None``: not HTTP, so the HTTP criteria must
        be "any"); ``rpc_method`` its RPC method(s) (``None``: unknown, so the RPC glob
        must be ``*``); a batch matches if any call does.
        """
        if self.needs_http:
            if head is None or head.method is None:
                return self.http_criteria[0].removeprefix("match_")
            if not fnmatchcase(head.method.upper(), self.http_method):
                return "method"
            if not fnmatchcase(head.path or "", self.path):
                return "path"
            if self.header is not None:
                value = head.header(self.header[0])
                if value is None or not fnmatchcase(value, self.header[1]):
                    return "header"
        if self.needs_rpc:
            if rpc_method is None:
                return "rpc_method"
            methods = (rpc_method,) if isinstance(rpc_method, str) else tuple(rpc_method)
            if not any(fnmatchcase(m, self.rpc_method) for m in methods):
                return "rpc_method"
        return None

    def matches(
        self, head: HttpHeadInfo | None, rpc_method: str | Iterable[str] | None = None
    ) -> bool:
        return self.mismatch(head, rpc_method) is None

    def decide(self, n: int) -> bool:
        """Whether the ``n``-th match (from 1) is acted on."""
        if self.nth:
            return n == self.nth
        if self.sequence:
            return n <= len(self.sequence) and self.sequence[n - 1]
        if self.times:
            return n <= self.times
        return n % self.every == 0

    def fire(self, ctx: ToxicContext) -> tuple[bool, int]:
        """Count one more match (per connection or proxy) and say whether to act on it."""
        n = count(ctx, self.scope, self.key)
        return self.decide(n), n

    def select(
        self,
        ctx: ToxicContext,
        chunk: Chunk,
        head: HttpHeadInfo | None,
        rpc_method: str | Iterable[str] | None,
        fields: dict[str, Any],
        numbered: tuple[str, ...] = (),
    ) -> int | None:
        """The match number to act on, or ``None`` after journaling why this request passes
        (a criterion that excludes it, or the selection that skips it: that record carries
        the match number as ``match`` and as each of ``numbered``)."""
        reason = self.mismatch(head, rpc_method)
        if reason is not None:
            ctx.record("pass", chunk, reason=reason, **fields)
            return None
        fire, n = self.fire(ctx)
        if not fire:
            extra = dict.fromkeys(numbered, n)
            ctx.record("pass", chunk, reason=self.selection, match=n, **extra, **fields)
            return None
        return n
