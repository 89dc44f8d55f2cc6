"""``/metrics``: Toxiproxy's Prometheus metrics behind its two flags, and faultlab's own.

Why this shape: a scrape must cost nothing on the data path and never rescan the journal.
So the proxy's hot path is untouched; a scrape reads what already exists:

- bytes: each live connection's counters (``Link.bytes_in`` and ``Link.bytes_out`` per
  direction), plus totals of closed connections, accumulated from the
  byte counts ``Proxy._forget`` puts in each ``connection_closed`` event;
- faults: one counter per (proxy, toxic, type, decision, acted), bumped as each ``fault``
  event is recorded (:meth:`faultlab.journal.Journal.subscribe`);
- gauges (connections, held bytes, toxics) straight from the engine's proxies.

Both event-fed counters survive a proxy's deletion, as Toxiproxy's ``CounterVec`` series do.
Everything is read on the engine loop, where proxy state lives. ``docs/metrics.md`` lists
every metric and how each differs from Toxiproxy's.
"""

from __future__ import annotations

import asyncio
import gzip
import resource
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from faultlab import __version__
from faultlab.journal.timeline import acted
from faultlab.proxy.api import ApiResponse
from faultlab.proxy.engine import ProxyEngine
from faultlab.proxy.proxy import Proxy, toxiproxy_address

