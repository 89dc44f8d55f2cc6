"""``check_auth`` over hand-built journals: each property passes, fails, or proves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from faultlab.journal.wire import credential_fields
from faultlab.oracles import AuthPolicy, Verdict, auth_checks, check_auth
from faultlab.oracles.auth import A1, A2, A3, A4

A, B, C, D = (f"Bearer token-{n}" for n in "abcd")


class Wire:
    """A journal of wire exchanges on one proxy, each answered at once, 10 ms apart."""

    def __init__(self, *, tls: bool = True) -> None:
        self.events: list[dict[str, Any]] = []
        self.tls = tls
        self.calls = 0

    def _add(self, kind: str, **fields: Any) -> dict[str, Any]:
        seq = len(self.events)
        event = {"seq": seq, "t": seq * 0.01, "kind": kind, **fields}
        self.events.append(event)
        return event

    def send(
        self,
        token: str | None,
        status: int = 200,
        *,
        target: str = "/items/1",
        method: str = "GET",
        grpc_status: int | None = None,
        tls: bool | None = None,
    ) -> None:
        exchange = sum(1 for e in self.events if e["kind"] == "wire_request")
        where = {"proxy": "api", "connection": 1, "exchange": exchange}
        request: dict[str, Any] = {
            **where,
            "method": method,
            "target": target,
            "headers": {},
            "size": 100,
            **credential_fields(token),
        }
        if grpc_status is not None:
            request.update(protocol="grpc", rpc_method=target, http2=True)
        if self.tls if tls is None else tls:
            request["tls"] = True
        self._add("wire_request", **request)
        rejected = status == 401 or grpc_status == 16
        if rejected:
            self._add(
                "fault",
                proxy="api",
                connection=1,
                direction="upstream",
                toxic="auth_error_upstream",
                type="auth_error",
                decision="auth_error",
                status=401,
            )
        response: dict[str, Any] = {**where, "status": status, "headers": {}, "size": 50}
        response["injected"] = rejected
        if grpc_status is not None:
            response.update(grpc_status=grpc_status, http2=True)
            if grpc_status:
                names = {16: "grpc_unauthenticated", 14: "grpc_unavailable"}
                response.update(rpc_error=names[grpc_status], rpc_code=grpc_status)
        self._add("wire_response", **response)

    @contextmanager
    def call(self, label: str = "get") -> Iterator[None]:
        self.calls += 1
        call = self.calls
        self._add("call_start", call=call, label=label, method=None, proxy="api")
        yield
        self._add("call_end", call=call, outcome="value")


def by_property(verdict: Verdict) -> dict[str, Verdict]:
    return {c.property: c for c in verdict.checks}


# ---- a correct client ------------------------------------------------------------------------
def test_one_refresh_then_one_retry_passes() -> None:
    w = Wire()
    w.send(A, 401)
    w.send(B, 200)
    w.send(B, 200, target="/items/2")
    verdict = check_auth(w.events)
    assert verdict.passed, verdict.report()
    assert not verdict.vacuous
    assert "1 rejection(s), 1 retried; 3 request(s) carried a credential" in verdict.message
    assert all(not c.vacuous for c in verdict.checks)


def test_giving_up_after_the_refreshed_credential_fails_too_passes() -> None:
    w = Wire()
    w.send(A, 401)
    w.send(B, 401)
    assert check_auth(w.events).passed


def test_a_token_request_between_is_not_a_retry() -> None:
    w = Wire()
    w.send(A, 401)
    w.send("Basic Y2xpZW50OnNlY3JldA==", 200, method="POST", target="/token")
    w.send(B, 200)
    verdict = check_auth(w.events)
    assert verdict.passed, verdict.report()


def test_nothing_rejected_and_nothing_carried_is_vacuous() -> None:
    w = Wire()
    w.send(None, 200)
    verdict = check_auth(w.events)
    assert verdict.passed
    assert verdict.vacuous
    assert "no credential was rejected" in by_property(verdict)[A1].message
    assert "no request carried a credential" in by_property(verdict)[A4].message


def test_no_rejection_leaves_a1_to_a3_vacuous_but_judges_a4() -> None:
    w = Wire()
    w.send(A, 200)
    checks = by_property(check_auth(w.events))
    assert [checks[p].vacuous for p in (A1, A2, A3, A4)] == [True, True, True, False]


# ---- storms --------------------------------------------------------------------------------------
def test_a_same_token_retry_storm_fails_a2() -> None:
    w = Wire()
    for _ in range(4):
        w.send(A, 401)
    verdict = check_auth(w.events)
    assert not verdict.passed
    assert verdict.property == A2
    assert "GET /items/1 (connection 1, exchange 0) was rejected" in verdict.message
    assert "retry 1 sent the failed call again with the rejected credential" in verdict.message
    assert "the policy allows 0" in verdict.message
    assert by_property(verdict)[A2].details["credential"] == credential_fields(A)["credential"]
    kinds = [e["kind"] for e in verdict.evidence]
    assert kinds.count("wire_request") == 4
    assert "fault" in kinds  # the rejections the toxic made
    assert by_property(verdict)[A1].passed  # no refresh at all: not A1's finding


def test_a_refresh_on_every_attempt_fails_a1() -> None:
    w = Wire()
    for token in (A, B, C, D):
        w.send(token, 401)
    verdict = check_auth(w.events)
    assert not verdict.passed
    assert verdict.property == A1
    assert "came back with 2 different credentials (retry 2" in verdict.message
    assert "at most 1 refresh(es) per rejection" in verdict.message
    fingerprint = credential_fields(C)["credential"]
    assert f"credential {fingerprint} -> HTTP 401" in verdict.message
    assert by_property(verdict)[A2].passed  # each retry used a new credential


def test_same_credential_retries_within_the_declared_allowance() -> None:
    w = Wire()
    w.send(A, 401)
    w.send(A, 401)
    w.send(B, 200)
    lenient = AuthPolicy(retry_same_credential=True)
    assert check_auth(w.events, lenient).passed
    assert by_property(check_auth(w.events))[A2].passed is False
    w.send(B, 401, target="/items/2")
    w.send(C, 401, target="/items/2")
    w.send(C, 401, target="/items/2")  # the refreshed token re-sent: A3 under the lenient policy
    verdict = check_auth(w.events, lenient)
    assert verdict.property == A3
    assert "re-sent 2 times with the refreshed" in verdict.message
    assert "the policy allows 1 retry(ies) of the failed call per refresh" in verdict.message


def test_more_refreshes_may_be_declared() -> None:
    w = Wire()
    for token in (A, B, C):
        w.send(token, 401)
    assert not check_auth(w.events).passed
    assert check_auth(w.events, AuthPolicy(max_refreshes_per_rejection=2)).passed


def test_grpc_unauthenticated_is_a_rejection() -> None:
    w = Wire()
    method = "/calc.Calc/Add"
    for _ in range(3):
        w.send(A, 200, target=method, method="POST", grpc_status=16)
    verdict = check_auth(w.events)
    assert verdict.property == A2
    assert "UNAUTHENTICATED" in verdict.message
    ok = Wire()
    ok.send(A, 200, target=method, method="POST", grpc_status=16)
    ok.send(B, 200, target=method, method="POST", grpc_status=0)
    assert check_auth(ok.events).passed


def test_a_401_is_the_default_rejection_a_403_is_not() -> None:
    w = Wire()
    for _ in range(3):
        w.send(A, 403)
    assert check_auth(w.events).passed
    assert not check_auth(w.events, AuthPolicy(rejection_statuses=frozenset({401, 403}))).passed


# ---- logical calls -------------------------------------------------------------------------------
def test_marked_calls_are_judged_apart() -> None:
    w = Wire()
    with w.call("first"):
        w.send(A, 401)
        w.send(B, 401)  # refreshed, rejected again: the client gives up
    with w.call("second"):
        w.send(B, 401)  # a new call with the token it holds: not a retry
        w.send(C, 200)
    assert check_auth(w.events).passed
    with w.call("third"):
        w.send(C, 401)
        w.send(C, 401)
    stormy = check_auth(w.events)
    assert stormy.property == A2
    assert stormy.message.startswith("call 3 (third): GET /items/1 (connection 1, exchange 4)")
    del w.events[-7:]
    unmarked = [e for e in w.events if e["kind"] not in ("call_start", "call_end")]
    verdict = check_auth(unmarked)  # one excerpt, one call: B re-sent, C a second refresh
    assert verdict.details["failed"] == [A1, A2, A3]
    assert verdict.message.startswith("GET /items/1 (connection 1, exchange 0) was rejected")


# ---- credentials in clear ------------------------------------------------------------------------
def test_a_credential_in_clear_fails_a4() -> None:
    w = Wire()
    w.send(A, 200)
    w.send(A, 200, target="/items/2", tls=False)
    w.send(None, 200, target="/public", tls=False)  # no credential: nothing to leak
    verdict = check_auth(w.events)
    assert verdict.property == A4
    assert verdict.message.startswith("1 of 2 request(s) carrying a credential crossed the link")
    assert "first GET /items/2 on proxy 'api' (connection 1, exchange 1)" in verdict.message
    assert "with a Bearer credential" in verdict.message
    assert [e["target"] for e in verdict.evidence] == ["/items/2"]
    assert "token-a" not in verdict.report()
    relaxed = check_auth(w.events, AuthPolicy(require_tls=False))
    assert relaxed.passed
    assert by_property(relaxed)[A4].vacuous


def test_every_credential_inside_tls_passes_a4() -> None:
    w = Wire()
    w.send(A, 200)
    check = by_property(check_auth(w.events))[A4]
    assert check.passed
    assert not check.vacuous
    assert "all in TLS" in check.message


# ---- the policy ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fields",
    [
        {"max_refreshes_per_rejection": -1},
        {"max_retries_after_refresh": 1.5},
        {"max_retries_after_refresh": True},
    ],
)
def test_a_bad_policy_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be an integer >= 0"):
        AuthPolicy(**fields)


def test_auth_checks_are_the_four_properties_in_order() -> None:
    w = Wire()
    w.send(A, 401)
    w.send(B, 200)
    assert [c.property for c in auth_checks(w.events, AuthPolicy())] == [A1, A2, A3, A4]
    assert "1 refresh(es) per rejection" in AuthPolicy().describe()
