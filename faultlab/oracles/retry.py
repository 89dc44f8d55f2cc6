"""Retry oracle: attempts, classification, backoff bounds, budget and idempotency gate (§1.4).

Every logical call in the journal is compared with the declared
:class:`RetryPolicy`. Gaps are measured as the client saw them:
``g_k = attempt_start(k+1) - attempt_end(k)``, the client sleeping only after
it classified attempt k. Lower bounds are tight (``eps_early``), upper bounds
loose (``eps_late`` plus a ratio), as the reference prescribes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from faultlab.journal.timeline import Attempt, Call, Source, Timeline, timeline
from faultlab.oracles._common import PropertyCheck, evidence_for, secs
from faultlab.oracles.policies import REJECTION_KINDS, RetryPolicy
from faultlab.oracles.stats import BandSample, band_ks, min_samples_for
from faultlab.oracles.verdict import Verdict, combine

__all__ = ["check_backoff_distribution", "check_retry", "delay_samples", "retry_checks"]

ORACLE = "retry"
R0 = "R0 first attempt not delayed"
R1 = "R1 attempt bound"
R2 = "R2 no retry after success"
R3 = "R3 classification"
R4 = "R4 delay lower bound"
R5 = "R5 delay upper bound"
R6 = "R6 delay distribution"
R8 = "R8 time budget"
R9 = "R9 Retry-After honoured"
"""Also gRPC pushback: a retry waits exactly the ``grpc-retry-pushback-ms`` asked, and none
follows a negative one (the server said "do not retry")."""
R11 = "R11 idempotency gate"
R16 = "R16 no trailing sleep"


def check_retry(source: Source | Timeline, policy: RetryPolicy) -> Verdict:
    """One verdict over R0 R1 R2 R3 R4 R5 R6 R8 R11 R16 (and R9 when the policy honours
    ``Retry-After`` or gRPC pushback), named after the first property that failed.

    Vacuous when no attempt failed with a retryable error: the retry path
    never ran, so the check could not have caught a wrong retry.
    """
    tl = timeline(source)
    checks = retry_checks(tl, policy)
    failed_attempts = sum(1 for c in tl.calls for a in c.attempts if a.failed)
    retryable = sum(1 for c in tl.calls for a in c.attempts if policy.may_retry(a))
    vacuous = retryable == 0
    verdict = combine(ORACLE, checks, vacuous=vacuous)
    if verdict.passed:
        calls = [c for c in tl.calls if c.attempts]
        retried = sum(1 for c in calls if len(c.attempts) > 1)
        if vacuous:
            reason = "no attempt failed with a retryable error" + (
                "" if tl.touched() else " and no fault touched traffic"
            )
            message = (
                f"retry policy ({policy.describe()}) held over {len(calls)} call(s), "
                f"vacuously: {reason}, so no retry decision was ever made"
            )
        else:
            message = (
                f"retry policy ({policy.describe()}) held over {len(calls)} call(s): "
                f"{failed_attempts} failed attempt(s) ({retryable} retryable), "
                f"{retried} call(s) retried"
            )
        verdict = Verdict(
            verdict.oracle, verdict.property, True, vacuous, message, [], verdict.details
        )
    return verdict


def retry_checks(source: Source | Timeline, policy: RetryPolicy) -> list[Verdict]:
    """The per-property verdicts, in the order of the reference (R9 only when the policy
    honours ``Retry-After``)."""
    tl = timeline(source)
    calls = [c for c in tl.calls if c.attempts]
    checks = [
        _first_attempt(tl, calls, policy),
        _attempt_bound(tl, calls, policy),
        _after_success(tl, calls, policy),
        _classification(tl, calls, policy),
        _lower_bound(tl, calls, policy),
        _upper_bound(tl, calls, policy),
        _distribution(tl, policy, delay_samples(tl, policy)),
        _budget(tl, calls, policy),
    ]
    if policy.respect_retry_after or policy.respect_pushback:
        checks.append(_retry_after(tl, calls, policy))
    checks += [_idempotency_gate(tl, calls, policy), _trailing_sleep(tl, calls, policy)]
    return checks


def _attempt_bound(tl: Timeline, calls: list[Call], policy: RetryPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, R1)
    if policy.max_attempts is None and not policy.retry_budgets:
        check.vacuous_reason = "R1: the policy sets no attempt bound"
        return check.verdict()
    for call in calls:
        check.checked += 1
        n = len(call.attempts)
        _budget_overrun(tl, call, policy, check)
        if policy.max_attempts is not None and n > policy.max_attempts:
            check.fail(
                f"{call.name} made {n} attempts; the policy allows at most "
                f"{policy.max_attempts} in total (attempt {policy.max_attempts + 1} should "
                f"never have been sent)",
                evidence_for(tl, call),
                call=call.id,
                attempts=n,
            )
    return check.verdict()


def _budget_overrun(tl: Timeline, call: Call, policy: RetryPolicy, check: PropertyCheck) -> None:
    """R1 for per-kind counters: at most n retries after failures of those kinds."""
    for kinds, n in policy.retry_budgets:
        retried = [a for a in call.attempts[:-1] if a.failed and a.error_kind in kinds]
        if len(retried) > n:
            check.fail(
                f"{call.name} was retried {len(retried)} times after failures of "
                f"{_kinds_text(kinds)}; the policy allows at most {n} such retries (attempt "
                f"{retried[n].number + 1} should never have been sent)",
                evidence_for(tl, call),
                call=call.id,
                retries=len(retried),
                budget=n,
            )
            return


def _kinds_text(kinds: frozenset[str]) -> str:
    names = sorted(kinds)
    return ", ".join(names) if len(names) <= 4 else ", ".join(names[:4]) + ", ..."


def _overlaps(policy: RetryPolicy, attempt: Attempt, nxt: Attempt) -> bool:
    """A hedge sent while ``attempt`` was still running (hedging policies only): it was not
    sent because of how ``attempt`` ended, so R2 and R3 do not judge it by that."""
    return policy.hedging and (attempt.t_end is None or nxt.t_start < attempt.t_end)


def _after_success(tl: Timeline, calls: list[Call], policy: RetryPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, R2)
    for call in calls:
        check.checked += 1
        for attempt, nxt in zip(call.attempts, call.attempts[1:], strict=False):
            if attempt.ok and not _overlaps(policy, attempt, nxt):
                check.fail(
                    f"{call.name}: attempt {attempt.number} succeeded, yet attempt "
                    f"{nxt.number} was sent; a success must end the call",
                    evidence_for(tl, call),
                    call=call.id,
                    attempt=nxt.number,
                )
                break
    return check.verdict()


def _classification(tl: Timeline, calls: list[Call], policy: RetryPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, R3)
    for call in calls:
        for attempt, nxt in zip(call.attempts, call.attempts[1:], strict=False):
            if not attempt.failed or _overlaps(policy, attempt, nxt):
                continue
            if policy.pushback_forbids(attempt):
                continue  # the server's pushback said "do not retry": R9's finding
            check.checked += 1
            judged = _with_method(call, attempt)
            if not policy.may_retry(judged):
                check.fail(
                    f"{call.name}: attempt {attempt.number} failed with "
                    f"{attempt.error_kind!r}{_why_not(judged, policy)}, yet attempt "
                    f"{nxt.number} was sent (a non-retryable failure means exactly one attempt)",
                    evidence_for(tl, call),
                    call=call.id,
                    attempt=nxt.number,
                    error_kind=attempt.error_kind,
                )
                break
        last = call.last
        if last is None or not last.failed or call.end_event is None:
            continue
        last = _with_method(call, last)
        if policy.retry_methods is not None and last.http_method is None:
            continue  # no request was read (server unreachable): its method, so its fate, unknown
        if not policy.may_retry(last) or policy.pushback_forbids(last):
            continue
        if not policy.gate_allows(call.method, call.idempotent, call.attempts):
            continue  # R11 forbids another send of this non-idempotent call: not retrying is right
        # something else ended the call (a breaker, a wrapper): not our question; but a wire
        # attempt's kind is never the caller's exception class (requests' RetryError)
        wrapped = call.error_kind not in (last.error_kind, None)
        if last.source != "wire" and call.outcome == "error" and wrapped:
            continue
        if call.outcome == "error" and call.error_kind in REJECTION_KINDS:
            continue  # an open breaker stopped the retries: the breaker oracle's question
        n = len(call.attempts)
        if policy.max_attempts is not None and n >= policy.max_attempts:
            continue
        if _counter_spent(call, policy):
            continue
        if not _budget_left(call, policy, n):
            continue
        check.checked += 1
        allowed = "unbounded" if policy.max_attempts is None else str(policy.max_attempts)
        check.fail(
            f"{call.name} gave up after {n} attempt(s) although attempt {n} failed with the "
            f"retryable {last.error_kind!r} and the policy allows {allowed} attempts "
            f"(retries never happened)",
            evidence_for(tl, call),
            call=call.id,
            attempts=n,
        )
    return check.verdict()


def _with_method(call: Call, attempt: Attempt) -> Attempt:
    """A wire attempt whose request was never read (the proxy could not reach the server)
    has no HTTP method: it is the method of the call's other attempts, when they agree."""
    if attempt.http_method is not None:
        return attempt
    known = {a.http_method for a in call.attempts if a.http_method is not None}
    return replace(attempt, http_method=known.pop()) if len(known) == 1 else attempt


