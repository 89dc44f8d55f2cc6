"""``faultlab bench proxy``: what the proxy costs, beside a direct connection in the same run.

- added round-trip latency, 64 B, tcp and unix, no toxics: p50 and p99 (goal: <= 50 µs at p50);
- bulk echo throughput through the proxy vs direct (goal: >= 50 %);
- many concurrent proxied connections exchanging echo traffic: errors (goal 0), proxy RSS;
- HTTP: added p50 per request through a proxy with HTTP framing and the wire journal
  (every exchange journaled), beside the raw relay in the same run (goal: at most 1.5x the
  raw relay's added latency);
- gRPC: added p50 of a unary call (grpcio client and server) through the HTTP/2-aware relay
  (``protocol="grpc"``, every call journaled) beside the raw relay in the same run (goal: at
  most 1.3x the raw relay's added latency), and bidirectional streaming throughput
  (messages/s) through each vs direct;
- TLS: added p50 of a 64 B echo over TLS through an intercepting proxy (the proxy ends the
  client's TLS and opens its own) beside a passthrough proxy (records relayed) in the same run;
- API: toxic add + remove through the engine facade, p50;
- stalled links: 100 clients write as fast as they can to an upstream that never
  reads (bare, and behind a ``latency`` toxic): proxy RSS (goal: < 500 MiB, each
  link holding at most 4 MiB in the proxy).

The proxy and the echo server each run in their own process, pinned like the
transport benchmark, so the figures are not mixed with the client's GIL.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from faultlab import transports
from faultlab._proc import ChildProcess, spawn_ready
from faultlab.bench.stats import header, measure_round_trips, pin
from faultlab.bench.transports import PLACEMENTS, _bulk, _faultlab_round_trip

__all__ = ["GRPC_INSTANCES", "run_proxy_bench"]

GRPC_INSTANCES = 3
"""Independent sets (server, raw relay, HTTP/2-aware relay) in the gRPC figure."""


def _spawn(mode: str, *args: str, cpu: int | None, extra: list[str] | None = None) -> ChildProcess:
    cmd = [sys.executable, "-m", "faultlab.bench._proxy_peer", mode, *args, *(extra or [])]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    return spawn_ready(cmd, timeout=30)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _latency_and_bulk(
    address: str, iterations: int, warmup: int, bulk_bytes: int
) -> tuple[dict[str, float], float]:
    with transports.connect(address, timeout=10) as stream:
        stats = measure_round_trips(_faultlab_round_trip(stream), b"x" * 64, iterations, warmup)
        bulk = 0.0
        if bulk_bytes:
            assert hasattr(stream, "send")
            bulk = _bulk(stream.send, stream.receive, bulk_bytes)  # type: ignore[arg-type]
    return {"p50_us": stats.median_us, "p99_us": stats.p99_us, "msgs_per_s": stats.msgs_per_s}, bulk


def _http_round_trip(address: str) -> tuple[Callable[[bytes], bytes], socket.socket]:
    """One keep-alive HTTP/1.1 POST per call; the 200's body is returned."""
    parsed = transports.parse_address(address)
    sock = socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 0), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def round_trip(payload: bytes) -> bytes:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n%s"
            % (len(payload), payload)
        )
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload)
        want = len(head) + len(payload)
        got = bytearray()
        while len(got) < want:
            chunk = sock.recv(want - len(got))
            if not chunk:
                raise ConnectionError("the HTTP peer closed the connection")
            got += chunk
        return bytes(got[len(head) :])

    return round_trip, sock


