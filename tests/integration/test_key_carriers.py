"""An idempotency key reaches the service and the journal whatever carried it.

JSON-RPC over HTTP carries faultlab's key in an ``Idempotency-Key`` header, beside the body
the protocol decodes: the server used to drop it, so calc's counter applied a keyed retry
twice and the journal's ``server_request`` had no key (I1 then cried wolf on a correct
client). Real Lab pairs, real proxy, real server; the response of the first attempt is lost
on the wire with ``reset_peer`` so the client's retry carries the same key.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from faultlab.errors import TransportError
from faultlab.journal import schema as ev
from faultlab.lab import Lab, Pair
from faultlab.oracles import RetryPolicy, check_idempotency

INCR = RetryPolicy(max_attempts=3, non_idempotent=frozenset({"counter.incr"}))


@pytest.fixture(params=["jsonrpc", "binrpc"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    with Lab(seed=13, client_timeout=2.0) as lab:
        yield lab.pair("faultlab.examples.calc:Calc", protocol=request.param, transport="tcp")


def test_a_key_in_metadata_reaches_the_method_and_the_journal(pair: Pair) -> None:
    with pair.direct_client() as direct:
        direct.call("counter.reset")
        first = direct.call("counter.incr", 5, idempotency_key="order-1")
        again = direct.call("counter.incr", 5, idempotency_key="order-1")
        other = direct.call("counter.incr", 1, idempotency_key="order-2")
    assert (first, again, other) == (5, 5, 6)
    effects = pair.server_effects()
    assert [e["key"] for e in effects] == ["order-1", "order-2"]
    keys = [
        e.get("idempotency_key")
        for e in pair.events(kinds=[ev.SERVER_REQUEST])
        if e.get("method") == "counter.incr"
    ]
    assert keys == ["order-1", "order-1", "order-2"]


def test_a_keyed_retry_after_a_lost_reply_takes_effect_once(pair: Pair) -> None:
    with pair.direct_client() as direct:
        direct.call("counter.reset")
    since = pair.journal.events()[-1]["seq"] + 1
    with pair.logical_call("incr", method="counter.incr", idempotent=False):
        pair.proxy.add_toxic("reset_peer", stream="downstream", timeout=0)
        try:
            pair.client.call("counter.incr", 2, idempotency_key="k-lost")
        except TransportError:
            pass
        else:  # pragma: no cover - the fault must cut the reply
            pytest.fail("the reply was not lost")
        pair.clear_faults()
        pair.client.close()
        assert pair.client.call("counter.incr", 2, idempotency_key="k-lost") == 2
    assert len(pair.server_effects()) == 1
    verdict = check_idempotency(pair.journal.events(since=since), INCR)
    assert verdict.passed, verdict.report()


def test_a_key_passed_positionally_counts_as_the_attempts_key(pair: Pair) -> None:
    """The client journals no key (it cannot know which positional parameter is one); the
    server read it: the attempts take it, so a keyed retry is not called unkeyed (I3)."""
    with pair.direct_client() as direct:
        direct.call("counter.reset")
    since = pair.journal.events()[-1]["seq"] + 1
    with pair.logical_call("incr", method="counter.incr", idempotent=False):
        pair.proxy.add_toxic("reset_peer", stream="downstream", timeout=0)
        with pytest.raises(TransportError):
            pair.client.call("counter.incr", 3, "k-positional")
        pair.clear_faults()
        pair.client.close()
        assert pair.client.call("counter.incr", 3, "k-positional") == 3
    events = pair.events(since=since)
    starts = [e for e in events if e["kind"] == ev.ATTEMPT_START]
    assert [e.get("idempotency_key") for e in starts] == [None, None]  # not journaled
    verdict = check_idempotency(events, INCR)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous
