"""Hostile input for fuzz tests: a seeded byte mutator and a per-input clock.

Structure-aware generation belongs to Hypothesis; the big counts come from here: valid
encodings mutated by bit flips, truncation, splicing, repeated brackets, huge numbers and
length fields, lone surrogates. Everything derives from one seed, printed on failure, so a
failing input can be replayed with ``Mutator(seed).inputs(...)``.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from faultlab.errors import FaultlabError

__all__ = ["Clock", "Mutator", "fuzz", "fuzz_seed", "per_input_limit"]

TOKENS: tuple[bytes, ...] = (
    b"[", b"{", b"]", b"}", b'"', b"\\", b"\\u", b"\\ud800", b"\\udfff", b"\x00", b"\xff",
    b"\xed\xa0\x80", b"\xc0\x80", b"<", b">", b"</", b"<value>", b"</value>", b"<array><data>",
    b"<struct><member>", b"<name>", b"</member>", b"<!DOCTYPE a [<!ENTITY e 'x'>]>", b"&e;",
    b"&#0;", b"&#xD800;", b"\r\n", b"\r\n\r\n", b"\n", b"HTTP/1.1", b"Content-Length: ",
    b"Transfer-Encoding: chunked\r\n", b"0\r\n\r\n", b"ffffffffffffffff\r\n", b"-1", b"1e999",
    b"NaN", b"Infinity", b"9" * 5000, b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff",
    b"\xdb\xff\xff\xff\xff", b"\xc9\xff\xff\xff\xff\xff", b"\xd7\xff", b"\xc7\x0c\xff",
    b"\x91" * 50, b"\x81\xc0" * 10, b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00",
    b"FL\x01\x00", b"FL\xff\x01", b"\x01\xff\xff\xff\xff", b"\x1f\x8b\x08\x00",
    b'"id":"\\ud800",', b'"\\udc00"', b"<member><name>a</name></member>", b"</struct>",
    b"</array>", b"</data>", b"<fault>", b"<i8>99999999999999999999</i8>", b"<nil/>",
    b"<dateTime.iso8601>x</dateTime.iso8601>", b"<base64>!</base64>", b"<bigdecimal>x</bigdecimal>",
    b"\xd6\xff\xff\xff\xff\xff", b"\xd7\xff\xff\xff\xff\xff\xff\xff\xff",
    b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", b"CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"Upgrade: h2c\r\nConnection: upgrade\r\n", b"Expect: 100-continue\r\n",
)  # fmt: skip
"""Bytes that break parsers: brackets, escapes, surrogates, framing headers, big lengths."""

DEEP: tuple[bytes, ...] = (b"[", b'{"a":', b"<value><array><data>", b"\x91", b"\x81\xa1a")
"""Openers whose repetition makes deep nesting in JSON, XML-RPC and msgpack.