def _http_figure(iterations: int, warmup: int, server_cpu: int | None) -> dict[str, Any]:
    """Direct, through the raw relay, and through HTTP framing with the wire journal."""
    children: list[ChildProcess] = []
    try:
        server = _spawn("http-echo", "tcp://127.0.0.1:0", cpu=server_cpu)
        children.append(server)
        upstream = server.address
        raw = _spawn(
            "proxy", "127.0.0.1:0", upstream, cpu=server_cpu, extra=["--no-journal-chunks"]
        )
        children.append(raw)
        framed = _spawn(
            "proxy", "127.0.0.1:0", upstream, cpu=server_cpu,
            extra=["--no-journal-chunks", "--framing", "http"],
        )  # fmt: skip
        children.append(framed)
        figures: dict[str, dict[str, float]] = {}
        for label, address in (
            ("direct", upstream),
            ("raw_relay", raw.address),
            ("http_framing", framed.address),
        ):
            round_trip, sock = _http_round_trip(address)
            with sock:
                stats = measure_round_trips(round_trip, b"x" * 64, iterations, warmup)
            figures[label] = {"p50_us": stats.median_us, "p99_us": stats.p99_us}
    finally:
        for child in children:
            child.close()
    direct = figures["direct"]["p50_us"]
    added_raw = figures["raw_relay"]["p50_us"] - direct
    added_http = figures["http_framing"]["p50_us"] - direct
    return {
        **figures,
        "added_raw_p50_us": added_raw,
        "added_http_p50_us": added_http,
        "ratio": added_http / added_raw if added_raw > 0 else None,
    }


def _grpc_figure(
    iterations: int,
    warmup: int,
    server_cpu: int | None,
    stream_messages: int,
    instances: int = GRPC_INSTANCES,
) -> dict[str, Any]:
    """gRPC direct, through the raw relay and through the HTTP/2-aware relay.

    The comparison runs on ``instances`` independent sets (a server, a raw relay and an
    HTTP/2-aware relay in front of it, a channel to each), measured interleaved: a process's
    own luck (where its memory landed, how its threads share the core) moves a 500 µs call
    by a few per cent, as much as the added latencies compared, and it is the server's luck
    that moves both relays of a set alike. Each set gives its own added latencies and ratio;
    a row is the median over the sets. Streaming uses the first set."""
    import grpc  # type: ignore[import-untyped]

    children: list[ChildProcess] = []
    channels: dict[str, Any] = {}
    rows = ("direct", "raw_relay", "h2_relay")
    try:
        for i in range(instances):
            server = _spawn("grpc-echo", "tcp://127.0.0.1:0", cpu=server_cpu)
            children.append(server)
            addresses = {"direct": server.address}
            for row, extra in (
                ("raw_relay", ["--no-journal-chunks"]),
                ("h2_relay", ["--no-journal-chunks", "--protocol", "grpc"]),
            ):
                relay = _spawn("proxy", "127.0.0.1:0", server.address, cpu=server_cpu, extra=extra)
                children.append(relay)
                addresses[row] = relay.address
            for row, address in addresses.items():
                channels[f"{row}#{i}"] = grpc.insecure_channel(address.removeprefix("tcp://"))
        per_set = _interleaved(
            {label: _grpc_unary(channel) for label, channel in channels.items()},
            b"x" * 64,
            iterations,
            warmup,
        )
        streams = {row: _grpc_stream_rate(channels[f"{row}#0"], stream_messages) for row in rows}
    finally:
        for channel in channels.values():
            channel.close()
        for child in children:
            child.close()
    sets: list[dict[str, float]] = []
    for i in range(instances):
        direct = per_set[f"direct#{i}"]["p50_us"]
        raw = per_set[f"raw_relay#{i}"]["p50_us"] - direct
        h2 = per_set[f"h2_relay#{i}"]["p50_us"] - direct
        sets.append({"added_raw": raw, "added_h2": h2, "ratio": h2 / raw if raw > 0 else 0.0})
    figures: dict[str, Any] = {
        row: {
            "p50_us": statistics.median(per_set[f"{row}#{i}"]["p50_us"] for i in range(instances)),
            "p99_us": statistics.median(per_set[f"{row}#{i}"]["p99_us"] for i in range(instances)),
            "stream_msgs_per_s": streams[row],
        }
        for row in rows
    }
    ratios = [r["ratio"] for r in sets if r["added_raw"] > 0]
    rate = streams["direct"]
    return {
        **figures,
        "instances": instances,
        "per_set": sets,
        "added_raw_p50_us": statistics.median(r["added_raw"] for r in sets),
        "added_h2_p50_us": statistics.median(r["added_h2"] for r in sets),
        "ratio": statistics.median(ratios) if ratios else None,
        "stream_ratio_raw": streams["raw_relay"] / rate if rate else None,
        "stream_ratio_h2": streams["h2_relay"] / rate if rate else None,
    }


