"""gRPC addresses: faultlab URIs as grpcio targets, TLS credentials, unix socket care."""

from __future__ import annotations

import os
import re
import socket
import stat
from typing import Any

import grpc  # type: ignore[import-untyped]

from faultlab.errors import AddressError
from faultlab.rpc.grpc.protocol import SCHEMES
from faultlab.transports.base import ParsedAddress
from faultlab.transports.base import parse_address as parse_uri
from faultlab.transports.tcp import format_host_port

__all__ = [
    "SCHEMES",
    "channel_credentials",
    "host_target",
    "parse_address",
    "refuse_live_socket",
    "server_credentials",
    "unix_target",
]


_PEM_KEY = re.compile(
    rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----\s*", re.S
)
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\s*", re.S)


def _pem_parts(path: str) -> tuple[bytes, bytes]:
    """(private key, certificate chain) from a PEM file: grpcio wants them apart."""
    with open(path, "rb") as fh:
        text = fh.read()
    key = b"".join(m.group(0) for m in _PEM_KEY.finditer(text))
    chain = b"".join(m.group(0) for m in _PEM_CERT.finditer(text))
    return key, chain


def server_credentials(parsed: ParsedAddress) -> Any:
    from faultlab.transports.tls import test_ca_files

    certfile = parsed.options.get("certfile") or str(test_ca_files()[1])
    keyfile = parsed.options.get("keyfile")
    try:
        key, chain = _pem_parts(certfile)
        if keyfile:
            key = _pem_parts(keyfile)[0]
    except OSError as exc:
        raise AddressError(f"cannot load TLS certificate {certfile!r}: {exc}") from exc
    if not key or not chain:
        raise AddressError(f"{certfile!r} (with keyfile {keyfile!r}) lacks a key or certificate")
    return grpc.ssl_server_credentials([(key, chain)])


def channel_credentials(parsed: ParsedAddress) -> Any:
    from faultlab.transports.tls import test_ca_files

    cafile = parsed.options.get("cafile") or str(test_ca_files()[0])
    try:
        with open(cafile, "rb") as fh:
            return grpc.ssl_channel_credentials(root_certificates=fh.read())
    except OSError as exc:
        raise AddressError(f"cannot load TLS CA {cafile!r}: {exc}") from exc


def unix_target(parsed: ParsedAddress) -> tuple[str, str | None]:
    """(gRPC target, socket file path or None for an abstract name)."""
    path = parsed.path
    if parsed.host and not path.startswith("@"):
        raise AddressError(f"{parsed.uri!r}: use unix:///absolute/path or unix://@name")
    if not path:
        raise AddressError(f"{parsed.uri!r} has no path")
    if path.startswith("@"):
        return f"unix-abstract:{path[1:]}", None
    return f"unix:{path}", path


def host_target(parsed: ParsedAddress) -> str:
    if parsed.port is None or not parsed.host:
        raise AddressError(f"{parsed.uri!r} needs a host and a port, e.g. tcp://127.0.0.1:0")
    return format_host_port(parsed.scheme, parsed.host, parsed.port).split("://", 1)[1]


def parse_address(address: str) -> ParsedAddress:
    parsed = parse_uri(address)
    if parsed.scheme not in SCHEMES:
        raise AddressError(
            f"gRPC runs over {', '.join(s + '://' for s in SCHEMES)} only, not {address!r}"
        )
    return parsed


def refuse_live_socket(path: str) -> None:
    """grpcio unlinks whatever socket file is in the way; never steal a live server's."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise AddressError(f"{path!r} exists and is not a socket; refusing to remove it")
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return  # stale: grpcio replaces it
    finally:
        probe.close()
    raise AddressError(f"address in use: a live server listens on {path!r}")
