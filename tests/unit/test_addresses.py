from __future__ import annotations

import pytest

from faultlab.errors import AddressError
from faultlab.transports import parse_address


@pytest.mark.parametrize(
    ("uri", "host", "port", "path"),
    [
        ("tcp://127.0.0.1:0", "127.0.0.1", 0, ""),
        ("tcp://[::1]:8080", "::1", 8080, ""),
        ("unix:///tmp/x.sock", "", None, "/tmp/x.sock"),
        ("unix://@abstract", "", None, "@abstract"),
        ("fifo:///run/dir/name", "", None, "/run/dir/name"),
        ("shm://ring", "ring", None, ""),
        ("mq://queue", "queue", None, ""),
    ],
)
def test_parse(uri: str, host: str, port: int | None, path: str) -> None:
    parsed = parse_address(uri)
    assert (parsed.host, parsed.port, parsed.path) == (host, port, path)
    assert parsed.uri == uri


def test_options_come_from_the_query() -> None:
    assert parse_address("tls://h:1?cafile=/x&certfile=/y").options == {
        "cafile": "/x",
        "certfile": "/y",
    }


@pytest.mark.parametrize("bad", ["127.0.0.1:80", "tcp://h:99999", "tcp://h:port"])
def test_bad_addresses_are_typed(bad: str) -> None:
    with pytest.raises(AddressError):
        parse_address(bad)


def test_tcp_needs_host_and_port() -> None:
    from faultlab import transports

    with pytest.raises(AddressError, match="needs a host and a port"):
        transports.listen("tcp://localhost")


def test_scheme_mismatch_is_refused() -> None:
    from faultlab import transports

    with pytest.raises(AddressError, match="cannot use address"):
        transports.get("tcp").listen("udp://127.0.0.1:0")


def test_unix_refuses_to_remove_a_regular_file(tmp_path: object) -> None:
    from pathlib import Path

    from faultlab import transports

    path = Path(str(tmp_path)) / "not-a-socket"
    path.write_text("precious")
    with pytest.raises(AddressError, match="not a socket"):
        transports.listen(f"unix://{path}")
    assert path.read_text() == "precious"
