"""``GET /metrics`` of ``faultlab proxy`` as a process: Toxiproxy's names behind its flags,
byte counts equal to the traffic, fault counters equal to the journal, and the same answer
as a real ``toxiproxy-server`` (names, labels, values) where both have the metric."""

from __future__ import annotations

import contextlib
import gzip
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from faultlab.journal import acted
from faultlab.proxy.reference import RealToxiproxy, find_toxiproxy, missing_reason
from faultlab.proxy.remote import RemoteToxiproxy

pytestmark = pytest.mark.timeout(90)

TIMEOUT = 5.0
PROM_TEXT = "text/plain; version=0.0.4; charset=utf-8"
BYTE_COUNTERS = ("toxiproxy_proxy_received_bytes_total", "toxiproxy_proxy_sent_bytes_total")
PROXY_LABELS = {"direction", "proxy", "listener", "upstream"}
FAULT_LABELS = ("proxy", "toxic", "type", "decision", "acted")


# ---- the processes ----------------------------------------------------------------------
@contextlib.contextmanager
def faultlab_proxy(*flags: str) -> Iterator[str]:
    """``faultlab proxy`` on a free port with ``flags``; yields its API URL, stops it after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultlab", "proxy", "--port", "0", "--seed", "7", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOG_LEVEL": "warn", "COLUMNS": "200"},
    )
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            found = re.search(r"API at (http://\S+)", line)
            url = found.group(1) if found else None
        assert url is not None, f"faultlab proxy printed no API URL: {proc.stderr.read()}"
        yield url
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def request(url: str, method: str = "GET", path: str = "/metrics", **headers: str) -> Any:
    """One request; returns ``(status, headers, body)`` (headers with lower-case names)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    try:
        conn.request(method, path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def parse(text: str) -> dict[str, Metric]:
    """Families by the name the text shows (the parser drops a counter's ``_total``, and
    Go has both ``go_memstats_alloc_bytes`` and ``go_memstats_alloc_bytes_total``)."""
    families = {
        f.name + "_total" if f.type == "counter" else f.name: f
        for f in text_string_to_metric_families(text)
    }
    assert len(families) == text.count("# TYPE "), "a family appeared twice"
    return families


def scrape(url: str) -> dict[str, Metric]:
    """GET /metrics (200, Prometheus' text format), parsed."""
    status, headers, body = request(url)
    assert status == 200, body
    assert headers["content-type"] == PROM_TEXT
    return parse(body.decode())


def values(family: Metric) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def wait_for(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def exchange(sock: socket.socket, payload: bytes) -> None:
    """Send ``payload`` through the proxy to the echo upstream and read all of it back."""
    sock.sendall(payload)
    got = 0
    while got < len(payload):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {got} of {len(payload)} bytes"
        got += len(chunk)
    assert got == len(payload)


def connect(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=TIMEOUT)


def byte_totals(families: dict[str, Metric], proxy: str) -> dict[tuple[str, str], float]:
    """``(metric, direction) -> value`` of one proxy's byte counters."""
    out: dict[tuple[str, str], float] = {}
    for name in BYTE_COUNTERS:
        for sample in families[name].samples if name in families else ():
            if sample.labels["proxy"] == proxy:
                key = (name, sample.labels["direction"])
                out[key] = out.get(key, 0) + sample.value
    return out


def gauge(families: dict[str, Metric], name: str, proxy: str) -> float | None:
    for sample in families[name].samples if name in families else ():
        if sample.labels["proxy"] == proxy:
            return sample.value
    return None


# ---- faultlab alone ---------------------------------------------------------------------
def test_without_a_flag_metrics_is_a_bare_404() -> None:
    with faultlab_proxy() as url:
        for method in ("GET", "POST", "HEAD"):
            status, headers, body = request(url, method)
            assert status == 404
            assert body == (b"" if method == "HEAD" else b"404 page not found\n")
            assert headers["content-type"] == "text/plain; charset=utf-8"
            assert "x-toxiproxy-request-id" not in headers  # unrouted: no middleware, as Go


def test_bytes_faults_and_gauges_match_the_traffic_and_the_journal(echo: str) -> None:
    with faultlab_proxy("-proxy-metrics", "--runtime-metrics") as url:
        before = scrape(url)
        assert "toxiproxy_proxy_received_bytes_total" not in before  # no series before any link
        with RemoteToxiproxy(url, timeout=TIMEOUT) as client:
            proxy = client.create("svc", listen="127.0.0.1:0", upstream=echo)
            proxy.add_toxic("bandwidth", name="slow", stream="upstream", rate=100_000)
            proxy.add_toxic("latency", name="lag", latency=1, toxicity=0.5)
            proxy.add_toxic("slicer", name="cut", stream="upstream", toxicity=0.0, average_size=64)
            sizes = [1_000, 20_000, 300_000, 7, 65_537]
            live = [connect(proxy.listen) for _ in range(2)]
            try:
                for i, size in enumerate(sizes):
                    with connect(proxy.listen) as sock:
                        exchange(sock, bytes([i]) * size)
                for i, sock in enumerate(live):
                    exchange(sock, b"L" * (5_000 * (i + 1)))
                total = sum(sizes) + 5_000 + 10_000

                # closed ones counted when they close, open ones as they stand
                wait_for(
                    "the closed connections to close",
                    lambda: gauge(scrape(url), "faultlab_proxy_connections", "svc") == len(live),
                )
                families = scrape(url)
                expected = {
                    (name, d): total for name in BYTE_COUNTERS for d in ("upstream", "downstream")
                }
                assert byte_totals(families, "svc") == expected
                for name in BYTE_COUNTERS:
                    for sample in families[name].samples:
                        assert set(sample.labels) == PROXY_LABELS
                        assert sample.labels["listener"] == proxy.listen
                        assert sample.labels["upstream"] == echo
                assert gauge(families, "faultlab_proxy_held_bytes", "svc") == 0
                assert gauge(families, "faultlab_proxy_enabled", "svc") == 1
                toxics = values(families["faultlab_proxy_toxics"])
                assert toxics[(("proxy", "svc"), ("stream", "upstream"))] == 2
                assert toxics[(("proxy", "svc"), ("stream", "downstream"))] == 1
            finally:
                for sock in live:
                    sock.close()

            # a connection moving from live to closed is not counted twice
            wait_for(
                "every connection to close",
                lambda: gauge(scrape(url), "faultlab_proxy_connections", "svc") == 0,
            )
            assert byte_totals(scrape(url), "svc") == expected

            faults = client.events(kinds=["fault"])
            journal = Counter(
                (e["proxy"], e["toxic"], e["type"], e["decision"], str(acted(e)).lower())
                for e in faults
            )
            families = scrape(url)
            counted = {
                tuple(s.labels[k] for k in FAULT_LABELS): s.value
                for s in families["faultlab_proxy_faults_total"].samples
            }
            assert counted == dict(journal)
            assert {k[4] for k in counted} == {"true", "false"}  # both kinds were seen
            assert counted[("svc", "cut", "slicer", "toxicity", "false")] == len(sizes) + 2

            # a new listen address starts new series; the old ones stay
            first = proxy.listen
            moved = proxy.update(listen="127.0.0.1:0")["listen"]
            assert moved != first
            with connect(moved) as sock:
                exchange(sock, b"m" * 500)
            wait_for(
                "the connection to the new address to close",
                lambda: gauge(scrape(url), "faultlab_proxy_connections", "svc") == 0,
            )
            by_listener = {
                (name, s.labels["direction"], s.labels["listener"]): s.value
                for name, family in scrape(url).items()
                if name in BYTE_COUNTERS
                for s in family.samples
            }
            assert by_listener == {
                (name, d, address): count
                for name in BYTE_COUNTERS
                for d in ("upstream", "downstream")
                for address, count in ((first, total), (moved, 500))
            }

            # Toxiproxy's series outlive the proxy; faultlab's gauges go with it
            proxy.delete()
            families = scrape(url)
            assert byte_totals(families, "svc") == dict.fromkeys(expected, total + 500)
            assert gauge(families, "faultlab_proxy_connections", "svc") is None
            assert "process_cpu_seconds_total" in families


@pytest.mark.parametrize(
    ("flag", "present", "absent"),
    [
        ("-proxy-metrics", "faultlab_proxy_connections", "process_cpu_seconds_total"),
        ("-runtime-metrics", "process_cpu_seconds_total", "faultlab_proxy_connections"),
    ],
)
def test_each_flag_adds_its_own_families(echo: str, flag: str, present: str, absent: str) -> None:
    with faultlab_proxy(flag) as url:
        with RemoteToxiproxy(url, timeout=TIMEOUT) as client:
            proxy = client.create("one", listen="127.0.0.1:0", upstream=echo)
            with connect(proxy.listen) as sock:
                exchange(sock, b"x" * 100)
        families = scrape(url)
        assert present in families
        assert absent not in families
        assert "promhttp_metric_handler_errors_total" in families  # with either flag, as promhttp


def test_any_method_is_answered_and_a_browser_is_refused() -> None:
    with faultlab_proxy("-proxy-metrics=true", "-runtime-metrics=false") as url:
        for method in ("POST", "DELETE", "PATCH"):
            status, headers, body = request(url, method)
            assert (status, headers["content-type"]) == (200, PROM_TEXT)
            assert "x-toxiproxy-request-id" in headers
            assert b"promhttp_metric_handler_errors_total" in body
        status, _, body = request(url, "GET", "/metrics", **{"User-Agent": "Mozilla/5.0"})
        assert (status, body) == (403, b"User agent not allowed\n")
        assert request(url, "GET", "/metrics/")[0] == 404
        assert b"process_" not in request(url)[2]


# ---- against a real toxiproxy-server ----------------------------------------------------
def _traffic(url: str, echo: str) -> str:
    """The same traffic through one proxy on either server; returns its listen address."""
    with RemoteToxiproxy(url, timeout=TIMEOUT) as client:
        proxy = client.create("diff", listen="127.0.0.1:0", upstream=echo)
        for size in (10, 4_000, 150_000):
            with connect(proxy.listen) as sock:
                exchange(sock, b"d" * size)
        return proxy.listen


DIFF_TOTAL = 10 + 4_000 + 150_000
ACCEPT_ENCODINGS = ("gzip", "deflate, gzip", "gzip;q=0", "GZIP", "x-gzip", "identity", "br")


@pytest.mark.parametrize(
    "flags",
    [(), ("-proxy-metrics",), ("-runtime-metrics",), ("-proxy-metrics", "-runtime-metrics")],
    ids=["none", "proxy", "runtime", "both"],
)
def test_same_names_and_labels_as_real_toxiproxy(echo: str, flags: tuple[str, ...]) -> None:
    if find_toxiproxy() is None:
        pytest.skip(missing_reason())
    answers: dict[Any, Any] = {}
    with RealToxiproxy(extra_args=list(flags)) as real, faultlab_proxy(*flags) as ours:
        for side, url in (("real", real.url), ("ours", ours)):
            listen = _traffic(url, echo)
            if flags and "-proxy-metrics" in flags:  # Toxiproxy counts when a link ends
                wait_for(
                    f"{side}'s byte counters",
                    lambda url=url: (
                        byte_totals(scrape(url), "diff").get(
                            ("toxiproxy_proxy_sent_bytes_total", "downstream")
                        )
                        == DIFF_TOTAL
                    ),
                )
            answers[side] = (request(url), listen)
            answers[side, "gzip"] = [
                (request(url, method, **{"Accept-Encoding": accept}), accept, method)
                for accept in ACCEPT_ENCODINGS
                for method in ("GET", "HEAD")
            ]
    # promhttp gzips for "gzip" or "gzip;..." in Accept-Encoding, whatever the q
    for (real, accept, method), (ours_answer, _, _) in zip(
        answers["real", "gzip"], answers["ours", "gzip"], strict=True
    ):
        status, headers, body = ours_answer
        assert status == real[0], (accept, method)
        encoding = real[1].get("content-encoding")
        assert headers.get("content-encoding") == encoding, (accept, method)
        if encoding and method == "GET":
            assert gzip.decompress(body).startswith(b"# HELP ")
    (real_status, real_headers, real_body), real_listen = answers["real"]
    (our_status, our_headers, our_body), our_listen = answers["ours"]
    assert our_status == real_status
    assert our_headers["content-type"] == real_headers["content-type"]
    if not flags:
        assert our_body == real_body == b"404 page not found\n"
        return
    real_families, our_families = parse(real_body.decode()), parse(our_body.decode())
    # Go's runtime (go_*) has no Python counterpart; faultlab adds python_* and faultlab_*
    assert {n for n in real_families if not n.startswith("go_")} == {
        n for n in our_families if not n.startswith(("python_", "faultlab_"))
    }
    for name, real in real_families.items():
        if name.startswith("go_"):
            continue
        ours_family = our_families[name]
        assert ours_family.type == real.type, name
        assert [sorted(s.labels) for s in ours_family.samples] == [
            sorted(s.labels) for s in real.samples
        ], name
    for name in BYTE_COUNTERS if "-proxy-metrics" in flags else ():
        real_values = {
            (s.labels["direction"], s.labels["proxy"], s.labels["upstream"], s.value)
            for s in real_families[name].samples
        }
        our_values = {
            (s.labels["direction"], s.labels["proxy"], s.labels["upstream"], s.value)
            for s in our_families[name].samples
        }
        assert (
            our_values
            == real_values
            == {(d, "diff", echo, DIFF_TOTAL) for d in ("upstream", "downstream")}
        )
        assert {s.labels["listener"] for s in real_families[name].samples} == {real_listen}
        assert {s.labels["listener"] for s in our_families[name].samples} == {our_listen}


# ---- the library ----------------------------------------------------------------------
def test_api_server_flags_for_library_users(echo: str) -> None:
    from faultlab.proxy.engine import ProxyEngine
    from faultlab.proxy.server import ApiServer

    with ProxyEngine(seed=3) as engine:
        with ApiServer(engine, port=0) as plain:
            assert request(plain.url)[0] == 404
        with ApiServer(engine, port=0, proxy_metrics=True) as server:
            proxy = engine.create("lib", listen="127.0.0.1:0", upstream=echo)
            with connect(proxy.listen) as sock:
                exchange(sock, b"y" * 1234)
                # an open connection counts as it stands (Toxiproxy waits for the close)
                families = scrape(server.url)
                assert gauge(families, "faultlab_proxy_connections", "lib") == 1
                assert set(byte_totals(families, "lib").values()) == {1234}
            assert "process_cpu_seconds_total" not in families


def test_held_bytes_show_an_upstream_that_does_not_read() -> None:
    from faultlab.proxy.engine import ProxyEngine
    from faultlab.proxy.server import ApiServer

    with socket.socket() as deaf, ProxyEngine(seed=5) as engine:
        deaf.bind(("127.0.0.1", 0))
        deaf.listen()
        deaf.settimeout(TIMEOUT)
        upstream = f"127.0.0.1:{deaf.getsockname()[1]}"
        with ApiServer(engine, port=0, proxy_metrics=True) as server:
            proxy = engine.create("deaf", listen="127.0.0.1:0", upstream=upstream)
            with connect(proxy.listen) as sock:
                accepted, _ = deaf.accept()  # accepted, never read
                with accepted:
                    sock.setblocking(False)
                    sent, deadline = 0, time.monotonic() + 3
                    while time.monotonic() < deadline:  # until the proxy stops reading
                        try:
                            sent += sock.send(b"h" * 65536)
                        except BlockingIOError:
                            time.sleep(0.05)
                    families = scrape(server.url)
                    held = gauge(families, "faultlab_proxy_held_bytes", "deaf")
                    assert held is not None
                    assert 0 < held <= 4 << 20  # the backpressure bound (docs/proxy.md)
                    assert held == engine.run(lambda: sum(engine.get("deaf").held_bytes().values()))
                    received = byte_totals(families, "deaf")
                    assert received["toxiproxy_proxy_received_bytes_total", "upstream"] <= sent