def _interleaved(
    round_trips: dict[str, Callable[[bytes], bytes]],
    payload: bytes,
    iterations: int,
    warmup: int,
    rounds: int = 10,
) -> dict[str, dict[str, float]]:
    """Median and p99 per target, measured in ``rounds`` blocks taken in turn, so that a
    drift of the machine during the run (another process, a frequency change) falls on
    every target alike instead of on whichever was measured then."""
    samples: dict[str, list[float]] = {label: [] for label in round_trips}
    block = max(1, iterations // rounds)
    for round_trip in round_trips.values():
        measure_round_trips(round_trip, payload, 1, warmup)
    for _ in range(rounds):
        for label, round_trip in round_trips.items():
            stats = measure_round_trips(round_trip, payload, block, 0)
            samples[label].extend(stats.sample_us)
    out: dict[str, dict[str, float]] = {}
    for label, values in samples.items():
        values.sort()
        out[label] = {
            "p50_us": values[len(values) // 2],
            "p99_us": values[min(len(values) - 1, int(len(values) * 0.99))],
        }
    return out


def _tls_round_trip(address: str) -> tuple[Callable[[bytes], bytes], socket.socket]:
    """A TLS client (trusting the lab CA) echoing ``payload`` through ``address``."""
    import ssl

    from faultlab.transports.tls import test_ca_files

    parsed = transports.parse_address(address)
    ctx = ssl.create_default_context(cafile=str(test_ca_files()[0]))
    raw = socket.create_connection((parsed.host or "127.0.0.1", parsed.port or 0), timeout=10)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock = ctx.wrap_socket(raw, server_hostname="localhost")

    def round_trip(payload: bytes) -> bytes:
        sock.sendall(payload)
        got = bytearray()
        while len(got) < len(payload):
            chunk = sock.recv(len(payload) - len(got))
            if not chunk:
                raise ConnectionError("the TLS echo peer closed the connection")
            got += chunk
        return bytes(got)

    return round_trip, sock


def _tls_figure(iterations: int, warmup: int, server_cpu: int | None) -> dict[str, Any]:
    """TLS echo direct, through a passthrough proxy, and through an intercepting one."""
    children: list[ChildProcess] = []
    sockets: list[socket.socket] = []
    try:
        server = _spawn("tls-echo", "tcp://127.0.0.1:0", cpu=server_cpu)
        children.append(server)
        upstream = server.address.removeprefix("tcp://")
        targets = {"direct": server.address}
        for label, mode in (("passthrough", "passthrough"), ("intercept", "intercept")):
            proxy = _spawn(
                "proxy", "127.0.0.1:0", upstream, cpu=server_cpu,
                extra=["--no-journal-chunks", "--tls", mode],
            )  # fmt: skip
            children.append(proxy)
            targets[label] = proxy.address
        round_trips = {}
        for label, address in targets.items():
            round_trip, sock = _tls_round_trip(address)
            sockets.append(sock)
            round_trips[label] = round_trip
        figures = _interleaved(round_trips, b"x" * 64, iterations, warmup)
    finally:
        for sock in sockets:
            sock.close()
        for child in children:
            child.close()
    direct = figures["direct"]["p50_us"]
    added_pass = figures["passthrough"]["p50_us"] - direct
    added_intercept = figures["intercept"]["p50_us"] - direct
    return {
        **figures,
        "added_passthrough_p50_us": added_pass,
        "added_intercept_p50_us": added_intercept,
        "ratio": added_intercept / added_pass if added_pass > 0 else None,
    }


def _grpc_unary(channel: Any) -> Callable[[bytes], bytes]:
    unary = channel.unary_unary("/bench.Echo/Unary")

    def round_trip(payload: bytes) -> bytes:
        reply: bytes = unary(payload, timeout=10)
        return reply

    return round_trip


def _grpc_stream_rate(channel: Any, messages: int) -> float:
    """Messages per second echoed through one bidirectional stream (1 KiB each way)."""
    if not messages:
        return 0.0
    stream = channel.stream_stream("/bench.Echo/Stream")
    payload = b"m" * 1024
    started = time.perf_counter()
    received = sum(1 for _ in stream(iter([payload] * messages), timeout=120))
    elapsed = time.perf_counter() - started
    if received != messages:
        raise RuntimeError(f"gRPC stream echoed {received} of {messages} messages")
    return messages / elapsed


async def _many(address: str, connections: int, rounds: int) -> int:
    """Open ``connections`` at once, each doing ``rounds`` echoes; return the error count."""
    parsed = transports.parse_address(address)
    errors = 0

    async def one(i: int) -> None:
        nonlocal errors
        try:
            if parsed.scheme == "unix":
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(parsed.path), 30
                )
            else:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(parsed.host, parsed.port), 30
                )
            for r in range(rounds):
                payload = f"{i}:{r};".encode().ljust(32, b".")
                writer.write(payload)
                got = await asyncio.wait_for(reader.readexactly(len(payload)), 30)
                if got != payload:
                    errors += 1
            writer.close()
            await writer.wait_closed()
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            errors += 1

    await asyncio.gather(*(one(i) for i in range(connections)))
    return errors


