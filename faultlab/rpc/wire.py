"""Small shared pieces of the protocol modules: the wire error, code-to-kind mapping, and
the guards every decoder puts between a peer's bytes and the rest of faultlab.

A peer controls how deep its values nest and what text they hold; the guards bound the
first (``MAX_DEPTH``, checked without recursion) and describe values in error messages
without recursing or echoing unencodable text.
"""

from __future__ import annotations

import json
import reprlib
from typing import Any

from faultlab.codecs.base import DEFAULT_MAX_DEPTH
from faultlab.errors import RemoteProtocolError
from faultlab.rpc.errors import KINDS

__all__ = [
    "JSON_ENCODE_ERRORS",
    "MAX_DEPTH",
    "WireError",
    "describe",
    "error_kind_for_code",
    "exceeds_depth",
    "loads_json",
    "printable",
]

MAX_DEPTH = DEFAULT_MAX_DEPTH
"""Deepest list/dict nesting a server accepts in a request (and a client in a reply)."""

JSON_ENCODE_ERRORS: tuple[type[BaseException], ...] = (TypeError, ValueError, RecursionError)
"""What ``json.dumps(...).encode()`` raises for values JSON cannot carry (incl. lone
surrogates: ``UnicodeEncodeError`` is a ``ValueError``)."""


class WireError(RemoteProtocolError):
    """The peer's message breaks the protocol (not JSON, wrong shape, bad header)."""


_KIND_BY_CODE = {cls.default_code: kind for kind, cls in KINDS.items()}


def error_kind_for_code(code: int) -> str:
    """Standard codes (JSON-RPC, XML-RPC interop spec) map to kinds; others are application."""
    return _KIND_BY_CODE.get(code, "application_error")


def exceeds_depth(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists/dicts in ``value`` nest deeper than ``limit`` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is dict:
            children = node.values()
        elif kind is list or kind is tuple:
            children = node
        else:
            continue
        if depth > limit:
            return True
        for child in children:
            child_kind = type(child)
            if child_kind is list or child_kind is dict or child_kind is tuple:
                stack.append((child, depth + 1))
    return False


def loads_json(data: bytes | str, what: str = "message", *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` with every failure a :class:`WireError`, nesting bounded by ``max_depth``.

    The stdlib parser recurses, so very deep input raises ``RecursionError`` (caught here);
    input that parses but nests deeper than ``max_depth`` is refused too, so later code
    (dispatch, re-encoding, ``repr``) never recurses that far.
    """
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise WireError(f"{what} is not JSON: {printable(str(exc))}") from None
    if exceeds_depth(value, max_depth):
        raise WireError(f"{what} nests deeper than {max_depth}")
    return value


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = 6


def describe(value: Any) -> str:
    """A short, bounded description of a peer's value for error messages."""
    try:
        return printable(_REPR.repr(value))
    except Exception:  # a peer's value must never break the error path
        return f"<{type(value).__name__}>"


def printable(text: str) -> str:
    """``text`` with lone surrogates escaped, so any encoder can carry it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
