"""The ClientHello reader an intercepting proxy decides with: real hellos from OpenSSL, split
across records and reads, and hostile bytes (only :class:`NotTLS`, never another error)."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlab.codecs.framing.tls_hello import (
    MAX_HELLO,
    ClientHello,
    NotTLS,
    parse_client_hello,
)
from faultlab.errors import FaultlabError


def real_hello(server_name: str | None = "api.example.test", alpn: tuple[str, ...] = ()) -> bytes:
    """The first flight of a real OpenSSL client."""
    ctx = ssl.create_default_context()
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if server_name is None:
        ctx.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def split_records(data: bytes, size: int) -> bytes:
    """The same handshake bytes re-cut into TLS records of ``size`` bytes each."""
    payload = data[5 : 5 + int.from_bytes(data[3:5], "big")]
    out = b""
    for at in range(0, len(payload), size):
        piece = payload[at : at + size]
        out += b"\x16\x03\x01" + len(piece).to_bytes(2, "big") + piece
    return out


def test_name_and_alpn_of_a_real_hello() -> None:
    hello = parse_client_hello(real_hello("api.example.test", ("h2", "http/1.1")))
    assert hello == ClientHello("api.example.test", ("h2", "http/1.1"))


def test_no_sni_for_an_address_and_no_alpn() -> None:
    assert parse_client_hello(real_hello(None)) == ClientHello(None, ())


def test_every_prefix_asks_for_more() -> None:
    data = real_hello(alpn=("h2",))
    for cut in range(len(data)):
        assert parse_client_hello(data[:cut]) is None


@pytest.mark.parametrize("size", [1, 7, 100, 512])
def test_a_hello_split_across_records(size: int) -> None:
    data = split_records(real_hello(alpn=("http/1.1",)), size)
    assert parse_client_hello(data) == ClientHello("api.example.test", ("http/1.1",))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "plain HTTP?"),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "plain HTTP?"),
        (b"\x17\x03\x03\x00\x05hello", "did not start a TLS handshake"),
        (b"\x16\x05\x01\x00\x01\x01", "version byte"),
        (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", "not a ClientHello"),
    ],
)
def test_what_is_not_a_hello_is_refused_clearly(data: bytes, why: str) -> None:
    with pytest.raises(NotTLS, match=why.replace("?", r"\?")):
        parse_client_hello(data)


def test_a_hello_that_never_ends_is_bounded() -> None:
    # a handshake header announcing 16 MiB, fed in records: refused past MAX_HELLO bytes
    first = b"\x01\xff\xff\xff" + b"\x00" * 16000
    data = b"\x16\x03\x01" + len(first).to_bytes(2, "big") + first
    filler = b"\x16\x03\x01\x3e\x80" + b"\x00" * 16000
    while len(data) <= MAX_HELLO:
        data += filler
    with pytest.raises(NotTLS, match="no whole ClientHello"):
        parse_client_hello(data)


def test_not_tls_is_a_faultlab_error() -> None:
    assert issubclass(NotTLS, FaultlabError)


HELLO = real_hello(alpn=("h2", "http/1.1"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_break_the_reader(data: bytes) -> None:
    try:
        result = parse_client_hello(data)
    except NotTLS:
        return
    assert result is None or isinstance(result, ClientHello)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(HELLO) - 1), st.integers(0, 255)), max_size=8))
def test_a_mutated_real_hello_never_breaks_the_reader(edits: list[tuple[int, int]]) -> None:
    data = bytearray(HELLO)
    for at, value in edits:
        data[at] = value
    try:
        result = parse_client_hello(bytes(data))
    except NotTLS:
        return
    assert result is None or isinstance(result, ClientHello)
