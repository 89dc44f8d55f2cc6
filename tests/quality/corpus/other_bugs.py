"""Deliberately wrong deadline and decoding behaviour."""

from __future__ import annotations

from typing import Any

from examples.clients import CalcClient, DeadlineCalc, is_retryable
from faultlab.errors import EndOfStream, RemoteProtocolError
from faultlab.oracles.clock import VirtualClock
from faultlab.rpc.client import Client


class DeadlineIgnored(CalcClient):
    """A fixed 0.2 s timeout per attempt and three attempts, whatever the 0.3 s deadline says
    (googleapis/java-bigtable-hbase #1858, gax-java #561)."""

    def __init__(self, rpc: Client, clock: VirtualClock) -> None:
        super().__init__(rpc, attempt_timeout=0.2, sleep=clock.sleep, monotonic=clock.monotonic)
        self.declared = DeadlineCalc(rpc).policies()

    def policies(self) -> dict[str, Any]:
        return {"deadline": self.declared["deadline"]}

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        for number in range(1, 4):
            try:
                return self.attempt(method, args, params, idempotency_key)
            except Exception as exc:
                if not is_retryable(exc) or number == 3:
                    raise
                self.sleep(0.02)
        raise AssertionError("unreachable")


class TruncatedAsValue(CalcClient):
    """Takes a reply cut short (EOF, truncated frame) as an empty answer instead of an error."""

    def __init__(self, rpc: Client, clock: VirtualClock) -> None:
        super().__init__(rpc)

    def policies(self) -> dict[str, Any]:
        return {}

    def call(
        self, method: str, *args: Any, idempotency_key: str | None = None, **params: Any
    ) -> Any:
        try:
            return self.attempt(method, args, params, idempotency_key)
        except (EndOfStream, RemoteProtocolError):
            return ""  # "whatever we read of the payload"
