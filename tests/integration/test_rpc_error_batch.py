"""``rpc_error`` on a JSON-RPC batch errors only the matching calls; the server serves the rest.

Real Lab pairs (the example JSON-RPC service behind a real proxy), over HTTP (the default
framing of jsonrpc over tcp) and over newline-delimited JSON; the client is a raw socket so
the test sees exactly the bytes the proxy answers with, pipelined requests included.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from faultlab.lab.pair import Lab, Pair
from faultlab.rpc.errors import ServiceUnavailable

SEED = 1313
UNAVAILABLE = ServiceUnavailable.default_code


def _req(
    method: str, params: list[Any], rid: Any = None, *, notify: bool = False
) -> dict[str, Any]:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if not notify:
        obj["id"] = rid
    return obj


BATCH = [_req("add", [1, 2], 1), _req("counter.incr", [5], 2), _req("echo", ["hi"], 3)]


class Raw:
    """A raw client socket to the proxy: writes requests, reads whole replies."""

    def __init__(self, pair: Pair, http: bool) -> None:
        host, port = pair.address.removeprefix("tcp://").rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.http = http
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def frame(self, body: Any) -> bytes:
        data = json.dumps(body).encode()
        if not self.http:
            return data + b"\n"
        head = (
            "POST / HTTP/1.1\r\nHost: faultlab\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        return head.encode() + data

    def send(self, *bodies: Any) -> None:
        self.sock.sendall(b"".join(self.frame(b) for b in bodies))  # pipelined in one write

    def _fill(self) -> None:
        more = self.sock.recv(65536)
        if not more:
            raise ConnectionError("the proxy closed the connection")
        self.buf += more

    def reply(self) -> tuple[int | None, Any]:
        """(HTTP status or None, decoded JSON body or None for an empty body)."""
        if not self.http:
            while b"\n" not in self.buf:
                self._fill()
            line, _, self.buf = self.buf.partition(b"\n")
            return None, json.loads(line)
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            self._fill()
            rest = self.buf.partition(b"\r\n\r\n")[2]
        body, self.buf = rest[:length], rest[length:]
        return status, json.loads(body) if body else None


@pytest.fixture(params=["http", "lines"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    with Lab(seed=SEED) as lab:
        framing = None if request.param == "http" else "lines"
        made = lab.pair(protocol="jsonrpc", framing=framing)
        if request.param == "http":
            assert made.proxy.info()["framing"] == "http"  # the default for jsonrpc over tcp
        yield made


@pytest.fixture
def raw(pair: Pair) -> Iterator[Raw]:
    client = Raw(pair, http=pair.proxy.info()["framing"] == "http")
    yield client
    client.close()


def _injected(pair: Pair) -> list[dict[str, Any]]:
    return [
        e
        for e in pair.proxy.events()
        if e["kind"] == "fault" and e["type"] == "rpc_error" and e["decision"] == "rpc_error"
    ]


def _served(pair: Pair) -> list[str]:
    methods = [str(e.get("method")) for e in pair.events() if e["kind"] == "server_request"]
    return [m for m in methods if not m.startswith("__faultlab")]  # not the readiness probe


def _error(rid: Any) -> dict[str, Any]:
    error = {"code": UNAVAILABLE, "message": "unavailable (injected)"}
    return {"jsonrpc": "2.0", "id": rid, "error": error}


def test_only_the_matching_entry_is_errored(pair: Pair, raw: Raw) -> None:
    pair.proxy.add_toxic("rpc_error", stream="upstream", method="add")
    raw.send(BATCH)
    status, body = raw.reply()
    assert status in (None, 200)
    assert body == [
        _error(1),
        {"jsonrpc": "2.0", "result": 5, "id": 2},
        {"jsonrpc": "2.0", "result": "hi", "id": 3},
    ]
    assert sorted(_served(pair)) == ["counter.incr", "echo"]  # add never reached the server
    (fault,) = _injected(pair)
    assert fault["method"] == "add"
    assert fault["rpc_id"] == 1
    assert (fault["batch_entry"], fault["batch_size"], fault["batch_served"]) == (0, 3, 2)
    assert fault["replied"] is True
    assert fault["error_kind"] == "unavailable"
    assert [e["amount"] for e in pair.server_effects()] == [5]


def test_every_entry_matching_is_answered_without_the_server(pair: Pair, raw: Raw) -> None:
    pair.proxy.add_toxic("rpc_error", stream="upstream", method="*")
    raw.send(BATCH)
    _, body = raw.reply()
    assert body == [_error(1), _error(2), _error(3)]
    assert _served(pair) == []
    assert len(_injected(pair)) == 1  # one answer for the whole request, as for a single call


def test_no_entry_matching_passes_the_batch_untouched(pair: Pair, raw: Raw) -> None:
    pair.proxy.add_toxic("rpc_error", stream="upstream", method="div")
    raw.send(BATCH)
    _, body = raw.reply()
    assert body == [
        {"jsonrpc": "2.0", "result": 3, "id": 1},
        {"jsonrpc": "2.0", "result": 5, "id": 2},
        {"jsonrpc": "2.0", "result": "hi", "id": 3},
    ]
    assert _injected(pair) == []
    assert sorted(_served(pair)) == ["add", "counter.incr", "echo"]


def test_a_notification_in_the_batch_gets_no_entry(pair: Pair, raw: Raw) -> None:
    pair.proxy.add_toxic("rpc_error", stream="upstream", method="add")
    batch = [_req("add", [1, 2], 1), _req("counter.incr", [7], notify=True), _req("echo", [4], 3)]
    raw.send(batch)
    _, body = raw.reply()
    assert body == [_error(1), {"jsonrpc": "2.0", "result": 4, "id": 3}]
    assert sorted(_served(pair)) == ["counter.incr", "echo"]  # the notification was served


def test_a_matching_notification_is_not_served_and_gets_no_entry(pair: Pair, raw: Raw) -> None:
    pair.proxy.add_toxic("rpc_error", stream="upstream", method="counter.*")
    batch = [_req("counter.incr", [7], notify=True), _req("echo", ["x"], "e")]
    raw.send(batch)
    _, body = raw.reply()
    assert body == [{"jsonrpc": "2.0", "result": "x", "id": "e"}]
    assert _served(pair) == ["echo"]
    (fault,) = _injected(pair)
    assert fault["replied"] is False


def test_errors_alone_when_the_server_is_sent_only_notifications(pair: Pair, raw: Raw) -> None:
    """The server answers a batch of notifications with nothing (HTTP 204): the reply is
    the injected errors alone, and the notification is still served."""
    pair.proxy.add_toxic("rpc_error", stream="upstream", method="add")
    raw.send([_req("add", [1, 2], 9), _req("counter.incr", [3], notify=True)])
    status, body = raw.reply()
    assert status in (None, 200)
    assert body == [_error(9)]
    raw.send(_req("echo", ["after"], 10))  # the connection still carries calls
    assert raw.reply()[1] == {"jsonrpc": "2.0", "result": "after", "id": 10}
    assert sorted(_served(pair)) == ["counter.incr", "echo"]


def test_pipelined_requests_keep_their_replies_in_order(pair: Pair, raw: Raw) -> None:
    """Two partly errored batches and a single call in one write: each reply answers its
    request, in order (HTTP answers in order; JSON-RPC replies carry their ids)."""
    pair.proxy.add_toxic("rpc_error", stream="upstream", method="add")
    first = [_req("add", [1, 1], 1), _req("echo", ["a"], 2)]
    second = [_req("echo", ["b"], 3), _req("add", [2, 2], 4), _req("echo", ["c"], 5)]
    raw.send(first, _req("echo", ["single"], 6), second)
    replies = [raw.reply()[1] for _ in range(3)]

    def ids(reply: Any) -> tuple[Any, ...]:
        return tuple(r["id"] for r in reply) if isinstance(reply, list) else (reply["id"],)

    assert {ids(r): r for r in replies} == {
        (1, 2): [_error(1), {"jsonrpc": "2.0", "result": "a", "id": 2}],
        (6,): {"jsonrpc": "2.0", "result": "single", "id": 6},
        (3, 4, 5): [
            {"jsonrpc": "2.0", "result": "b", "id": 3},
            _error(4),
            {"jsonrpc": "2.0", "result": "c", "id": 5},
        ],
    }
    if raw.http:  # HTTP/1.1 answers in order (a JSON-RPC stream may not: ids tell)
        assert [ids(r) for r in replies] == [(1, 2), (6,), (3, 4, 5)]
    assert [f["rpc_id"] for f in _injected(pair)] == [1, 4]


def test_nth_counts_calls_of_a_batch(pair: Pair, raw: Raw) -> None:
    """Each matching call is one match: nth=2 errors the batch's second ``add`` only."""
    pair.proxy.add_toxic("rpc_error", stream="upstream", method="add", nth=2)
    raw.send([_req("add", [1, 1], 1), _req("add", [2, 2], 2), _req("add", [3, 3], 3)])
    _, body = raw.reply()
    assert body == [
        {"jsonrpc": "2.0", "result": 2, "id": 1},
        _error(2),
        {"jsonrpc": "2.0", "result": 6, "id": 3},
    ]
    passes = [
        e
        for e in pair.proxy.events()
        if e["kind"] == "fault" and e["type"] == "rpc_error" and e["decision"] == "pass"
    ]
    assert [(p["reason"], p["match"], p["rpc_id"]) for p in passes] == [
        ("nth", 1, 1),
        ("nth", 3, 3),
    ]


