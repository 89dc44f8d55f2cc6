"""Auth oracle: token refresh after a rejection, no retry storm, no credentials in clear (A#).

Why: a client holding an access token meets a 401 (gRPC ``UNAUTHENTICATED``) when the token
expires or is revoked. The right reaction is narrow: refresh the token once, re-send the
failed call once with the new one, and give up if that fails too. The two classic bugs are
storms: re-sending the rejected token again and again, or refreshing on every attempt
without bound (both hammer the server and the identity provider). And a bearer token sent
over a link without TLS can be read and replayed by anyone on it.

The oracle reads the wire: each ``wire_request`` carries a ``credential`` fingerprint (never
the secret, :func:`faultlab.journal.wire.credential_fingerprint`) and ``tls: true`` when the
proxy read it inside TLS. A *refresh* is seen as the failed call coming back with a
credential not used before in that rejection (the token request itself usually goes to an
identity provider, not through the proxy). Per logical call (or, with none marked, the whole
excerpt), each request rejected starts an *episode*: the later requests of the same method
and target, up to the first one not rejected, are its retries.

- **A1** at most ``max_refreshes_per_rejection`` new credentials in an episode;
- **A2** no retry carries a credential already rejected in it (``retry_same_credential``:
  at most ``max_retries_after_refresh`` such retries);
- **A3** at most ``max_retries_after_refresh`` retries with each refreshed credential;
- **A4** no request carries a credential in clear text (``require_tls``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faultlab.journal import schema as ev
from faultlab.journal.timeline import (
    WHOLE_EXCERPT_CALL,
    Attempt,
    Call,
    Source,
    Timeline,
    timeline,
)
from faultlab.journal.wire import grpc_kind
from faultlab.oracles._common import PropertyCheck
from faultlab.oracles.verdict import Verdict, combine

__all__ = ["AuthPolicy", "auth_checks", "check_auth"]

ORACLE = "auth"
A1 = "A1 one refresh per rejection"
A2 = "A2 no retry with a rejected credential"
A3 = "A3 failed call retried at most once after refresh"
A4 = "A4 no credentials in clear"
UNAUTHENTICATED_KIND = grpc_kind(16)
MAX_CLEAR_EVIDENCE = 20


@dataclass(frozen=True)
class AuthPolicy:
    """What a token-refreshing client is declared to do when a credential is rejected."""

    max_refreshes_per_rejection: int = 1
    """New credentials the client may try for one failed call."""
    max_retries_after_refresh: int = 1
    """Times the failed call may be re-sent with each refreshed credential."""
    require_tls: bool = True
    """A credential on a link without TLS is a finding (A4)."""
    retry_same_credential: bool = False
    """The client may re-send the failed call with the rejected credential (at most
    ``max_retries_after_refresh`` times) before refreshing."""
    rejection_statuses: frozenset[int] = field(default_factory=lambda: frozenset({401}))
    """HTTP statuses that reject a credential (gRPC: ``UNAUTHENTICATED`` always does)."""
    name: str = ""

    def __post_init__(self) -> None:
        for name in ("max_refreshes_per_rejection", "max_retries_after_refresh"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"AuthPolicy.{name} must be an integer >= 0, got {value!r}")
        object.__setattr__(self, "rejection_statuses", frozenset(self.rejection_statuses))

    def describe(self) -> str:
        same = "allowed" if self.retry_same_credential else "never"
        tls = "TLS required" if self.require_tls else "clear text allowed"
        return (
            f"at most {self.max_refreshes_per_rejection} refresh(es) per rejection, "
            f"{self.max_retries_after_refresh} retry(ies) per refresh, "
            f"same-credential retry {same}, {tls}"
        )

    def rejects(self, attempt: Attempt) -> bool:
        """Whether the server (or a fault) rejected the attempt's credential."""
        if attempt.error_kind == UNAUTHENTICATED_KIND:
            return True
        return attempt.protocol != "grpc" and attempt.status in self.rejection_statuses


@dataclass(frozen=True)
class _Episode:
    call: Call
    rejected: Attempt
    retries: tuple[Attempt, ...]

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return (self.rejected, *self.retries)


