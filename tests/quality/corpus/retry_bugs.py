"""Deliberately wrong retrying clients. Each declares the policy of the correct TenacityCalc
(4 attempts, 0.1 s x2 up to 0.8 s, transient errors, keys for counter.incr) and breaks it
the way a real library or user did (resilience.md section 10)."""

from __future__ import annotations

import random
from typing import Any

import tenacity

from examples.clients import NON_IDEMPOTENT, CalcClient, TenacityCalc, is_retryable
from faultlab.oracles import RetryPolicy
from faultlab.oracles.clock import VirtualClock
from faultlab.rpc.client import Client


class LoopClient(CalcClient):
    """A hand-rolled retry loop; subclasses get the loop subtly wrong."""

    attempts = 4

    def __init__(self, rpc: Client, clock: VirtualClock) -> None:
        super().__init__(rpc, sleep=clock.sleep, monotonic=clock.monotonic)
        self.retry_policy = TenacityCalc(rpc).retry_policy

    def policies(self) -> dict[str, Any]:
        return {"retry": self.retry_policy}

    def wait_for(self, k: int) -> float:
        return float(min(0.1 * 2 ** (k - 1), 0.8))

    def should_retry(self, exc: BaseException) -> bool:
        return is_retryable(exc)

    def key_for_attempt(
        self, key: str | None, params: dict[str, Any]
    ) -> tuple[str | None, dict[str, Any]]:
        return key, params

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        k = 0
        while True:
            k += 1
            key, sent = self.key_for_attempt(idempotency_key, params)
            try:
                return self.attempt(method, args, sent, key)
            except Exception as exc:
                if not self.should_retry(exc) or k >= self.attempts:
                    raise
            self.sleep(self.wait_for(k))


class NoBackoff(LoopClient):
    """Retries at once: a thundering herd against a server that is already failing."""

    def wait_for(self, k: int) -> float:
        return 0.0


class RetryForever(LoopClient):
    """Bare ``@retry``: no stop condition (capped at 40 here only so the test ends)."""

    attempts = 40


class RetriesBusinessErrors(LoopClient):
    """Retries every exception, division by zero included (a non-retryable error)."""

    def should_retry(self, exc: BaseException) -> bool:
        return True


class IncrWithoutKey(LoopClient):
    """Retries counter.incr without an idempotency key: a lost reply becomes a double add."""

    def incr(self, amount: int = 1) -> Any:
        return self.call("counter.incr", amount=amount)


class NewKeyPerRetry(LoopClient):
    """Mints the key inside the retry loop (gocardless-pro-python #12)."""

    def key_for_attempt(
        self, key: str | None, params: dict[str, Any]
    ) -> tuple[str | None, dict[str, Any]]:
        if key is None:
            return key, params
        fresh = self.new_key()
        return fresh, {**params, "key": fresh}


class NoCap(LoopClient):
    """Exponential backoff without its maximum (resilience4j #1044): declared cap 0.2 s."""

    def __init__(self, rpc: Client, clock: VirtualClock) -> None:
        super().__init__(rpc, clock)
        declared = TenacityCalc(rpc, max_wait=0.2).retry_policy
        self.retry_policy = RetryPolicy(
            max_attempts=4, wait=declared.wait, non_idempotent=NON_IDEMPOTENT
        )

    def wait_for(self, k: int) -> float:
        return 0.1 * 2 ** (k - 1)


class JitterBelowMin(LoopClient):
    """``wait_random_exponential(min=0.1)`` sampling from [0, high] (tenacity #162, PR #425)."""

    def __init__(self, rpc: Client, clock: VirtualClock) -> None:
        super().__init__(rpc, clock)
        declared = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(4),
            wait=tenacity.wait_random_exponential(multiplier=0.1, min=0.1, max=0.8),
            retry=tenacity.retry_if_exception(is_retryable),
        )
        self.retry_policy = RetryPolicy.from_tenacity(declared, non_idempotent=NON_IDEMPOTENT)
        self.rng = random.Random(7)

    def wait_for(self, k: int) -> float:
        return self.rng.uniform(0, min(0.1 * 2 ** (k - 1), 0.8))


