"""Recorded-style journals for report tests: synthetic, but shaped like a real run's events.

Each case follows what the plugin, the Lab and the proxy write: ``toxic_added`` before the test
body's calls, ``fault`` decisions from the link, attempts and calls from the instrumented client,
``server_request`` from the server, ``verdict`` events, then the ``test`` event and finally the
``toxic_removed`` of the fixture teardown.
"""

from __future__ import annotations

import random
from typing import Any

DECISIONS = {
    "latency": "delay",
    "reset_peer": "reset",
    "drop": "drop",
    "timeout": "drop",
    "rpc_error": "rpc_error",
}


class JournalBuilder:
    """Appends events with a moving clock; ``case`` records one whole test."""

    def __init__(self, seed: int = 4242, *, worker: str | None = None) -> None:
        self.seed = seed
        self.worker = worker
        self.t = 0.0
        self.seq = 0
        self.call = 0
        self.events: list[dict[str, Any]] = []
        self.rng = random.Random(seed)

    def ev(self, kind: str, dt: float = 0.0, **fields: Any) -> dict[str, Any]:
        self.t = round(self.t + dt, 6)
        event = {"seq": self.seq, "t": self.t, "kind": kind, **fields}
        self.seq += 1
        self.events.append(event)
        return event

    def data(self, **header: Any) -> dict[str, Any]:
        """The journal file object, as ``write_journal`` writes it."""
        head: dict[str, Any] = {
            "schema": "faultlab.journal/1",
            "seed": self.seed,
            "created": 1_760_000_000.0,
            "environment": {
                "python": "3.11.9 (CPython)",
                "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
                "faultlab": "0.1.0",
            },
        }
        if self.worker is not None:
            head["worker"] = self.worker
        head.update(header)
        return {**head, "events": list(self.events)}

    def case(
        self,
        transport: str,
        protocol: str,
        fault: dict[str, Any] | None = None,
        *,
        name: str = "test_resilient_call",
        outcome: str = "passed",
        verdicts: tuple[tuple[str, str, bool, bool], ...] = (
            ("retry", "bounded_retries", True, False),
        ),
        calls: int = 6,
        triggered: bool = True,
        process: str | None = None,
        plan: Any = None,
        message: str = "",
    ) -> str:
        fid = "none" if fault is None else fault["type"]
        nodeid = f"tests/test_service.py::{name}[{transport}-{protocol}-{fid}]"
        proxy = f"{protocol}_{transport}"
        self.ev(
            "connection",
            0.002,
            proxy=proxy,
            connection=1,
            client="127.0.0.1:50000",
            upstream="tcp://127.0.0.1:9000",
        )
        t_start = round(self.t + 0.0005, 6)
        self.t = t_start
        toxic = None
        if fault is not None:
            toxic = f"{fault['type']}_downstream"
            attrs = {k: v for k, v in fault.items() if k not in ("type", "toxicity")}
            self.ev(
                "toxic_added",
                0.001,
                proxy=proxy,
                toxic=toxic,
                name=toxic,
                type=fault["type"],
                stream="downstream",
                toxicity=fault.get("toxicity", 1.0),
                attributes=attrs,
            )
            self.ev(
                "fault",
                0.0002,
                proxy=proxy,
                connection=1,
                direction="downstream",
                toxic=toxic,
                type=fault["type"],
                decision="toxicity",
                active=triggered,
                draw=0.42,
                toxicity=fault.get("toxicity", 1.0),
            )
        if process is not None:
            self.ev("process", 0.001, action=process, pid=31337, target="server")
        for i in range(calls):
            self.call += 1
            call = self.call
            self.ev(
                "call_start",
                0.0008,
                call=call,
                method="add",
                params="(1, 2)",
                idempotent=True,
                label="",
            )
            attempt = 1
            while True:
                key = f"k{call}"
                self.ev(
                    "attempt_start",
                    0.0001,
                    call=call,
                    attempt=attempt,
                    method="add",
                    idempotency_key=key,
                    request_id=call * 10 + attempt,
                )
                base = 0.0012 + self.rng.random() * 0.0008
                fails = False
                if fault is not None and triggered and (i + attempt) % 2 == 0:
                    kind = fault["type"]
                    decision = DECISIONS.get(kind, "delay")
                    # as the latency toxic writes it: a delay names its milliseconds
                    extra = {"delay_ms": fault.get("latency", 50)} if decision == "delay" else {}
                    self.ev(
                        "fault",
                        base / 3,
                        proxy=proxy,
                        connection=1,
                        direction="downstream",
                        toxic=toxic,
                        type=kind,
                        decision=decision,
                        frame_index=i,
                        size=48,
                        **extra,
                    )
                    if kind == "latency":
                        base += fault.get("latency", 50) / 1000
                    else:
                        fails = attempt == 1
                if process == "pause" and i == 1:
                    base += 0.2
                    self.ev("process", base / 2, action="resume", pid=31337, target="server")
                if fails:
                    self.ev(
                        "attempt_end",
                        base,
                        call=call,
                        attempt=attempt,
                        outcome="error",
                        error="BrokenResourceError",
                        error_kind="connection_reset",
                        transient=True,
                    )
                    attempt += 1
                    continue
                self.ev(
                    "server_request",
                    base * 0.6,
                    method="add",
                    request_id=call * 10 + attempt,
                    idempotency_key=key,
                    outcome="ok",
                    error_kind=None,
                )
                self.ev("attempt_end", base * 0.4, call=call, attempt=attempt, outcome="ok")
                break
            self.ev(
                "call_end",
                0.0001,
                call=call,
                outcome="value",
                value="3",
                attempts=attempt,
                duration=0.003,
            )
        for oracle, prop, passed, vacuous in verdicts:
            self.ev(
                "verdict",
                0.0003,
                nodeid=nodeid,
                oracle=oracle,
                property=prop,
                passed=passed,
                vacuous=vacuous,
                message="ok" if passed else f"{prop}: 3 attempts > max_attempts=2",
                evidence=[1, 2, 3],
            )
        duration = round(self.t - t_start + 0.0004, 6)
        self.ev(
            "test",
            0.0006,
            nodeid=nodeid,
            outcome=outcome,
            duration=duration,
            transport=transport,
            protocol=protocol,
            fault=fault,
            backend="thread",
            seed=self.seed,
            plan=plan,
            replay=f"pytest '{nodeid}' --faultlab-seed={self.seed}",
            t_start=t_start,
            message=message,
        )
        if toxic is not None:
            self.ev("toxic_removed", 0.002, proxy=proxy, toxic=toxic)
        return nodeid


