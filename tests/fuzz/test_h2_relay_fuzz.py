"""The HTTP/2 relay against hostile peers: a typed error or the bytes relayed, never a crash.

Two layers: the sans-IO splitter (and its HPACK decoder) on mutated real HTTP/2 streams,
which may only raise :class:`RemoteProtocolError`; and the live relay, where a client that
sends garbage after the preface gets its connection closed with a ``framing_error`` in the
journal, while the proxy keeps serving clean gRPC calls on other connections.
"""

from __future__ import annotations

import random
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultlab.codecs.framing.h2 import PREFACE, H2Splitter, H2Unit
from faultlab.errors import RemoteProtocolError
from tests.fuzz.budget import budget
from tests.unit.test_h2_framing import client_bytes

COUNT = budget(ci=400, slow=20_000)
LIVE = budget(ci=25, slow=500)


def _mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(4)
        i = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(i, len(out) - 1)] = rng.randrange(256)
        elif op == 1:
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
        elif op == 2 and out:
            del out[i : i + rng.randrange(1, 12)]
        else:
            out = out[:i]
    return bytes(out)


@settings(max_examples=COUNT, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32))
def test_the_splitter_meets_mutated_streams_with_a_typed_error_or_units(seed: int) -> None:
    rng = random.Random(seed)
    data = _mutate(client_bytes() * rng.randrange(1, 3), rng)
    splitter = H2Splitter(client_side=True)
    pos = 0
    try:
        while pos < len(data):
            step = rng.randrange(1, 64)
            splitter.receive_data(data[pos : pos + step])
            pos += step
            while isinstance(unit := splitter.next_frame(), H2Unit):
                assert isinstance(unit.raw, bytes)
        splitter.receive_data(b"")
        while isinstance(splitter.next_frame(), H2Unit):
            pass
    except RemoteProtocolError:
        with pytest.raises(RemoteProtocolError):  # dead after one error
            splitter.next_frame()


grpc = pytest.importorskip("grpc")


def test_garbage_after_the_preface_closes_that_connection_and_nothing_else() -> None:
    from faultlab.examples.protos import calc_v1_pb2, calc_v1_pb2_grpc
    from faultlab.lab.pair import Lab

    rng = random.Random(5)
    with Lab(seed=5) as lab:
        pair = lab.pair("faultlab.examples.calc:Calc", protocol="grpc", options={"proto": "v1"})
        host, port = pair.address.removeprefix("tcp://").rsplit(":", 1)
        for _ in range(LIVE):
            garbage = _mutate(client_bytes()[len(PREFACE) :], rng)
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.sendall(PREFACE + garbage)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(5)
                while sock.recv(65536):  # the proxy (or the server) closes it: no hang
                    pass
        with grpc.insecure_channel(f"{host}:{port}") as channel:
            stub = calc_v1_pb2_grpc.CalcStub(channel)
            for i in range(20):
                assert stub.Add(calc_v1_pb2.AddRequest(a=i, b=1), timeout=5).value == i + 1
        assert not [e for e in pair.events() if e["kind"] == "error"]  # no relay bug