def check_auth(source: Source | Timeline, policy: AuthPolicy | None = None) -> Verdict:
    """One verdict over A1 A2 A3 A4, named after the first property that failed.

    Vacuous when no credential was rejected and none crossed the wire (nothing to judge).
    """
    policy = policy or AuthPolicy()
    tl = timeline(source)
    episodes = _episodes(tl, policy)
    checks = auth_checks(tl, policy, episodes)
    verdict = combine(ORACLE, checks)
    if verdict.passed and not verdict.vacuous:
        retried = sum(1 for e in episodes if e.retries)
        message = (
            f"auth policy ({policy.describe()}) held: {len(episodes)} rejection(s), "
            f"{retried} retried; {_credentialed(tl)} request(s) carried a credential"
        )
        verdict = Verdict(
            verdict.oracle, verdict.property, True, False, message, [], verdict.details
        )
    return verdict


def auth_checks(
    source: Source | Timeline, policy: AuthPolicy, episodes: list[_Episode] | None = None
) -> list[Verdict]:
    """The per-property verdicts A1 A2 A3 A4."""
    tl = timeline(source)
    found = _episodes(tl, policy) if episodes is None else episodes
    return [
        _refreshes(tl, found, policy),
        _same_credential(tl, found, policy),
        _retries_after_refresh(tl, found, policy),
        _in_clear(tl, policy),
    ]


# ---- reading the wire -----------------------------------------------------------------------
def _request(attempt: Attempt) -> dict[str, Any] | None:
    first = attempt.events[0] if attempt.events else None
    if attempt.source != "wire" or first is None or first.get("kind") != ev.WIRE_REQUEST:
        return None
    return first


def _credential(attempt: Attempt) -> str | None:
    request = _request(attempt)
    value = request.get("credential") if request is not None else None
    return value if isinstance(value, str) else None


def _show(credential: str | None) -> str:
    return f"credential {credential}" if credential else "no credential"


def _call(episode: _Episode) -> str:
    """How a message starts: the marked call it is in (nothing when none was marked)."""
    call = episode.call
    if call.id == WHOLE_EXCERPT_CALL and call.start_event.get("seq") == -1:
        return ""
    return f"call {call.id} ({call.label or call.method}): "


def _what(attempt: Attempt) -> str:
    request = _request(attempt) or {}
    where = f"connection {request.get('connection')}, exchange {request.get('exchange')}"
    return f"{attempt.method or 'a request'} ({where})"


def _answer(attempt: Attempt, policy: AuthPolicy) -> str:
    if policy.rejects(attempt):
        return "UNAUTHENTICATED" if attempt.protocol == "grpc" else f"HTTP {attempt.status}"
    return attempt.describe().removeprefix(f"attempt {attempt.number} ")


def _episodes(tl: Timeline, policy: AuthPolicy) -> list[_Episode]:
    """Each rejected request of a call with the same request's later attempts, up to the
    first not rejected (a request rejected inside an episode belongs to it)."""
    found = []
    for call in tl.calls:
        wire = [a for a in call.attempts if _request(a) is not None]
        taken: set[int] = set()
        for i, attempt in enumerate(wire):
            if i in taken or not policy.rejects(attempt):
                continue
            retries = []
            for j in range(i + 1, len(wire)):
                if wire[j].method != attempt.method:
                    continue
                taken.add(j)
                retries.append(wire[j])
                if not policy.rejects(wire[j]):
                    break
            found.append(_Episode(call, attempt, tuple(retries)))
    return found


def _evidence(tl: Timeline, episode: _Episode) -> list[dict[str, Any]]:
    items = {e.get("seq", id(e)): e for a in episode.attempts for e in a.events}
    last = episode.attempts[-1]
    t1 = last.t_end if last.t_end is not None else last.t_start
    for e in tl.faults_between(episode.rejected.t_start, t1):
        items[e.get("seq", id(e))] = e
    return sorted(items.values(), key=lambda e: e.get("seq", 0))


def _history(episode: _Episode, policy: AuthPolicy, upto: int | None = None) -> str:
    shown = episode.attempts if upto is None else episode.attempts[: upto + 1]
    steps = [f"{_show(_credential(a))} -> {_answer(a, policy)}" for a in shown]
    return "; ".join(steps)


def _vacuous(check: PropertyCheck, episodes: list[_Episode]) -> None:
    if not episodes:
        check.vacuous_reason = f"{check.property}: no credential was rejected"