def _why_not(attempt: Attempt, policy: RetryPolicy) -> str:
    """Why the policy does not retry after this failed attempt, in words."""
    if not policy.method_retryable(attempt):
        methods = ", ".join(sorted(policy.retry_methods or ()))
        return (
            f" on a {attempt.http_method} request, a method the policy does not retry "
            f"(it retries {methods} only)"
        )
    return ", which the policy does not retry"


def _counter_spent(call: Call, policy: RetryPolicy) -> bool:
    """Has the last failure's per-kind retry counter run out?"""
    last = call.attempts[-1]
    budget = policy.budget_for(last.error_kind)
    if budget is None:
        return False
    kinds, n = budget
    return sum(1 for a in call.attempts if a.failed and a.error_kind in kinds) > n


def _budget_left(call: Call, policy: RetryPolicy, n: int) -> bool:
    """Did the time budget clearly allow one more attempt after attempt n?"""
    if policy.deadline is None:
        return True
    last = call.attempts[-1]
    if last.t_end is None:
        return False
    elapsed = last.t_end - call.attempts[0].t_start
    margin = policy.tolerance.late(0.0)
    if policy.deadline_mode == "before":
        _, hi = policy.wait.bounds(n)
        return elapsed + hi + margin < policy.deadline
    return elapsed + margin < policy.deadline


