"""XML-RPC value marshalling via the stdlib ``xmlrpc.client``.

A value is sent as a complete ``<methodResponse>`` with one param, a document
any XML-RPC implementation parses. Domain: ``bool``, ``int`` in
[-2**31, 2**31-1] (``<i4>``), finite ``float``, ``str`` of XML 1.0 characters,
``bytes`` (``<base64>``), naive ``datetime`` with whole seconds
(``<dateTime.iso8601>`` has no fraction or zone), ``list``, ``dict`` with
``str`` keys, and ``None`` only with ``allow_none`` (the ``<nil/>`` extension).

We escape ``\\r`` as ``&#13;``: XML end-of-line handling would otherwise turn
it into ``\\n``. Decoding refuses DTDs (entity expansion is not XML-RPC) and,
in strict mode, values we could not send back (``<i8>``, ``<bigdecimal>``, ...).
"""

from __future__ import annotations

import datetime as _dt
import re
import xmlrpc.client
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn
from xml.parsers import expat

from faultlab.codecs._rules import ValueRules, nested_list
from faultlab.codecs.base import OutsideExample, ValueCodec
from faultlab.codecs.errors import DecodeError, EncodeError

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["INT_RANGE", "XML_ILLEGAL", "XmlRpcCodec", "loads"]

INT_RANGE = (xmlrpc.client.MININT, xmlrpc.client.MAXINT)

XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 cannot contain at all, not even as character references."""


UNMARSHAL_ERRORS: tuple[type[BaseException], ...] = (
    expat.ExpatError,
    xmlrpc.client.ResponseError,
    ValueError,  # bad <int>, <double>, <base64>, <dateTime.iso8601> text
    TypeError,  # a <fault> struct without faultCode/faultString
    IndexError,  # a struct <member> without <value>, </array> without <array>
    KeyError,
    AttributeError,
    ArithmeticError,  # <bigdecimal> that is not a number, overflow
    RecursionError,
)
"""What ``xmlrpc.client``'s unmarshaller raises on malformed documents (it validates little)."""


def _refuse_dtd(*_: object) -> NoReturn:
    raise DecodeError("xmlrpc: DTDs and entity declarations are not allowed in XML-RPC")


def loads(data: bytes) -> tuple[tuple[Any, ...], str | None]:
    """``xmlrpc.client.loads`` (builtin types) that refuses DTDs and raises typed errors.

    Returns (params, method name or None). A ``<fault>`` still raises
    ``xmlrpc.client.Fault``: it is a valid document the caller interprets. Anything
    malformed raises :class:`DecodeError`. DTDs are refused in the parser itself
    (whatever the document's encoding), so entity expansion never starts.
    """
    unmarshaller = xmlrpc.client.Unmarshaller(use_builtin_types=True)
    parser = expat.ParserCreate(None, None)
    parser.StartElementHandler = unmarshaller.start
    parser.EndElementHandler = unmarshaller.end
    parser.CharacterDataHandler = unmarshaller.data
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    unmarshaller.xml(None, None)  # type: ignore[arg-type]  # as the stdlib: expat decodes
    try:
        parser.Parse(data, True)
        return unmarshaller.close(), unmarshaller.getmethodname()
    except (DecodeError, xmlrpc.client.Fault):
        raise
    except UNMARSHAL_ERRORS as exc:
        raise DecodeError(f"xmlrpc: malformed document: {type(exc).__name__}: {exc}") from None


def _whole_naive_seconds(value: _dt.datetime) -> str | None:
    if value.tzinfo is not None:
        return "dateTime.iso8601 has no time zone (comes back naive)"
    if value.microsecond:
        return "dateTime.iso8601 has whole seconds (microseconds are dropped)"
    if value.fold:
        return "fold=1 is not carried (comes back as fold=0)"
    return None


class XmlRpcCodec(ValueCodec):
    """XML-RPC ``<value>`` marshalling, bytes as ``<base64>`` decoded back to ``bytes``."""

    name: ClassVar[str] = "xmlrpc"
    decode_errors = (*ValueCodec.decode_errors, *UNMARSHAL_ERRORS, xmlrpc.client.Error)

    def __init__(self, *, allow_none: bool = False, **options: Any) -> None:
        self.allow_none = allow_none
        super().__init__(**options)

    def make_rules(self) -> ValueRules:
        leaves: set[type] = {bool, int, float, str, bytes, _dt.datetime}
        if self.allow_none:
            leaves.add(type(None))
        return ValueRules(
            leaf_types=frozenset(leaves),
            key_types=frozenset({str}),
            max_depth=self.max_depth,
            int_range=INT_RANGE,
            finite_floats=True,
            bad_text=XML_ILLEGAL,
            extra={_dt.datetime: _whole_naive_seconds},
            hints={
                type(None): "needs allow_none=True (<nil/> extension)",
                tuple: "XML-RPC arrays come back as list",
                bytearray: "comes back as bytes",
                xmlrpc.client.Binary: "comes back as bytes",
                xmlrpc.client.DateTime: "comes back as datetime",
            },
        )

    def _encode(self, value: Any) -> bytes:
        text = xmlrpc.client.dumps((value,), methodresponse=True, allow_none=self.allow_none)
        return text.replace("\r", "&#13;").encode("utf-8")

    def _decode(self, data: bytes) -> Any:
        params, method = loads(data)
        if method is not None:
            raise DecodeError(f"{self.name}: expected a value, got a call to {method!r}")
        if len(params) != 1:
            raise DecodeError(f"{self.name}: expected one param, got {len(params)}")
        return params[0]

    def domain(self) -> SearchStrategy[Any]:
        from hypothesis import strategies as st

        text = st.text(st.characters(codec="utf-8").filter(lambda c: not XML_ILLEGAL.match(c)))
        leaves: SearchStrategy[Any] = (
            st.booleans()
            | st.integers(*INT_RANGE)
            | st.floats(allow_nan=False, allow_infinity=False)
            | text
            | st.binary()
            | st.datetimes().map(lambda d: d.replace(microsecond=0, fold=0))
        )
        if self.allow_none:
            leaves |= st.none()
        return st.recursive(
            leaves,
            lambda children: (
                st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4)
            ),
            max_leaves=12,
        )

    def outside_domain_examples(self) -> list[OutsideExample]:
        examples = [
            OutsideExample(2**31, EncodeError, "above <i4>"),
            OutsideExample(-(2**31) - 1, EncodeError, "below <i4>"),
            OutsideExample(float("nan"), EncodeError, "not a valid <double>"),
            OutsideExample("a\x00b", EncodeError, "NUL cannot appear in XML"),
            OutsideExample("\ufffe", EncodeError, "not an XML character"),
            OutsideExample("\ud800", EncodeError, "lone surrogate"),
            OutsideExample((1, 2), EncodeError, "would come back as [1, 2]"),
            OutsideExample({1: 2}, EncodeError, "struct member names are strings"),
            OutsideExample(_dt.datetime(2024, 1, 2, 3, 4, 5, 6), EncodeError, "µs dropped"),
            OutsideExample(_dt.datetime(2024, 1, 2, tzinfo=_dt.UTC), EncodeError, "zone dropped"),
            OutsideExample(xmlrpc.client.Binary(b"x"), EncodeError, "would come back as bytes"),
            OutsideExample(nested_list(self.max_depth + 1), EncodeError, "deeper than max_depth"),
        ]
        if not self.allow_none:
            examples.append(OutsideExample(None, EncodeError, "needs allow_none=True"))
        return examples