# ---- the properties -------------------------------------------------------------------------
def _refreshes(tl: Timeline, episodes: list[_Episode], policy: AuthPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, A1)
    _vacuous(check, episodes)
    limit = policy.max_refreshes_per_rejection
    for episode in episodes:
        check.checked += 1
        used = {_credential(episode.rejected)}
        refreshes = 0
        for n, retry in enumerate(episode.retries, 1):
            credential = _credential(retry)
            if credential in used:
                continue
            used.add(credential)
            refreshes += 1
            if refreshes > limit:
                check.fail(
                    f"{_call(episode)}{_what(episode.rejected)} was rejected, and the "
                    f"client came back with {refreshes} different credentials (retry {n} "
                    f"brought a new one again); the policy allows at most {limit} refresh(es) "
                    f"per rejection, so a refresh that fails means giving up, not refreshing "
                    f"again. Seen: {_history(episode, policy, n)}",
                    _evidence(tl, episode),
                    call=episode.call.id,
                    refreshes=refreshes,
                )
                break
    return check.verdict()


def _same_credential(tl: Timeline, episodes: list[_Episode], policy: AuthPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, A2)
    _vacuous(check, episodes)
    allowed = policy.max_retries_after_refresh if policy.retry_same_credential else 0
    for episode in episodes:
        check.checked += 1
        rejected: set[str | None] = {_credential(episode.rejected)}
        again = 0
        for n, retry in enumerate(episode.retries, 1):
            credential = _credential(retry)
            if credential in rejected:
                again += 1
                if again > allowed:
                    check.fail(
                        f"{_call(episode)}{_what(episode.rejected)} was rejected, and "
                        f"retry {n} sent the failed call again with the rejected "
                        f"{_show(credential)} ({again} such retr{'y' if again == 1 else 'ies'}"
                        f"; the policy allows {allowed}: a rejected credential must be "
                        f"refreshed before the call is re-sent). Seen: "
                        f"{_history(episode, policy, n)}",
                        _evidence(tl, episode),
                        call=episode.call.id,
                        credential=credential,
                        retries=again,
                    )
                    break
            if policy.rejects(retry):
                rejected.add(credential)
    return check.verdict()


def _retries_after_refresh(tl: Timeline, episodes: list[_Episode], policy: AuthPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, A3)
    _vacuous(check, episodes)
    limit = policy.max_retries_after_refresh
    for episode in episodes:
        check.checked += 1
        first = _credential(episode.rejected)
        sent: dict[str | None, int] = {}
        for n, retry in enumerate(episode.retries, 1):
            credential = _credential(retry)
            if credential == first:
                continue  # a retry with the rejected credential is A2's
            sent[credential] = sent.get(credential, 0) + 1
            if sent[credential] > limit:
                check.fail(
                    f"{_call(episode)}{_what(episode.rejected)} was rejected, then "
                    f"re-sent {sent[credential]} times with the refreshed "
                    f"{_show(credential)} (retry {n}); the policy allows {limit} retry(ies) "
                    f"of the failed call per refresh. Seen: {_history(episode, policy, n)}",
                    _evidence(tl, episode),
                    call=episode.call.id,
                    credential=credential,
                    retries=sent[credential],
                )
                break
    return check.verdict()


def _credentialed(tl: Timeline) -> int:
    return sum(1 for e in tl.of_kind(ev.WIRE_REQUEST) if isinstance(e.get("credential"), str))


def _in_clear(tl: Timeline, policy: AuthPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, A4)
    carried = [e for e in tl.of_kind(ev.WIRE_REQUEST) if isinstance(e.get("credential"), str)]
    if not policy.require_tls:
        check.vacuous_reason = f"{A4}: the policy allows credentials in clear (require_tls=False)"
        return check.verdict()
    if not carried:
        check.vacuous_reason = f"{A4}: no request carried a credential"
        return check.verdict()
    clear = [e for e in carried if e.get("tls") is not True]
    check.checked = len(carried)
    if clear:
        first = clear[0]
        what = first.get("rpc_method") or f"{first.get('method')} {first.get('target')}"
        check.fail(
            f"{len(clear)} of {len(carried)} request(s) carrying a credential crossed the link "
            f"in clear text, first {what} on proxy {first.get('proxy')!r} (connection "
            f"{first.get('connection')}, exchange {first.get('exchange')}) with a "
            f"{first.get('credential_scheme') or '?'} credential (fingerprint "
            f"{first.get('credential')}): anyone on the link can read and replay it; the "
            f"policy requires TLS (require_tls=True)",
            clear[:MAX_CLEAR_EVIDENCE],
            requests=len(clear),
        )
    return check.verdict(f"{A4} held: {len(carried)} request(s) carried a credential, all in TLS")