def _gaps(call: Call) -> list[tuple[Attempt, float]]:
    """(attempt k, g_k) for every attempt k that ended and was followed by attempt k+1."""
    found = []
    for attempt, nxt in zip(call.attempts, call.attempts[1:], strict=False):
        if attempt.t_end is not None:
            found.append((attempt, nxt.t_start - attempt.t_end))
    return found


def _wait_bounds(policy: RetryPolicy, call: Call, attempt: Attempt) -> tuple[float, float]:
    """The wait after ``attempt``: the backoff, or a ``Retry-After`` the policy honours.

    Libraries either replace the backoff by the header's wait (urllib3) or take
    the larger of the two, so with a ``Retry-After`` the lower bound is the
    smaller and the upper bound the larger (R9 holds the header's wait itself,
    and a gRPC pushback's exactly). The backoff's index restarts after a pushback
    (:meth:`RetryPolicy.backoff_index`).
    """
    lo, hi = policy.wait.bounds(policy.backoff_index(call.attempts, attempt))
    asked = policy.retry_after_wait(attempt)
    if asked:
        return (min(lo, asked), max(hi, asked))
    return (lo, hi)


def _lower_bound(tl: Timeline, calls: list[Call], policy: RetryPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, R4)
    tol = policy.tolerance
    for call in calls:
        for attempt, gap in _gaps(call):
            if not attempt.end_exact:
                continue  # the client failed some time before the end we saw: no lower bound
            if policy.pushback_forbids(attempt):
                continue  # no retry was allowed at all: R9's finding, not a wait to judge
            k = attempt.number
            check.checked += 1
            lo, _ = _wait_bounds(policy, call, attempt)
            if gap < tol.early(lo):
                check.fail(
                    f"{call.name}: attempt {k + 1} started {secs(gap)} after attempt {k} "
                    f"failed; the policy ({policy.wait.describe()}) waits at least {secs(lo)} "
                    f"before retry {k}",
                    evidence_for(tl, call),
                    call=call.id,
                    retry=k,
                    gap=gap,
                    lower=lo,
                )
                break
    return check.verdict()


def _upper_bound(tl: Timeline, calls: list[Call], policy: RetryPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, R5)
    tol = policy.tolerance
    for call in calls:
        for attempt, gap in _gaps(call):
            k = attempt.number
            if policy.pushback_forbids(attempt):
                continue  # no retry was allowed at all: R9's finding, not a wait to judge
            _, hi = _wait_bounds(policy, call, attempt)
            if hi == float("inf"):
                continue
            check.checked += 1
            if gap > tol.late(hi):
                check.fail(
                    f"{call.name}: attempt {k + 1} started {secs(gap)} after attempt {k} "
                    f"failed; the policy ({policy.wait.describe()}) waits at most {secs(hi)} "
                    f"before retry {k} (tolerance {secs(tol.late(hi) - hi)})",
                    evidence_for(tl, call),
                    call=call.id,
                    retry=k,
                    gap=gap,
                    upper=hi,
                )
                break
    return check.verdict()


