"""``rpc_error`` on a JSON-RPC batch, sans I/O: which calls it answers, what it forwards, how
the server's reply is merged, and the bound on replies waiting for a merge."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from faultlab.rpc.frames import http_reply
from faultlab.toxics import get_toxic_class
from faultlab.toxics._rpcwire import BatchMerge
from faultlab.toxics.base import Chunk, ToxicContext
from faultlab.toxics.rpc_error import MAX_PARTIAL_BATCHES


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    made = asyncio.new_event_loop()
    yield made
    made.close()


class Run:
    """One rpc_error toxic on an upstream lines link: what it forwards, replies, records."""

    def __init__(self, loop: asyncio.AbstractEventLoop, waiting: int = 0, **attrs: Any) -> None:
        self.loop = loop
        self.toxic = get_toxic_class("rpc_error")(protocol="jsonrpc", **attrs)
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.replies: list[bytes] = []
        self.forwarded: list[Chunk] = []
        self.ctx = ToxicContext(
            rng=random.Random(1),
            record=lambda decision, **f: self.records.append((decision, f)),
            close=lambda: None,
            reset=lambda: None,
            direction="upstream",
            link_kind="frames",
            loop=loop,
            reply=self.replies.append,
            framing="lines",
            reply_edits=lambda: waiting,
        )

    def send(self, body: Any) -> None:
        async def emit(chunk: Chunk) -> None:
            self.forwarded.append(chunk)

        chunk = Chunk(json.dumps(body).encode(), 0.0, 0, True)
        self.loop.run_until_complete(self.toxic.process(self.ctx, chunk, emit))


def _req(method: str, rid: Any = None, *, notify: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": [1]}
    if not notify:
        obj["id"] = rid
    return obj


def test_the_server_gets_the_unselected_calls_and_the_reply_is_merged(
    loop: asyncio.AbstractEventLoop,
) -> None:
    run = Run(loop, method="add")
    run.send([_req("add", 1), _req("echo", 2), _req("add", 3), _req("note", notify=True)])
    (chunk,) = run.forwarded
    assert json.loads(chunk.data) == [_req("echo", 2), _req("note", notify=True)]
    merge = chunk.reply_edit
    assert isinstance(merge, BatchMerge)
    assert run.replies == []
    assert [f["rpc_id"] for d, f in run.records if d == "rpc_error"] == [1, 3]
    served = json.dumps([{"jsonrpc": "2.0", "result": 1, "id": 2}]).encode()
    assert merge(json.dumps({"jsonrpc": "2.0", "result": 0, "id": 9}).encode()) is None
    assert merge(json.dumps([{"jsonrpc": "2.0", "result": 0, "id": 9}]).encode()) is None
    merged = merge(served)
    assert merged is not None
    assert [(r["id"], "error" in r) for r in json.loads(merged)] == [
        (1, True),
        (2, False),
        (3, True),
    ]


def test_over_http_a_failed_or_refused_answer_stands() -> None:
    errors = json.dumps([{"jsonrpc": "2.0", "error": {"code": -1, "message": "x"}, "id": 1}])
    merge = BatchMerge("jsonrpc", ((1, _item(errors)), (2, None)), http=True)
    assert merge(http_reply(500, b"boom", "text/plain")) is None
    refused = json.dumps({"jsonrpc": "2.0", "error": {"code": -32600, "message": "no"}, "id": None})
    assert merge(http_reply(200, refused.encode(), "application/json")) is None
    empty = merge(http_reply(204, b"", "application/json"))
    assert empty is not None
    assert empty.startswith(b"HTTP/1.1 200")
    assert json.loads(empty.split(b"\r\n\r\n", 1)[1]) == json.loads(errors)


def _item(errors: str) -> Any:
    from faultlab.toxics._rpcwire import decode

    reply = decode("jsonrpc", errors.encode(), http=False, request=False)
    assert reply is not None
    return reply.items[0]


def test_errors_are_answered_at_once_when_only_notifications_are_served(
    loop: asyncio.AbstractEventLoop,
) -> None:
    run = Run(loop, method="add")
    run.send([_req("add", 7), _req("note", notify=True)])
    (chunk,) = run.forwarded
    assert json.loads(chunk.data) == [_req("note", notify=True)]
    assert chunk.reply_edit is None
    (reply,) = run.replies
    assert [r["id"] for r in json.loads(reply)] == [7]


def test_past_the_bound_a_matching_batch_is_answered_whole(
    loop: asyncio.AbstractEventLoop,
) -> None:
    run = Run(loop, waiting=MAX_PARTIAL_BATCHES, method="add")
    run.send([_req("add", 1), _req("echo", 2)])
    assert run.forwarded == []  # nothing reaches the server: no merge state is added
    (reply,) = run.replies
    assert [r["id"] for r in json.loads(reply)] == [1, 2]
    ((_, fields),) = [r for r in run.records if r[0] == "rpc_error"]
    assert "partial batches already wait" in fields["whole_batch"]
    under = Run(loop, waiting=MAX_PARTIAL_BATCHES - 1, method="add")
    under.send([_req("add", 1), _req("echo", 2)])
    assert len(under.forwarded) == 1