Repeated at most ~1100 times (inputs up to ~25 KB): the per-input bound is about
pathological cost, and 100 KB of one-byte msgpack objects is 100,000 messages whose
linear cost (~2 µs each) alone exceeds 100 ms."""


def fuzz_seed() -> int:
    """``FAULTLAB_FUZZ_SEED`` if set (to replay), else a fresh one (printed on failure)."""
    value = os.environ.get("FAULTLAB_FUZZ_SEED")
    return int(value) if value else random.SystemRandom().randrange(2**32)


class Mutator:
    """Derives hostile inputs from a corpus of valid ones, reproducibly from ``seed``."""

    def __init__(self, seed: int, corpus: Sequence[bytes]) -> None:
        if not corpus:
            raise ValueError("the corpus needs at least one valid input")
        self.seed = seed
        self.rng = random.Random(seed)
        self.corpus = list(corpus)

    def inputs(self, count: int) -> Iterator[bytes]:
        """``count`` inputs: mostly mutated corpus items, some pure noise and deep nesting."""
        for _ in range(count):
            yield self.one()

    def one(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        if roll < 0.04:
            return rng.randbytes(rng.randrange(0, 64))
        if roll < 0.08:
            opener = rng.choice(DEEP)
            return opener * rng.choice((50, 200, 1000, 1100)) + rng.choice((b"", b"1", b"]"))
        data = bytearray(rng.choice(self.corpus))
        for _ in range(rng.randrange(1, 5)):
            self._mutate(data)
        return bytes(data)

    def _mutate(self, data: bytearray) -> None:
        rng = self.rng
        size = len(data)
        at = rng.randrange(size + 1)
        op = rng.randrange(10)
        if op == 0 and size:  # flip one bit
            data[min(at, size - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and size:  # set an interesting byte
            data[min(at, size - 1)] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xC0, 0xFF, 0x22, 0x5B))
        elif op == 2:  # truncate
            del data[at:]
        elif op == 3:  # delete a range
            del data[at : at + rng.randrange(1, 16)]
        elif op == 4:  # duplicate a range
            end = min(size, at + rng.randrange(1, 64))
            data[at:at] = data[at:end] * rng.randrange(1, 4)
        elif op == 5:  # splice another corpus item
            other = rng.choice(self.corpus)
            cut = rng.randrange(len(other) + 1)
            data[at:] = other[cut:]
        elif op == 6:  # insert a token
            data[at:at] = rng.choice(TOKENS)
        elif op == 7:  # repeat a token (deep nesting, long runs)
            data[at:at] = rng.choice(DEEP) * rng.choice((10, 120, 1100))
        elif op == 8:  # random bytes
            data[at:at] = rng.randbytes(rng.randrange(1, 8))
        else:  # replace a digit run by a huge or negative number
            data[at:at] = rng.choice((b"99999999999999999999", b"-9223372036854775809", b"1e400"))


@dataclass
class Clock:
    """Per-input wall time: the slowest inputs and their times, for the report and the bound.

    On a shared machine one input can be slow because the process was descheduled, so
    ``retime`` runs the slowest few again and keeps each one's best time: that is the
    figure asserted; the first-run maximum is reported beside it.
    """

    count: int = 0
    total: float = 0.0
    first_max: float = 0.0
    slowest: list[tuple[float, bytes]] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    keep: int = 5

    def time(self, data: bytes, run: Callable[[], Any]) -> None:
        """Run one input; record its time and outcome (``ok`` or the typed error's class)."""
        start = time.perf_counter()
        outcome = _outcome(run)
        elapsed = time.perf_counter() - start
        self.count += 1
        self.total += elapsed
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.first_max = max(self.first_max, elapsed)
        if len(self.slowest) < self.keep or elapsed > self.slowest[-1][0]:
            self.slowest.append((elapsed, data))
            self.slowest.sort(key=lambda item: -item[0])
            del self.slowest[self.keep :]

    def retime(self, run: Callable[[bytes], Any], repeats: int = 3) -> float:
        """Best-of-``repeats`` time of each slowest input; returns the largest."""
        retimed = []
        for _, data in self.slowest:
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                _outcome(functools.partial(run, data))
                best = min(best, time.perf_counter() - start)
            retimed.append((best, data))
        self.slowest = sorted(retimed, key=lambda item: -item[0])
        return self.max

    @property
    def max(self) -> float:
        return self.slowest[0][0] if self.slowest else 0.0

    def summary(self, name: str) -> str:
        worst = self.slowest[0][1][:60] if self.slowest else b""
        return (
            f"{name}: {self.count} inputs in {self.total:.2f}s, slowest {self.max * 1e3:.1f} ms"
            f" (first run {self.first_max * 1e3:.1f} ms; {worst!r}...), outcomes {self.outcomes}"
        )


def _keep(run: Callable[[bytes], Any], data: bytes, results: list[Any]) -> None:
    results.append(run(data))


def _outcome(run: Callable[[], Any]) -> str:
    try:
        run()
    except FaultlabError as exc:
        return type(exc).__name__
    return "ok"


def per_input_limit() -> float:
    """The per-input bound asserted: 100 ms in slow mode (quoted), 1 s in CI (never flakes)."""
    from tests.fuzz.budget import SLOW

    return 0.1 if SLOW else 1.0


def fuzz(
    name: str,
    corpus: Sequence[bytes],
    count: int,
    run: Callable[[bytes], Any],
    seed: int,
    *,
    inputs: Iterable[bytes] = (),
    check: Callable[[bytes, Any], None] | None = None,
) -> Clock:
    """Feed ``inputs`` then ``count`` mutated inputs to ``run``; only typed errors may escape.

    Any other exception fails with the seed and the input, so it can be replayed; so does
    an input slower than :func:`per_input_limit` (best of three runs). ``check(data,
    result)`` then judges what ``run`` returned, outside the timed part.
    """
    clock = Clock()
    mutator = Mutator(seed, corpus)
    for data in itertools.chain(inputs, mutator.inputs(count)):
        results: list[Any] = []
        try:
            clock.time(data, functools.partial(_keep, run, data, results))
            if check is not None and results:
                check(data, results[0])
        except Exception as exc:
            raise AssertionError(
                f"{name}: untyped {type(exc).__name__}: {exc!r} on input {data[:300]!r}"
                f" (len {len(data)}); replay with FAULTLAB_FUZZ_SEED={seed}"
            ) from exc
    clock.retime(run)
    print(clock.summary(name))
    limit = per_input_limit()
    assert clock.max < limit, (
        f"{name}: input took {clock.max * 1e3:.0f} ms (limit {limit * 1e3:.0f} ms):"
        f" {clock.slowest[0][1][:300]!r}; seed {seed}"
    )
    return clock