def _retry_after(tl: Timeline, calls: list[Call], policy: RetryPolicy) -> Verdict:
    """R9: after a response whose ``Retry-After`` the policy honours, wait at least that long;
    after a gRPC pushback, exactly that long, and not at all after a negative one (A6)."""
    check = PropertyCheck(ORACLE, R9)
    tol = policy.tolerance
    statuses = ", ".join(str(s) for s in sorted(policy.retry_after_statuses))
    asked_for = []
    if policy.respect_retry_after:
        asked_for.append(f"no failed response with status {statuses} carried a Retry-After header")
    if policy.respect_pushback:
        asked_for.append("no gRPC response carried grpc-retry-pushback-ms")
    check.vacuous_reason = "R9: " + " and ".join(asked_for)
    for call in calls:
        for attempt, nxt in zip(call.attempts, call.attempts[1:], strict=False):
            if policy.pushback_forbids(attempt):
                check.vacuous_reason = ""
                check.checked += 1
                check.fail(
                    f"{call.name}: attempt {attempt.number} got {attempt.error_kind} with "
                    f"grpc-retry-pushback-ms: {attempt.pushback_ms} (the server said do not "
                    f"retry), yet attempt {nxt.number} was sent",
                    evidence_for(tl, call),
                    call=call.id,
                    retry=attempt.number,
                    pushback_ms=attempt.pushback_ms,
                )
                break
        for attempt, gap in _gaps(call):
            asked = policy.retry_after_wait(attempt)
            if asked is None:
                continue
            check.vacuous_reason = ""
            check.checked += 1
            pushback = policy.pushback_wait(attempt) is not None
            if gap < tol.early(asked):
                what = (
                    f"got {attempt.error_kind} with grpc-retry-pushback-ms: {attempt.pushback_ms}"
                    if pushback
                    else f"got HTTP {attempt.status} with Retry-After: {attempt.retry_after:g} s"
                )
                honours = "gRPC pushback" if pushback else "Retry-After"
                check.fail(
                    f"{call.name}: attempt {attempt.number} {what}, yet attempt "
                    f"{attempt.number + 1} started {secs(gap)} later; the policy honours "
                    f"{honours}, so the retry must wait at least {secs(asked)}",
                    evidence_for(tl, call),
                    call=call.id,
                    retry=attempt.number,
                    gap=gap,
                    retry_after=asked,
                )
                break
            if pushback and gap > tol.late(asked):
                check.fail(
                    f"{call.name}: attempt {attempt.number} got {attempt.error_kind} with "
                    f"grpc-retry-pushback-ms: {attempt.pushback_ms}, yet attempt "
                    f"{attempt.number + 1} started {secs(gap)} later; a pushback sets the wait "
                    f"to exactly {secs(asked)} (A6; tolerance {secs(tol.late(asked) - asked)})",
                    evidence_for(tl, call),
                    call=call.id,
                    retry=attempt.number,
                    gap=gap,
                    retry_after=asked,
                )
                break
    return check.verdict()


def _budget(tl: Timeline, calls: list[Call], policy: RetryPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, R8)
    if policy.deadline is None:
        check.vacuous_reason = "R8: the policy sets no time budget"
        return check.verdict()
    tol = policy.tolerance
    for call in calls:
        t0 = call.attempts[0].t_start
        for attempt, nxt in zip(call.attempts, call.attempts[1:], strict=False):
            check.checked += 1
            if policy.deadline_mode == "before":
                started = nxt.t_start - t0
                if started > tol.late(policy.deadline):
                    check.fail(
                        f"{call.name}: attempt {nxt.number} started {secs(started)} after the "
                        f"first, past the {secs(policy.deadline)} budget (every attempt must "
                        f"start before it)",
                        evidence_for(tl, call),
                        call=call.id,
                        attempt=nxt.number,
                    )
                    break
                continue
            if attempt.t_end is None:
                continue
            elapsed = attempt.t_end - t0
            if elapsed >= policy.deadline + tol.eps_early:
                check.fail(
                    f"{call.name}: attempt {attempt.number} ended {secs(elapsed)} after the "
                    f"first attempt started, past the {secs(policy.deadline)} budget, yet "
                    f"attempt {nxt.number} was sent (retries must stop once the budget is spent)",
                    evidence_for(tl, call),
                    call=call.id,
                    attempt=nxt.number,
                    elapsed=elapsed,
                )
                break
    return check.verdict()


