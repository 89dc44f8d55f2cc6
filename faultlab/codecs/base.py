"""What a codec is, its declared lossless domain, and the registry by name.

A codec turns one value into bytes and back, with no I/O. Each declares the
set of values it round-trips unchanged (``domain()``, a Hypothesis strategy)
and documents what happens outside it (``outside_domain_examples()``): a typed
error, never a silent change. ``same`` is the equality those promises use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from faultlab._registry import Registry
from faultlab.codecs._rules import ValueRules, find_violation
from faultlab.codecs.equality import explain_difference, same
from faultlab.codecs.errors import DecodeError, EncodeError, UnknownCodec
from faultlab.errors import LocalProtocolError

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_SIZE",
    "Codec",
    "OutsideExample",
    "ValueCodec",
    "codec_names",
    "explain_difference",
    "get_codec",
    "register_codec",
    "same",
]

DEFAULT_MAX_SIZE = 16 * 1024 * 1024
"""Largest encoded message a decoder accepts (bytes); matches the framings' default."""

DEFAULT_MAX_DEPTH = 100
"""Deepest nesting of lists/dicts accepted both ways (protobuf's own default is 100)."""


class OutsideExample(NamedTuple):
    """A value outside a codec's domain and the error encoding it raises."""

    value: Any
    raises: type[Exception]
    reason: str


class Codec(ABC):
    """Serialization format: ``decode(encode(v))`` is ``same`` as ``v`` for ``v`` in ``domain()``.

    ``encode`` raises :class:`EncodeError` (our misuse) for values it cannot
    carry unchanged; ``decode`` raises only :class:`DecodeError` (the peer's
    fault) on any bytes whatsoever.
    """

    name: ClassVar[str]

    @abstractmethod
    def encode(self, value: Any) -> bytes:
        """The wire form of ``value``."""

    @abstractmethod
    def decode(self, data: bytes) -> Any:
        """The value ``data`` encodes; :class:`DecodeError` on anything malformed."""

    @abstractmethod
    def domain(self) -> SearchStrategy[Any]:
        """A Hypothesis strategy for values this codec round-trips unchanged."""

    @abstractmethod
    def outside_domain_examples(self) -> list[OutsideExample]:
        """Values just outside the domain, each with the error ``encode`` raises."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ValueCodec(Codec):
    """A codec for plain Python values, guarded by :class:`ValueRules`.

    With ``strict`` (the default) values are checked against the domain both
    before encoding and after decoding; ``strict=False`` skips that walk and
    leaves the library's own behaviour (faster, but outside-domain values may
    change silently). Library errors are always wrapped in our typed errors.
    """

    encode_errors: tuple[type[BaseException], ...] = (
        ValueError,
        TypeError,
        OverflowError,
        RecursionError,
    )
    decode_errors: tuple[type[BaseException], ...] = (
        ValueError,
        TypeError,
        OverflowError,
        RecursionError,
    )

    def __init__(
        self,
        *,
        strict: bool = True,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_size: int = DEFAULT_MAX_SIZE,
    ) -> None:
        if max_depth < 1 or max_size < 1:
            raise ValueError("max_depth and max_size must be positive")
        self.strict = strict
        self.max_depth = max_depth
        self.max_size = max_size
        self.rules = self.make_rules()

    @abstractmethod
    def make_rules(self) -> ValueRules:
        """This codec's lossless domain as data."""

    @abstractmethod
    def _encode(self, value: Any) -> bytes: ...

    @abstractmethod
    def _decode(self, data: bytes) -> Any: ...

    def encode(self, value: Any) -> bytes:
        if self.strict:
            problem = find_violation(value, self.rules)
            if problem is not None:
                raise EncodeError(f"{self.name} cannot carry {problem}")
        try:
            return self._encode(value)
        except self.encode_errors as exc:
            raise EncodeError(f"{self.name} cannot encode: {exc}") from exc

    def decode(self, data: bytes) -> Any:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise LocalProtocolError(f"decode expects bytes, got {type(data).__name__}")
        if len(data) > self.max_size:
            raise DecodeError(f"{self.name}: {len(data)} bytes exceed max_size {self.max_size}")
        try:
            value = self._decode(bytes(data))
        except self.decode_errors as exc:
            raise DecodeError(f"{self.name}: malformed input: {exc}") from exc
        if self.strict:
            problem = find_violation(value, self.rules)
            if problem is not None:
                raise DecodeError(f"{self.name}: decoded {problem}")
        return value

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} strict={self.strict}>"


_codecs: Registry[Callable[..., Codec]] = Registry(
    "codec",
    "faultlab.codecs",
    builtins={
        "json": "faultlab.codecs.json:JsonCodec",
        "msgpack": "faultlab.codecs.msgpack:MsgpackCodec",
        "xmlrpc": "faultlab.codecs.xml:XmlRpcCodec",
        "protobuf": "faultlab.codecs.protobuf:ProtobufCodec",
        "protobuf-struct": "faultlab.codecs.protobuf:StructCodec",
    },
    missing=lambda name: UnknownCodec(f"unknown codec {name!r}; known: {_codecs.known()}"),
)


def register_codec(name: str, factory: Callable[..., Codec], *, replace: bool = False) -> None:
    """Make ``get_codec(name, **options)`` call ``factory(**options)``.

    Packages can do the same without code through the ``faultlab.codecs``
    entry-point group (the entry point names the codec and loads the factory).
    """
    _codecs.register(name, factory, replace=replace)


def get_codec(name: str, **options: Any) -> Codec:
    """A new codec instance by name, e.g. ``get_codec("json", strict=False)``."""
    return _codecs.build(name, **options)


def codec_names() -> list[str]:
    """Every registered codec name, built-in and from entry points."""
    return sorted(_codecs.names())
