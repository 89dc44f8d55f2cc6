"""Version skew: a client of schema v1 against a v2 server and back.

The answer must be a typed error (MethodNotFound, VersionMismatch) or
compatible behaviour, never a wrong value.
"""

from __future__ import annotations

from typing import Any

import pytest

from faultlab.rpc.base import get_protocol
from faultlab.rpc.errors import MethodNotFound, VersionMismatch


@pytest.fixture
def skewed_pairs(faultlab_lab: Any, faultlab_target: Any) -> Any:
    if faultlab_target.service_v2 is None:
        pytest.skip("the target declares no second schema version (service_v2)")
    return faultlab_target


@pytest.mark.parametrize("protocol", ["binrpc", "jsonrpc", "msgpackrpc", "grpc"])
def test_v1_client_against_v2_server_stays_compatible(
    faultlab_lab: Any, skewed_pairs: Any, protocol: str
) -> None:
    if protocol not in skewed_pairs.protocols:
        pytest.skip(f"target does not speak {protocol}")
    options = get_protocol(protocol).version_options(2)  # gRPC: the v2 proto package
    pair = faultlab_lab.pair(skewed_pairs.service_v2, protocol=protocol, options=options)
    try:
        about = pair.run(lambda c: c.about())
        assert about["version"] == 2, about
        assert about["service"] == "calc", about
        assert pair.run(lambda c: c.add(2, 3)) == 5  # v1 calls keep their meaning
    finally:
        pair.close()


@pytest.mark.parametrize("protocol", ["binrpc", "jsonrpc", "msgpackrpc", "grpc"])
def test_v2_call_against_v1_server_is_a_typed_error(
    faultlab_lab: Any, skewed_pairs: Any, protocol: str
) -> None:
    if protocol not in skewed_pairs.protocols:
        pytest.skip(f"target does not speak {protocol}")
    pair = faultlab_lab.pair(skewed_pairs.service, protocol=protocol)
    try:
        with pytest.raises(MethodNotFound):
            pair.run(lambda c: c.pow(2, 10))
    finally:
        pair.close()


def test_binrpc_protocol_version_mismatch_names_both_sides(faultlab_lab: Any) -> None:
    from faultlab.examples.calc import CalcV2
    from faultlab.rpc.binrpc import BinRpc
    from faultlab.rpc.client import Client
    from faultlab.rpc.server import RpcServer

    server = RpcServer(CalcV2(), protocol=BinRpc(version=2), address="tcp://127.0.0.1:0")
    with server, Client(server.address, BinRpc(version=1)) as client:
        with pytest.raises(VersionMismatch) as caught:
            client.add(1, 2)
    assert (caught.value.ours, caught.value.theirs) == (1, 2)