def sample_journal(seed: int = 4242) -> dict[str, Any]:
    """A small run with every status: passed, failed, vacuous, not triggered, skipped."""
    b = JournalBuilder(seed)
    b.ev("proxy_enabled", 0.001, proxy="binrpc_tcp", listen="tcp://127.0.0.1:40001")
    latency = {"type": "latency", "latency": 40, "jitter": 5}
    reset = {"type": "reset_peer", "timeout": 0}
    drop = {"type": "drop", "probability": 0.3}
    for transport in ("tcp", "unix"):
        for protocol in ("binrpc", "jsonrpc"):
            b.case(transport, protocol, None)
            b.case(
                transport,
                protocol,
                latency,
                triggered=not (transport == "unix" and protocol == "binrpc"),
            )
            if (transport, protocol) == ("tcp", "binrpc"):
                b.case(
                    transport,
                    protocol,
                    reset,
                    outcome="failed",
                    verdicts=(
                        ("retry", "bounded_retries", False, False),
                        ("idempotency", "at_most_once", True, False),
                    ),
                    plan={
                        "faults": [{"type": "reset_peer", "timeout": 0, "at_call": 2}],
                        "calls": 3,
                        "shrunk_from": 9,
                    },
                    message="AssertionError: bounded_retries: 3 attempts > max_attempts=2",
                )
            else:
                b.case(transport, protocol, reset)
            b.case(
                transport,
                protocol,
                drop,
                verdicts=(("fallback", "fallback_used", True, True),)
                if (transport, protocol) == ("unix", "jsonrpc")
                else (("retry", "bounded_retries", True, False),),
            )
    b.case("tcp", "binrpc", None, name="test_pause_server", process="pause", calls=3)
    b.case(
        "tcp", "jsonrpc", None, name="test_needs_docker", outcome="skipped", calls=0, verdicts=()
    )
    return b.data()
