"""check_stream_resume: loss, duplicate, reorder and a correct resume, each able to fail."""

from __future__ import annotations

from typing import Any

import pytest

from faultlab.journal import Journal
from faultlab.journal import schema as ev
from faultlab.oracles import check_stream_resume, stream_attempts
from faultlab.oracles.streams import S1, S2, S3


def items(indices: Any) -> list[tuple[int, int]]:
    return [(i, i * i) for i in indices]


EXPECTED = items(range(10))


def wire(*counts: int, method: str = "/faultlab.calc.v1.Calc/Count") -> Journal:
    """A journal with one stream attempt per count, as the proxy would journal it."""
    journal = Journal()
    for connection, count in enumerate(counts, 1):
        journal.record(
            ev.WIRE_RESPONSE,
            proxy="p",
            connection=connection,
            exchange=1,
            status=200,
            rpc_method=method,
            messages_down=count,
        )
    journal.record(ev.WIRE_RESPONSE, proxy="p", connection=9, exchange=1, status=200)  # unary
    return journal


def test_correct_resume_passes_and_names_the_attempts() -> None:
    verdict = check_stream_resume(EXPECTED, EXPECTED, journal=wire(4, 6), label="Count")
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous
    assert "all 10 item(s) delivered once, in order, over 2 attempts (4 + 6)" in verdict.message
    assert [e["messages_down"] for e in verdict.evidence] == [4, 6]
    assert [a["messages_down"] for a in verdict.details["wire_attempts"]] == [4, 6]
    assert verdict.details["attempts"] == [4, 6]


def test_lost_item_fails_s1_naming_index_and_attempts() -> None:
    received = items([0, 1, 2, 3, 5, 6, 7, 8, 9])  # resumed at last + 2: index 4 lost
    verdict = check_stream_resume(received, EXPECTED, journal=wire(4, 5), label="Count")
    assert not verdict.passed
    assert verdict.property == S1
    assert "index 4 (value 16) was never delivered" in verdict.message
    assert "lost between attempts 1 and 2" in verdict.message
    assert verdict.details["failed"] == [S1]
    assert len(verdict.evidence) == 2  # the two stream attempts, not the unary exchange


def test_duplicated_item_fails_s2_and_nothing_else() -> None:
    received = items([0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9])  # resumed at last seen, not last + 1
    verdict = check_stream_resume(received, EXPECTED, attempts=[4, 7], label="Count")
    assert not verdict.passed
    assert verdict.property == S2
    assert "index 3 (value 9) was delivered 2 times (positions 3 and 4 of 11)" in verdict.message
    assert "by attempts 1 and 2" in verdict.message
    assert verdict.details["failed"] == [S2]  # a duplicate is not also disorder


def test_reordered_items_fail_s3() -> None:
    received = items([0, 1, 2, 4, 3, 5, 6, 7, 8, 9])
    verdict = check_stream_resume(received, EXPECTED)
    assert not verdict.passed
    assert verdict.property == S3
    assert "index 3 (value 9) was delivered after index 4 (value 16)" in verdict.message
    assert verdict.details["failed"] == [S3]


def test_a_stranger_is_s2_and_a_wrong_value_is_also_a_loss() -> None:
    received = [*EXPECTED[:5], (5, 26), *EXPECTED[6:]]
    verdict = check_stream_resume(received, EXPECTED)
    assert verdict.details["failed"] == [S1, S2]
    assert "index 5 (value 25) was never delivered" in verdict.message
    failed = {c.property: c.message for c in verdict.failed_checks()}
    assert "index 5 (value 26) was delivered but is not in the expected stream" in failed[S2]


def test_vacuous_only_when_nothing_expected_nor_received() -> None:
    verdict = check_stream_resume([], [])
    assert verdict.passed
    assert verdict.vacuous
    empty = check_stream_resume([], EXPECTED)
    assert not empty.passed
    assert empty.property == S1


def test_the_verdict_does_not_depend_on_the_wire() -> None:
    received = items([0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9])
    without = check_stream_resume(received, EXPECTED)
    odd_wire = check_stream_resume(received, EXPECTED, journal=wire(3))  # counts do not add up
    assert (
        (without.passed, without.property)
        == (odd_wire.passed, odd_wire.property)
        == (
            False,
            S2,
        )
    )
    assert "attempts" not in without.message
    assert "attempts" not in odd_wire.message
    assert odd_wire.details["attempts"] == []  # not attributed from a count that disagrees


@pytest.mark.parametrize(
    "shape",
    [
        lambda i: {"index": i, "value": i * i},
        lambda i: [i, i * i],
        lambda i: type("Item", (), {"index": i, "value": i * i})(),
    ],
    ids=["mapping", "list", "object"],
)
def test_item_shapes(shape: Any) -> None:
    received = [shape(i) for i in [0, 1, 1, 2]]
    verdict = check_stream_resume(received, [shape(i) for i in range(3)])
    assert not verdict.passed
    assert verdict.property == S2
    assert "index 1 (value 1)" in verdict.message


def test_plain_hashables_and_repeats_the_stream_itself_has() -> None:
    assert check_stream_resume("abca", "abca").passed  # an expected repeat is no duplicate
    verdict = check_stream_resume("abcaa", "abca")
    assert not verdict.passed
    assert "item 'a' was delivered 3 times" in verdict.message


def test_stream_attempts_filters_by_rpc() -> None:
    journal = wire(2, 3)
    journal.record(ev.WIRE_RESPONSE, proxy="p", rpc_method="/faultlab.calc.v1.Calc/Chat")
    assert len(stream_attempts(journal)) == 3
    assert [a["messages_down"] for a in stream_attempts(journal, "Count")] == [2, 3]
    assert len(stream_attempts(journal, "/faultlab.calc.v1.Calc/Chat")) == 1


def test_attempts_pair_requests_with_their_outcome_broken_or_counted() -> None:
    """As the HTTP/2 relay journals a stream: the request names the rpc, the response
    counts the messages, a broken attempt is unanswered and counts nothing."""
    journal = Journal()
    path = "/faultlab.calc.v1.Calc/Count"
    for connection in (1, 2):
        journal.record(
            ev.WIRE_REQUEST,
            proxy="p",
            connection=connection,
            exchange=1,
            method="POST",
            target=path,
            rpc_method=path,
        )
    journal.record(
        ev.WIRE_UNANSWERED, proxy="p", connection=1, exchange=1, error_kind="EndOfStream"
    )
    journal.record(
        ev.WIRE_RESPONSE, proxy="p", connection=2, exchange=1, status=200, messages_down=6
    )
    found = stream_attempts(journal, "Count")
    assert [(a["outcome"], a["messages_down"]) for a in found] == [
        ("unanswered", None),
        ("response", 6),
    ]
    verdict = check_stream_resume(EXPECTED, EXPECTED, journal=journal, label="Count")
    assert verdict.passed
    assert "over 2 attempts on the wire" in verdict.message
    assert len(verdict.evidence) == 4
    assert verdict.details["attempts"] == []  # an uncounted attempt: no attribution