@pytest.mark.parametrize("transport", ["udp", "unixgram"])
def test_on_a_message_transport_too(transport: str) -> None:
    """Each datagram is one message: the batch reply is merged the same way, and a batch
    left with notifications for the server is answered by the errors at once."""
    from faultlab import transports

    with Lab(seed=SEED) as lab:
        pair = lab.pair(protocol="jsonrpc", transport=transport)
        pair.proxy.add_toxic("rpc_error", stream="upstream", method="add")
        stream = transports.connect(pair.address)
        try:
            stream.send(json.dumps(BATCH).encode(), timeout=5)
            assert json.loads(stream.receive(timeout=5)) == [
                _error(1),
                {"jsonrpc": "2.0", "result": 5, "id": 2},
                {"jsonrpc": "2.0", "result": "hi", "id": 3},
            ]
            note = _req("counter.incr", [1], notify=True)
            stream.send(json.dumps([_req("add", [1, 1], 4), note]).encode(), timeout=5)
            assert json.loads(stream.receive(timeout=5)) == [_error(4)]
            stream.send(json.dumps(_req("echo", ["after"], 5)).encode(), timeout=5)
            reply = json.loads(stream.receive(timeout=5))  # served after the notification
            assert reply == {"jsonrpc": "2.0", "result": "after", "id": 5}
        finally:
            stream.close()
        assert [e["amount"] for e in pair.server_effects()] == [5, 1]