def _idempotency_gate(tl: Timeline, calls: list[Call], policy: RetryPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, R11)
    for call in calls:
        if policy.is_idempotent(call.method, call.idempotent) or len(call.attempts) < 2:
            continue
        check.checked += 1
        prior_failures = [a for a in call.attempts[:-1] if a.failed]
        if all(a.error_kind in policy.not_sent_kinds for a in prior_failures):
            continue  # every retry followed a failure that proves the request never left
        unkeyed = [a for a in call.attempts if not a.key]
        if policy.require_key and not unkeyed:
            continue
        what = (
            f"attempt(s) {', '.join(str(a.number) for a in unkeyed)} carried no idempotency key"
            if policy.require_key
            else "the policy allows no retry of it at all"
        )
        check.fail(
            f"{call.name} is not idempotent and was sent {len(call.attempts)} times, but "
            f"{what}: the server may apply it more than once",
            evidence_for(tl, call),
            call=call.id,
            attempts=len(call.attempts),
        )
    if check.checked == 0:
        check.vacuous_reason = "R11: no non-idempotent call was retried"
    return check.verdict()


def _trailing_sleep(tl: Timeline, calls: list[Call], policy: RetryPolicy) -> Verdict:
    check = PropertyCheck(ORACLE, R16)
    tol = policy.tolerance
    for call in calls:
        last = call.last
        if last is None or last.t_end is None or call.t_end is None:
            continue
        check.checked += 1
        lag = call.t_end - last.t_end
        if lag > tol.late(0.0):
            check.fail(
                f"{call.name} returned {secs(lag)} after its last attempt ({last.describe()}); "
                f"nothing should be waited for after the final attempt (at most "
                f"{secs(tol.late(0.0))})",
                evidence_for(tl, call),
                call=call.id,
                lag=lag,
            )
    return check.verdict()


# ---- R0: no wait before the first attempt --------------------------------------------------
def _first_attempt(tl: Timeline, calls: list[Call], policy: RetryPolicy) -> Verdict:
    """R0: a retry policy waits between attempts, never before the first one.

    Judged on calls the caller marked (a ``logical_call`` window), from the call's start to
    its first attempt, when no fault acted in between (a slow link delays the request)."""
    check = PropertyCheck(ORACLE, R0)
    tol = policy.tolerance
    for call in calls:
        first = call.attempts[0]
        if call.start_event.get("seq") == -1 or first.number > 1:
            continue  # no caller-marked start, or the first attempt was not seen
        if tl.faults_between(call.t_start, first.t_start):
            continue
        check.checked += 1
        delay = first.t_start - call.t_start
        if delay > tol.late(0.0):
            check.fail(
                f"{call.name}: its first attempt started {secs(delay)} after the call did, "
                f"with no fault in between; a retry policy waits between attempts, never "
                f"before the first (at most {secs(tol.late(0.0))} of slack)",
                evidence_for(tl, call),
                call=call.id,
                delay=delay,
            )
    if check.checked == 0:
        check.vacuous_reason = "R0: no marked call reached its first attempt untouched by faults"
    return check.verdict()


# ---- R6: the waits, pooled, follow the declared distribution --------------------------------
def delay_samples(source: Source | Timeline, policy: RetryPolicy) -> list[tuple[Call, BandSample]]:
    """Every measured wait whose declared distribution is random, with the interval its
    probability transform lies in given the policy's timing tolerance.

    Left out: waits after a give-up seen late (``end_exact`` false), after a
    ``Retry-After`` the policy honours (the server chose the wait), after a
    success, and those a time budget may have shortened."""
    tl = timeline(source)
    tol = policy.tolerance
    found: list[tuple[Call, BandSample]] = []
    for call in tl.calls:
        if not call.attempts:
            continue
        t0 = call.attempts[0].t_start
        previous: float | None = None
        for attempt, gap in _gaps(call):
            before, previous = previous, gap
            k = policy.backoff_index(call.attempts, attempt)
            if not attempt.failed or not attempt.end_exact or attempt.t_end is None:
                continue
            if policy.pushback_forbids(attempt):
                continue
            if policy.retry_after_wait(attempt) is not None:
                continue
            if policy.deadline is not None:
                _, hi = policy.wait.bounds(k)
                if attempt.t_end - t0 + hi + tol.eps_late >= policy.deadline:
                    continue  # the budget may cut this wait short
            prev_low = None if before is None else _true_low(before, policy)
            prev_high = None if before is None else before + tol.eps_early
            narrow = policy.wait.distribution(k, prev_low)
            wide = policy.wait.distribution(k, prev_high)
            if narrow is None or wide is None or narrow.degenerate:
                continue
            u_high = narrow.cdf(gap + tol.eps_early)
            u_low = wide.cdf(_true_low(gap, policy), left=True)
            found.append((call, BandSample(k, gap, min(u_low, u_high), u_high, narrow)))
    return found


