"""The examples of the JSON-RPC 2.0 specification (section 7), served sans-IO."""

from __future__ import annotations

import json
from typing import Any

import pytest

from faultlab.rpc.base import get_protocol
from faultlab.rpc.service import Service


class Spec:
    def subtract(self, minuend: int, subtrahend: int) -> int:
        return minuend - subtrahend

    def sum(self, *values: int) -> int:
        return sum(values)

    def update(self, *values: int) -> None:
        return None

    def notify_hello(self, *values: int) -> None:
        return None

    def get_data(self) -> list[Any]:
        return ["hello", 5]


SERVICE = Service(Spec())
PROTOCOL = get_protocol("jsonrpc")


def serve(text: str) -> Any:
    reply = PROTOCOL.handle(text.encode(), SERVICE.dispatch)
    return None if reply is None else json.loads(reply)


def test_positional_params() -> None:
    got = serve('{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}')
    assert got == {"jsonrpc": "2.0", "result": 19, "id": 1}


def test_named_params() -> None:
    got = serve(
        '{"jsonrpc": "2.0", "method": "subtract", '
        '"params": {"subtrahend": 23, "minuend": 42}, "id": 3}'
    )
    assert got == {"jsonrpc": "2.0", "result": 19, "id": 3}


def test_notification_gets_no_reply() -> None:
    assert serve('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}') is None
    assert serve('{"jsonrpc": "2.0", "method": "foobar"}') is None


def test_method_not_found() -> None:
    got = serve('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}')
    assert got["error"]["code"] == -32601
    assert got["id"] == "1"


def test_invalid_json() -> None:
    got = serve('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    assert got["error"]["code"] == -32700
    assert got["id"] is None


def test_invalid_request_object() -> None:
    got = serve('{"jsonrpc": "2.0", "method": 1, "params": "bar"}')
    assert got["error"]["code"] == -32600
    assert got["id"] is None


def test_batch_invalid_json() -> None:
    got = serve(
        '[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},'
        '{"jsonrpc": "2.0", "method"]'
    )
    assert got["error"]["code"] == -32700


def test_empty_batch() -> None:
    got = serve("[]")
    assert got["error"]["code"] == -32600


@pytest.mark.parametrize("batch", ["[1]", "[1,2,3]"])
def test_invalid_batch_members(batch: str) -> None:
    got = serve(batch)
    assert isinstance(got, list)
    assert len(got) == len(json.loads(batch))
    assert all(r["error"]["code"] == -32600 and r["id"] is None for r in got)


def test_mixed_batch() -> None:
    got = serve(
        """[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
        ]"""
    )
    by_id = {r["id"]: r for r in got if r["id"] is not None}
    assert by_id["1"]["result"] == 7
    assert by_id["2"]["result"] == 19
    assert by_id["5"]["error"]["code"] == -32601
    assert by_id["9"]["result"] == ["hello", 5]
    assert [r["error"]["code"] for r in got if r["id"] is None] == [-32600]
    assert len(got) == 5


def test_all_notifications_batch_returns_nothing() -> None:
    assert (
        serve(
            '[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},'
            '{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]'
        )
        is None
    )


@pytest.mark.parametrize("bad_id", ["1.5", "true", "[1]", '{"a": 1}'])
def test_bad_id_types_are_invalid_requests(bad_id: str) -> None:
    got = serve(f'{{"jsonrpc": "2.0", "method": "get_data", "id": {bad_id}}}')
    assert got["error"]["code"] == -32600


def test_wrong_version_is_invalid() -> None:
    got = serve('{"jsonrpc": "1.0", "method": "get_data", "id": 4}')
    assert got["error"]["code"] == -32600
    assert got["id"] == 4


def test_bad_params_are_invalid_params() -> None:
    got = serve('{"jsonrpc": "2.0", "method": "subtract", "params": [1], "id": 7}')
    assert got["error"]["code"] == -32602