class TrailingSleep(LoopClient):
    """Sleeps its backoff after the final attempt too, then gives up."""

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        for k in range(1, self.attempts + 1):
            try:
                return self.attempt(method, args, params, idempotency_key)
            except Exception as exc:
                if not self.should_retry(exc):
                    raise
                self.sleep(self.wait_for(k))
                if k == self.attempts:
                    raise
        raise AssertionError("unreachable")


class RetryOnFalsyResult(TenacityCalc):
    """``retry_if_result(lambda r: not r)`` added "for safety": a 0 is retried (cf. stamina #54)."""

    def __init__(self, rpc: Client, clock: VirtualClock) -> None:
        super().__init__(rpc, sleep=clock.sleep, monotonic=clock.monotonic)
        declared = self.retry_policy
        self.retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(4),
            wait=tenacity.wait_exponential(multiplier=0.1, max=0.8),
            retry=tenacity.retry_if_exception(is_retryable)
            | tenacity.retry_if_result(lambda r: not r),
            reraise=True,
            sleep=clock.sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        self.retry_policy = declared


class BudgetFromLastAttempt(LoopClient):
    """Measures the 0.5 s budget from the latest attempt, not the first, so it never runs out."""

    attempts = 40

    def __init__(self, rpc: Client, clock: VirtualClock) -> None:
        super().__init__(rpc, clock)
        self.retry_policy = RetryPolicy(
            max_attempts=40,
            wait=TenacityCalc(rpc, max_wait=0.2).retry_policy.wait,
            deadline=0.5,
            non_idempotent=NON_IDEMPOTENT,
        )

    def wait_for(self, k: int) -> float:
        return float(min(0.1 * 2 ** (k - 1), 0.2))

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        k = 0
        while True:
            k += 1
            started = self.monotonic()
            try:
                return self.attempt(method, args, params, idempotency_key)
            except Exception as exc:
                spent = self.monotonic() - started
                if not self.should_retry(exc) or k >= self.attempts or spent >= 0.5:
                    raise
            self.sleep(self.wait_for(k))


# ---- under a full-jitter policy: no single wait can be wrong, only their distribution ----------
class FullJitterLoop(LoopClient):
    """Declares tenacity's ``wait_random_exponential(0.25, max=2)``: any wait in [0, cap] is
    allowed, so R4/R5 cannot fail; the subclasses get the distribution wrong (R6) or sleep
    where no wait belongs (R0). The draws are seeded so a found plan replays the same."""

    def __init__(self, rpc: Client, clock: VirtualClock) -> None:
        super().__init__(rpc, clock)
        self.retry_policy = TenacityCalc(
            rpc, initial=0.25, max_wait=2.0, full_jitter=True
        ).retry_policy
        self.rng = random.Random(11)

    def cap(self, k: int) -> float:
        return float(min(0.25 * 2 ** (k - 1), 2.0))

    def wait_for(self, k: int) -> float:
        return self.rng.uniform(0, self.cap(k))


class NoBackoffUnderJitter(FullJitterLoop):
    """Retries at once: every wait is 0, inside [0, cap], yet no backoff at all."""

    def wait_for(self, k: int) -> float:
        return 0.0


class NoJitter(FullJitterLoop):
    """Always sleeps the cap: plain exponential backoff sold as full jitter (synchronised
    retries from every client, the herd jitter exists to break up)."""

    def wait_for(self, k: int) -> float:
        return self.cap(k)


class SleepFirst(FullJitterLoop):
    """Draws a jittered wait before every attempt, the first one included."""

    _first = True

    def attempt(
        self,
        method: str,
        args: tuple[Any, ...],
        params: dict[str, Any],
        key: str | None,
        timeout: float | None = None,
    ) -> Any:
        if self._first:
            self.sleep(self.rng.uniform(0, self.cap(1)))
        self._first = False
        return super().attempt(method, args, params, key, timeout)

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        self._first = True
        return super().call(method, *args, idempotency_key=idempotency_key, **params)