def _true_low(gap: float, policy: RetryPolicy) -> float:
    """The shortest wait the client may have slept to measure ``gap``: a typical processing
    slack on top (``Tolerance.typical``; not the worst case R5 allows one late outlier: a KS
    test shrugs off a few outliers, and a wide slack would blind it to waits stuck at the cap)."""
    return max(0.0, gap - policy.tolerance.typical)


def _distribution(
    tl: Timeline, policy: RetryPolicy, samples: list[tuple[Call, BandSample]]
) -> Verdict:
    check = PropertyCheck(ORACLE, R6)
    needed = max(policy.min_samples, min_samples_for(policy.alpha))
    if len(samples) < needed:
        check.vacuous_reason = (
            f"R6: {len(samples)} randomised wait(s) measured; the distribution test needs at "
            f"least {needed} (alpha {policy.alpha:g})"
            if samples or _is_random(policy)
            else "R6: the declared wait is not random; R4 and R5 bound every wait exactly"
        )
        return check.verdict()
    check.checked = len(samples)
    result = band_ks([s for _, s in samples])
    if result.p_value < policy.alpha:
        how = (
            "shorter than declared (no backoff, or a cap that does not grow)"
            if result.side == "short"
            else "longer than declared (no jitter, or stuck at the cap)"
        )
        calls = list(dict.fromkeys(c for c, _ in samples))[:3]
        example = ", ".join(secs(s.gap) for c, s in samples if c is calls[0])
        check.fail(
            f"over {len(samples)} waits of {len({c.id for c, _ in samples})} call(s) the delays "
            f"do not follow the declared {policy.wait.describe()}: they are {how} "
            f"(e.g. {calls[0].name} waited {example}). {_per_retry(samples)} "
            f"(Kolmogorov-Smirnov band test: D = {result.statistic:.2f}, "
            f"p = {result.p_value:.1e} < alpha {policy.alpha:g})",
            evidence_for(tl, *calls),
            call=calls[0].id,
            samples=len(samples),
            statistic=result.statistic,
            p_value=result.p_value,
        )
    return check.verdict(
        f"R6: {len(samples)} waits follow {policy.wait.describe()} "
        f"(D = {result.statistic:.2f}, p = {result.p_value:.2g})"
    )


def _is_random(policy: RetryPolicy) -> bool:
    dist = policy.wait.distribution(2, 1.0)
    return dist is not None and not dist.degenerate


def _per_retry(samples: list[tuple[Call, BandSample]]) -> str:
    """``retry 1: median 2.0 ms of 14 (declared U(0, 100 ms)); ...``"""
    by_retry: dict[int, list[BandSample]] = {}
    for _, sample in samples:
        by_retry.setdefault(sample.retry, []).append(sample)
    parts = []
    for k in sorted(by_retry)[:4]:
        items = by_retry[k]
        gaps = sorted(s.gap for s in items)
        median = gaps[len(gaps) // 2]
        parts.append(
            f"retry {k}: median {secs(median)} of {len(items)} "
            f"(declared {items[0].declared.describe()})"
        )
    return "; ".join(parts) + ("; ..." if len(by_retry) > 4 else "")


def check_backoff_distribution(
    sources: Sequence[Source | Timeline], policy: RetryPolicy
) -> Verdict:
    """R6 over the waits of many runs pooled (one excerpt rarely holds enough): e.g. every
    example of a Hypothesis search, or every test of a suite, of one client."""
    pooled: list[tuple[Call, BandSample]] = []
    last: Timeline | None = None
    for source in sources:
        last = timeline(source)
        pooled.extend(delay_samples(last, policy))
    return _distribution(last if last is not None else timeline([]), policy, pooled)