__all__ = ["CONTENT_TYPE", "PROXY_LABELS", "Metrics", "compress_if_accepted"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""What Toxiproxy's promhttp handler answers with (the text format, version 0.0.4)."""
PROXY_LABELS = ("direction", "proxy", "listener", "upstream")
"""Toxiproxy's labels on its two byte counters (``collectors/proxy.go``)."""
FAULT_LABELS = ("proxy", "toxic", "type", "decision", "acted")
_RLIM_INFINITY_AS_GO = float(2**64 - 1)
"""How Go's procfs reports an unlimited address space (``process_virtual_memory_max_bytes``)."""

_ByteKey = tuple[str, str, str, str]  # PROXY_LABELS' values
_FaultKey = tuple[str, str, str, str, str]  # FAULT_LABELS' values


class Metrics:
    """The collector behind ``GET /metrics`` for one :class:`ProxyEngine`.

    ``proxy``: Toxiproxy's ``-proxy-metrics`` (its byte counters) and faultlab's
    ``faultlab_proxy_*``; ``runtime``: ``-runtime-metrics`` (the process and the Python
    runtime). Event-fed counters count from :meth:`attach` on (the API server attaches when
    it starts), as Toxiproxy's count from its start.
    """

    def __init__(self, engine: ProxyEngine, *, proxy: bool = True, runtime: bool = True) -> None:
        self.engine = engine
        self.proxy = proxy
        self.runtime = runtime
        self._lock = threading.Lock()  # events may be recorded off the loop
        self._closed_bytes: defaultdict[_ByteKey, list[int]] = defaultdict(lambda: [0, 0])
        self._faults: defaultdict[_FaultKey, int] = defaultdict(int)
        self._handler_errors = {"encoding": 0, "gathering": 0}
        self._unsubscribe: Callable[[], None] | None = None
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Families(self.gather))

    # ---- event-fed counters ------------------------------------------------------------
    def attach(self) -> None:
        """Start counting journal events (idempotent)."""
        if self.proxy and self._unsubscribe is None:
            self._unsubscribe = self.engine.journal.subscribe(self._on_event)

    def detach(self) -> None:
        """Stop counting; what was counted stays."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_event(self, event: dict[str, Any]) -> None:
        """Runs inside ``Journal.record`` for every event: cheap, and never raises."""
        kind = event.get("kind")
        if kind == "fault":
            key = (
                str(event.get("proxy", "")),
                str(event.get("toxic", "")),
                str(event.get("type", "")),
                str(event.get("decision", "")),
                "true" if acted(event) else "false",
            )
            with self._lock:
                self._faults[key] += 1
        elif kind == "connection_closed" and "bytes_from_client" in event:
            name, listen, upstream = (
                str(event.get(k, "")) for k in ("proxy", "listen", "upstream")
            )
            with self._lock:
                ups = self._closed_bytes["upstream", name, listen, upstream]
                ups[0] += int(event.get("bytes_from_client", 0))
                ups[1] += int(event.get("bytes_to_server", 0))
                downs = self._closed_bytes["downstream", name, listen, upstream]
                downs[0] += int(event.get("bytes_from_server", 0))
                downs[1] += int(event.get("bytes_to_client", 0))

    # ---- a scrape ----------------------------------------------------------------------
    def gather(self) -> list[Metric]:
        """Every family with a sample (Go leaves out the empty ones), sorted by name as Go's
        registry sorts them. Runs on the engine loop."""
        families = [_handler_errors(self._handler_errors)]
        if self.proxy:
            families += self._proxy_families()
        if self.runtime:
            families += self._runtime_families()
        return sorted((f for f in families if f.samples), key=_exposed_name)

    def render(self) -> bytes:
        """The text exposition of :meth:`gather`."""
        return generate_latest(self._registry)

    async def handle(self, request: object) -> ApiResponse:
        """The ``/metrics`` route (any method, as api.go registers it)."""
        try:
            body = self.render()
        except Exception as exc:  # promhttp's HTTPErrorOnError: a 500 saying why
            self._handler_errors["gathering"] += 1
            message = f"An error has occurred while serving metrics:\n\n{exc}\n"
            return ApiResponse(500, "text/plain; charset=utf-8", message.encode())
        return ApiResponse(200, CONTENT_TYPE, body)

    def _proxy_families(self) -> list[Metric]:
        with self._lock:
            traffic = {key: list(counts) for key, counts in self._closed_bytes.items()}
            faults = dict(self._faults)
        proxies = sorted(self.engine.proxies.values(), key=lambda p: p.name)
        for proxy in proxies:
            _add_live_bytes(proxy, traffic)
        received = CounterMetricFamily(
            "toxiproxy_proxy_received_bytes_total",
            "Bytes the proxy read from the side a direction starts at "
            "(upstream: from the client; downstream: from the server).",
            labels=PROXY_LABELS,
        )
        sent = CounterMetricFamily(
            "toxiproxy_proxy_sent_bytes_total",
            "Bytes the proxy wrote to the side a direction ends at "
            "(upstream: to the server; downstream: to the client).",
            labels=PROXY_LABELS,
        )
        for key in _go_order(PROXY_LABELS, traffic):
            received.add_metric(key, traffic[key][0])
            sent.add_metric(key, traffic[key][1])
        fault_family = CounterMetricFamily(
            "faultlab_proxy_faults_total",
            "Fault events journaled, by toxic and decision; acted=false for passive ones "
            "(a toxicity draw, a chunk let through).",
            labels=FAULT_LABELS,
        )
        for fault_key in _go_order(FAULT_LABELS, faults):
            fault_family.add_metric(fault_key, faults[fault_key])
        connections = GaugeMetricFamily(
            "faultlab_proxy_connections", "Open connections.", labels=["proxy"]
        )
        held = GaugeMetricFamily(
            "faultlab_proxy_held_bytes",
            "Bytes held in the proxy (queued or delayed), both directions of every open "
            "connection.",
            labels=["proxy"],
        )
        toxics = GaugeMetricFamily(
            "faultlab_proxy_toxics", "Toxics on the proxy, by stream.", labels=["proxy", "stream"]
        )
        enabled = GaugeMetricFamily(
            "faultlab_proxy_enabled", "1 if the proxy is listening, else 0.", labels=["proxy"]
        )
        for proxy in proxies:
            connections.add_metric([proxy.name], len(proxy.connections))
            held.add_metric([proxy.name], sum(proxy.held_bytes().values()))
            for stream in ("downstream", "upstream"):
                count = sum(1 for e in proxy.toxics.values() if e.stream.lower() == stream)
                toxics.add_metric([proxy.name, stream], count)
            enabled.add_metric([proxy.name], 1 if proxy.enabled else 0)
        return [received, sent, fault_family, connections, held, toxics, enabled]

    def _runtime_families(self) -> list[Metric]:
        families: list[Metric] = []
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            families += collector.collect()
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        vmax = GaugeMetricFamily(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            value=_RLIM_INFINITY_AS_GO if limit == resource.RLIM_INFINITY else limit,
        )
        build = GaugeMetricFamily(
            "faultlab_build_info",
            "faultlab's version, as go_build_info gives Toxiproxy's module.",
            labels=["version"],
        )
        build.add_metric([__version__], 1)
        threads = GaugeMetricFamily(
            "faultlab_runtime_threads",
            "Python threads alive (what go_threads is to Toxiproxy).",
            value=threading.active_count(),
        )
        tasks = GaugeMetricFamily(
            "faultlab_runtime_asyncio_tasks",
            "Tasks on the engine's event loop (what go_goroutines is to Toxiproxy).",
            value=len(asyncio.all_tasks(self.engine.loop)),
        )
        return [*families, vmax, build, threads, tasks]


def compress_if_accepted(response: ApiResponse, accept_encoding: str) -> ApiResponse:
    """A ``/metrics`` answer gzipped when the client accepts gzip, as promhttp decides it
    (``gzipAccepted``: a comma-separated part that is ``gzip`` or starts ``gzip;``, whatever
    its q; case-sensitive). Prometheus asks for gzip."""
    if response.status != 200 or response.content_type != CONTENT_TYPE:
        return response
    parts = (part.strip() for part in accept_encoding.split(","))
    if not any(part == "gzip" or part.startswith("gzip;") for part in parts):
        return response
    return response._replace(
        body=gzip.compress(response.body, compresslevel=6, mtime=0),
        headers=(("Content-Encoding", "gzip"), *response.headers),
    )


def _add_live_bytes(proxy: Proxy, traffic: dict[_ByteKey, list[int]]) -> None:
    """Add what the proxy's open connections moved so far to ``traffic``."""
    if not proxy.connections:
        return
    listen, upstream = toxiproxy_address(proxy.listen), toxiproxy_address(proxy.upstream)
    ups = traffic.setdefault(("upstream", proxy.name, listen, upstream), [0, 0])
    downs = traffic.setdefault(("downstream", proxy.name, listen, upstream), [0, 0])
    for conn in proxy.connections:
        up, down = conn.links["upstream"], conn.links["downstream"]
        ups[0] += up.bytes_in
        ups[1] += up.bytes_out
        downs[0] += down.bytes_in
        downs[1] += down.bytes_out


def _go_order(labels: tuple[str, ...], keys: Iterable[tuple[str, ...]]) -> list[Any]:
    """``keys`` (label values in ``labels``' order) sorted as Go's registry sorts samples: by
    value, label names taken alphabetically."""
    order = sorted(range(len(labels)), key=lambda i: labels[i])
    return sorted(keys, key=lambda key: [key[i] for i in order])


def _handler_errors(counts: dict[str, int]) -> Metric:
    """promhttp's own counter, which Toxiproxy exposes with either flag."""
    family = CounterMetricFamily(
        "promhttp_metric_handler_errors_total",
        "Total number of internal errors encountered by the promhttp metric handler.",
        labels=["cause"],
    )
    for cause in sorted(counts):
        family.add_metric([cause], counts[cause])
    return family


def _exposed_name(family: Metric) -> str:
    """The name the text format shows (prometheus_client keeps counters without ``_total``)."""
    return family.name + "_total" if family.type == "counter" else family.name


class _Families:
    """A prometheus_client collector over a function (one registry, this engine's families)."""

    def __init__(self, gather: Callable[[], Iterable[Metric]]) -> None:
        self._gather = gather

    def collect(self) -> Iterator[Metric]:
        yield from self._gather()