def run_proxy_bench(
    *,
    iterations: int = 5000,
    warmup: int = 500,
    placement: str = "same",
    bulk_mib: int = 64,
    connections: int = 1000,
    rounds: int = 10,
    api_rounds: int = 200,
    stalled_links: int = 100,
    grpc_stream_messages: int = 20_000,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    client_cpu, server_cpu = PLACEMENTS[placement]
    before = pin(client_cpu)
    say = on_step or (lambda _msg: None)
    results: dict[str, Any] = {"latency": {}, "throughput": {}, "concurrency": {}, "api": {}}
    children: list[ChildProcess] = []
    try:
        for scheme in ("tcp", "unix"):
            listen_echo = (
                "tcp://127.0.0.1:0"
                if scheme == "tcp"
                else transports.get("unix").example_address("bench-echo")
            )
            echo = _spawn("echo", listen_echo, cpu=server_cpu)
            children.append(echo)
            listen_proxy = (
                "127.0.0.1:0"
                if scheme == "tcp"
                else transports.get("unix").example_address("bench-proxy")
            )
            proxy = _spawn(
                "proxy", listen_proxy, echo.address, cpu=server_cpu, extra=["--no-journal-chunks"]
            )
            children.append(proxy)
            say(f"{scheme}: direct")
            direct, direct_bulk = _latency_and_bulk(
                echo.address, iterations, warmup, bulk_mib << 20
            )
            say(f"{scheme}: through the proxy")
            proxied, proxied_bulk = _latency_and_bulk(
                proxy.address, iterations, warmup, bulk_mib << 20
            )
            results["latency"][scheme] = {
                "direct": direct,
                "proxied": proxied,
                "added_p50_us": proxied["p50_us"] - direct["p50_us"],
                "added_p99_us": proxied["p99_us"] - direct["p99_us"],
            }
            results["throughput"][scheme] = {
                "direct_mb_s": direct_bulk,
                "proxied_mb_s": proxied_bulk,
                "ratio": proxied_bulk / direct_bulk if direct_bulk else None,
            }
            if scheme == "tcp" and connections:
                say(f"{connections} concurrent connections")
                rss_before = _rss_kib(proxy.pid)
                started = time.perf_counter()
                errors = asyncio.run(_many(proxy.address, connections, rounds))
                results["concurrency"] = {
                    "connections": connections,
                    "rounds_each": rounds,
                    "errors": errors,
                    "seconds": time.perf_counter() - started,
                    "proxy_rss_kib_before": rss_before,
                    "proxy_rss_kib_after": _rss_kib(proxy.pid),
                }
            for child in children:
                child.close()
            children.clear()
        say("HTTP: direct, raw relay, HTTP framing with the wire journal")
        results["http"] = _http_figure(iterations, warmup, server_cpu)
        say("gRPC: direct, raw relay, HTTP/2-aware relay with the wire journal")
        results["grpc"] = _grpc_figure(iterations, warmup, server_cpu, grpc_stream_messages)
        say("TLS: direct, passthrough, interception")
        results["tls"] = _tls_figure(iterations, warmup, server_cpu)
        say("API: toxic add + remove")
        results["api"] = _api_rounds(api_rounds)
        if stalled_links:
            stalled = run_stalled_links(stalled_links, on_step=say)
            results["stalled_links"] = stalled_links
            results["stalled"] = {k: stalled[k] for k in ("bare", "latency")}
    finally:
        for child in children:
            child.close()
        os.sched_setaffinity(0, before)
    return {
        **header("proxy", placement, client_cpu, server_cpu, iterations),
        **results,
    }


STALL_CAP = 64 << 20
"""Most a client of the stalled-links figure offers per link (an unbounded proxy takes it all)."""


def _blast(address: str, links: int, quiet: float = 1.0, cap: int = STALL_CAP) -> list[int]:
    """Open ``links`` connections and write to each until none has moved for ``quiet`` s.

    Returns the bytes each connection got accepted (kernel buffers included).
    """
    parsed = transports.parse_address(address)
    socks: list[socket.socket] = []
    try:
        for _ in range(links):
            if parsed.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(parsed.path)
            else:
                sock = socket.create_connection((parsed.host, parsed.port or 0), timeout=10)
            sock.setblocking(False)
            socks.append(sock)
        sent = [0] * links
        chunk = b"\0" * 65536
        poller = select.poll()
        for sock in socks:
            poller.register(sock, select.POLLOUT)
        index = {sock.fileno(): i for i, sock in enumerate(socks)}
        last_progress = time.monotonic()
        while time.monotonic() - last_progress < quiet:
            for fd, _event in poller.poll(100):
                i = index[fd]
                try:
                    n = socks[i].send(chunk)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    poller.unregister(fd)
                    continue
                sent[i] += n
                last_progress = time.monotonic()
                if sent[i] >= cap:
                    poller.unregister(fd)
        return sent
    finally:
        for sock in socks:
            sock.close()


def run_stalled_links(
    links: int = 100, scheme: str = "tcp", on_step: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Proxy RSS with ``links`` clients writing into an upstream that never reads."""
    say = on_step or (lambda _msg: None)
    results: dict[str, Any] = {
        "links": links,
        "scheme": scheme,
        "cap_mib_per_link": STALL_CAP >> 20,
    }
    for label, toxics in (("bare", []), ("latency", ["--toxic", "latency:upstream:latency=100"])):
        listen = (
            "tcp://127.0.0.1:0"
            if scheme == "tcp"
            else transports.get("unix").example_address("bench-stall")
        )
        stall = _spawn("stall", listen, cpu=None)
        try:
            proxy_listen = (
                "127.0.0.1:0"
                if scheme == "tcp"
                else transports.get("unix").example_address("bench-stall-proxy")
            )
            proxy = _spawn(
                "proxy",
                proxy_listen,
                stall.address,
                cpu=None,
                extra=["--no-journal-chunks", *toxics],
            )
            try:
                say(f"{links} stalled links ({label})")
                rss_before = _rss_kib(proxy.pid)
                sent = _blast(proxy.address, links)
                rss_after = _rss_kib(proxy.pid)
            finally:
                proxy.close()
        finally:
            stall.close()
        results[label] = {
            "proxy_rss_kib_before": rss_before,
            "proxy_rss_kib_after": rss_after,
            "sent_mib_per_link_max": max(sent) / (1 << 20),
            "sent_mib_total": sum(sent) / (1 << 20),
        }
    return results


def _api_rounds(rounds: int) -> dict[str, float]:
    from faultlab.proxy.engine import ProxyEngine

    with ProxyEngine(seed=0) as engine:
        handle = engine.create("api", listen="127.0.0.1:0", upstream="127.0.0.1:9")
        samples = []
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            handle.add_toxic("latency", latency=10)
            handle.remove_toxic("latency_downstream")
            samples.append(time.perf_counter_ns() - t0)
        samples.sort()
    return {
        "engine_add_remove_p50_us": samples[len(samples) // 2] / 1000,
        "engine_add_remove_p99_us": samples[int(len(samples) * 0.99)] / 1000,
    }
