"""Black-box services, real processes only: any program as a ``faultlab.Command`` (Python's
http.server, FastAPI on uvicorn, a Node.js server), a running service as a
``faultlab.Address``, readiness declared and never slept, process faults on the process
group, and nothing leaked after close."""

from __future__ import annotations

import glob
import http.server
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import faultlab
from faultlab.lab import Lab, Pair
from faultlab.lab.backends.base import UnsupportedFault
from faultlab.lab.backends.command import CommandServer, free_port
from faultlab.lab.pair import BlackBoxError, NoClientError
from faultlab.lab.readiness import ReadinessTimeout, ServiceExited, ServiceStartError, wait_ready
from faultlab.lab.services import InvalidService

ready = faultlab.ready
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "tests" / "blackbox" / "services"
PY = sys.executable


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab(seed=7) as lab:
        yield lab


@pytest.fixture
def http_session() -> Iterator[requests.Session]:
    """A requests session that ignores *_PROXY variables: it talks to loopback directly."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


def http_server_command(tmp_path: Path, **kwargs: object) -> faultlab.Command:
    (tmp_path / "index.html").write_text("hello from http.server\n")
    return faultlab.Command(
        [PY, "-m", "http.server", "{port}", "--bind", "{host}", "--directory", str(tmp_path)],
        ready=kwargs.pop("ready", ready.http(path="/")),
        **kwargs,  # type: ignore[arg-type]
    )


def gone(pid: int, within: float = 5.0) -> bool:
    """True once ``pid`` is no process (or a zombie nobody reaped yet), polled until
    ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def group_alive(pgid: int, within: float = 5.0) -> list[int]:
    """Live (not zombie) members of process group ``pgid``, polled until none are left or
    ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        members = []
        for stat_path in glob.glob("/proc/[0-9]*/stat"):
            try:
                fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(Path(stat_path).parent.name))
        if not members or time.monotonic() >= deadline:
            return members
        time.sleep(0.02)


def server(pair: Pair) -> CommandServer:
    assert isinstance(pair.server, CommandServer)
    return pair.server


# ---- Command: python -m http.server -------------------------------------------------------


def test_a_command_is_served_through_the_proxy(
    lab: Lab, tmp_path: Path, http_session: requests.Session
) -> None:
    pair = lab.pair(http_server_command(tmp_path), protocol="http")
    assert pair.url == f"http://127.0.0.1:{pair.port}"
    assert pair.address == f"tcp://127.0.0.1:{pair.port}"
    assert pair.host == "127.0.0.1"
    assert pair.server_url == f"http://127.0.0.1:{server(pair).port}"
    assert pair.port != server(pair).port
    proxy = lab.engine.run(lambda: lab.engine.get(pair.name))
    assert (proxy.framing, proxy.protocol) == ("http", None)
    response = http_session.get(pair.url + "/index.html", timeout=5)
    assert response.status_code == 200
    assert response.text == "hello from http.server\n"
    connections = pair.events(kinds=["connection"])
    assert any(e["proxy"] == pair.name for e in connections), "the request went via the proxy"
    direct = http_session.get(pair.server_url + "/index.html", timeout=5)
    assert direct.text == response.text


def test_http_protocol_has_no_faultlab_client(lab: Lab, tmp_path: Path) -> None:
    pair = lab.pair(http_server_command(tmp_path), protocol="http")
    with pytest.raises(NoClientError, match=r"pair\.url"):
        _ = pair.client
    with pytest.raises(NoClientError):
        pair.new_client()
    with pytest.raises(BlackBoxError, match="own API"):
        pair.server_effects()
    pair.clear_faults()  # no client to renew: still fine


def test_logical_call_journals_the_proxy(
    lab: Lab, tmp_path: Path, http_session: requests.Session
) -> None:
    pair = lab.pair(http_server_command(tmp_path), protocol="http")
    with pair.logical_call("index", method="GET /") as record:
        record.value = http_session.get(pair.url + "/", timeout=5).status_code
    (start,) = pair.events(kinds=["call_start"])
    assert start["proxy"] == pair.name
    (end,) = pair.events(kinds=["call_end"])
    assert end["value_json"] == 200


def test_process_faults_on_a_command(
    lab: Lab, tmp_path: Path, http_session: requests.Session
) -> None:
    pair = lab.pair(http_server_command(tmp_path), protocol="http")
    handle = server(pair)
    port, first_pid = handle.port, handle.pid
    url = pair.url + "/index.html"

    pair.pause_server()
    assert handle.paused
    assert handle.alive
    with pytest.raises(requests.Timeout):
        http_session.get(url, timeout=0.5)
    pair.resume_server()
    assert not handle.paused
    assert http_session.get(url, timeout=5).status_code == 200

    pair.kill_server()
    assert not handle.alive
    assert gone(first_pid)
    with pytest.raises(requests.ConnectionError):
        http_session.get(url, timeout=2)

    pair.restart_server()
    assert handle.alive
    assert handle.port == port
    assert handle.pid != first_pid
    assert http_session.get(url, timeout=5).status_code == 200

    second_pid = handle.pid
    assert second_pid is not None
    pair.stop_server()
    assert not handle.alive
    assert gone(second_pid)

    pair.clear_faults()  # restarts the stopped command, waiting for its declared check
    assert handle.alive
    assert handle.port == port
    assert http_session.get(url, timeout=5).status_code == 200

    pair.pause_server()
    pair.clear_faults()  # resumes a paused one
    assert not handle.paused
    assert http_session.get(url, timeout=5).status_code == 200

    actions = [(e["action"], e["target"]) for e in pair.events(kinds=["process"])]
    assert [a for a, _ in actions] == [
        "pause", "resume", "kill", "restart", "stop", "restart", "pause", "resume",
    ]  # fmt: skip
    assert {t for _, t in actions} == {"server"}
    assert all(e["pid"] for e in pair.events(kinds=["process"]))


def test_close_leaves_no_process_and_no_output_files(lab: Lab, tmp_path: Path) -> None:
    """A shell wrapper's child is in the command's process group: close kills it too."""
    pidfile = tmp_path / "child.pid"
    script = (
        f"{PY} -m http.server {{port}} --bind {{host}} --directory {tmp_path} & "
        f"echo $! > {pidfile}; wait"
    )
    pair = lab.pair(faultlab.Command(["sh", "-c", script]), protocol="http")
    handle = server(pair)
    leader = handle.pid
    assert leader is not None
    child = int(pidfile.read_text())
    outputs = [handle.stdout_path, handle.stderr_path]
    assert all(p.exists() for p in outputs)
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in outputs)
    lab.close()
    with pytest.raises(ProcessLookupError):
        os.kill(leader, 0)
    assert group_alive(leader) == [], "the whole group is gone"
    assert gone(child)
    assert not any(p.exists() for p in outputs)


@pytest.mark.parametrize("how", ["exit", "ctrl-c"])
def test_exit_without_close_leaves_no_process(tmp_path: Path, how: str) -> None:
    """The Owner kills the command at interpreter exit (and on Ctrl-C) even if nobody
    closed the lab, and removes its output files.

    The script puts back Python's own SIGINT handler first: a shell starts a background
    job with SIGINT ignored, Python then keeps it ignored, and Ctrl-C would do nothing at
    all (this hung in every fresh-clone run started in the background, and never in a
    terminal). On a hang the failure shows the script's thread stacks."""
    script = textwrap.dedent(
        f"""
        import faulthandler, signal, sys, time
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks on a hang
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
        import faultlab
        lab = faultlab.Lab()
        pair = lab.pair(
            faultlab.Command([sys.executable, "-m", "http.server", "{{port}}", "--bind",
                              "{{host}}", "--directory", {str(tmp_path)!r}]),
            protocol="http",
        )
        print(pair.server.pid, pair.server.stdout_path, pair.server.stderr_path, flush=True)
        if {how!r} == "exit":
            sys.exit(0)
        time.sleep(60)  # until Ctrl-C
        """
    )
    proc = subprocess.Popen(
        [PY, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert proc.stdout is not None
        pid_text, *output_paths = proc.stdout.readline().split()
        if how == "ctrl-c":
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)  # every thread's stack, then fail with it
            time.sleep(1)
            proc.kill()
            _, stacks = proc.communicate(timeout=10)
            pytest.fail(f"the script did not exit within 30 s of {how}:\n{stacks[-6000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pid = int(pid_text)
    assert gone(pid)
    assert group_alive(pid) == []
    assert output_paths
    assert not any(Path(path).exists() for path in output_paths)


# ---- Command: startup errors and readiness --------------------------------------------------


def test_a_command_that_exits_says_its_code_and_stderr(lab: Lab) -> None:
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "faultlab-cmd-*")))
    command = faultlab.Command([PY, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])
    started = time.monotonic()
    with pytest.raises(ServiceExited) as info:
        lab.pair(command, protocol="http")
    assert time.monotonic() - started < 10, "a dead command fails at once, not at the timeout"
    message = str(info.value)
    assert "exit code 3" in message
    assert "boom" in message
    assert "sys.exit(3)" in message  # the command itself
    assert isinstance(info.value, ServiceStartError)
    assert lab.engine.list_proxies() == []
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "faultlab-cmd-*")))
    assert after <= before, "the output files of a failed start are removed"


def test_a_command_that_cannot_run(lab: Lab) -> None:
    with pytest.raises(ServiceStartError, match="no-such-program-faultlab"):
        lab.pair(faultlab.Command(["no-such-program-faultlab", "{port}"]), protocol="http")


def test_readiness_that_never_passes_times_out_clearly(lab: Lab, tmp_path: Path) -> None:
    command = http_server_command(tmp_path, ready=ready.http(path="/nope"), ready_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ReadinessTimeout) as info:
        lab.pair(command, protocol="http")
    elapsed = time.monotonic() - started
    assert elapsed >= 1.0, "never before the timeout"
    assert elapsed < 8.0, "and not much after it"
    message = str(info.value)
    assert "ready.http(path='/nope'" in message
    assert "404" in message  # the last failure
    assert "within 1 s" in message
    assert lab.engine.list_proxies() == []


def test_readiness_statuses_and_callables(tmp_path: Path) -> None:
    with Lab() as lab:
        # any status in a range passes: http.server answers 404 for /nope
        in_range = ready.http("/nope", range(200, 500))
        lab.pair(http_server_command(tmp_path, ready=in_range), protocol="http")
        lab.pair(http_server_command(tmp_path, ready=ready.http("/nope", (404,))), protocol="http")
        seen: list[str] = []

        def probe(address: str) -> bool:
            seen.append(address)
            return len(seen) >= 3  # fails twice, then passes

        pair = lab.pair(http_server_command(tmp_path, ready=probe), protocol="http")
        assert seen[0] == f"127.0.0.1:{server(pair).port}"
        assert len(seen) == 3

        def raises(address: str) -> bool:
            raise RuntimeError("not yet, says the check")

        with pytest.raises(ReadinessTimeout, match="not yet, says the check"):
            lab.pair(
                http_server_command(tmp_path, ready=raises, ready_timeout=0.3), protocol="http"
            )


def test_wait_ready_on_a_closed_port_is_bounded() -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ReadinessTimeout, match=r"ready\.tcp\(\) last failed with"):
        wait_ready(ready.tcp(), address, timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 3.0


def test_grpc_health_check(tmp_path: Path) -> None:
    grpc = pytest.importorskip("grpc")
    from concurrent.futures import ThreadPoolExecutor

    answers = {"": b"\x08\x01", "down": b"\x08\x02"}  # SERVING, NOT_SERVING

    def check(request: bytes, context: object) -> bytes:
        service = request[2:].decode() if request else ""
        return answers[service]

    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}
    )
    grpc_server = grpc.server(ThreadPoolExecutor(max_workers=2))
    grpc_server.add_generic_rpc_handlers((handler,))
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    try:
        wait_ready(ready.grpc_health(), f"127.0.0.1:{port}", timeout=5)
        with pytest.raises(ReadinessTimeout, match="NOT_SERVING"):
            wait_ready(ready.grpc_health("down"), f"127.0.0.1:{port}", timeout=0.5)
    finally:
        grpc_server.stop(None)


# ---- Command: FastAPI on uvicorn -------------------------------------------------------------


@pytest.fixture(scope="module")
def fastapi_pair() -> Iterator[Pair]:
    command = faultlab.Command(
        [
            PY,
            "-m",
            "uvicorn",
            "tests.blackbox.services.fastapi_app:app",
            "--host",
            "{host}",
            "--port",
            "{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        ready=ready.http("/health"),
    )
    with Lab(seed=11) as lab:
        yield lab.pair(command, protocol="http")


def test_fastapi_app_through_the_proxy(fastapi_pair: Pair, http_session: requests.Session) -> None:
    url = fastapi_pair.url
    assert http_session.get(url + "/items/7", timeout=5).json() == {"id": 7, "name": "item-7"}

    key = {"Idempotency-Key": "order-abc"}
    first = http_session.post(url + "/orders", json={"item": 7}, headers=key, timeout=5)
    again = http_session.post(url + "/orders", json={"item": 7}, headers=key, timeout=5)
    assert first.status_code == 201
    assert first.json() == again.json()
    orders = http_session.get(url + "/orders", timeout=5).json()
    assert [o for o in orders if o["id"] == first.json()["id"]] == [first.json()]
    assert len(orders) == 1, "the same key is applied once"

    flaky = [http_session.get(url + "/flaky?fail=2&key=t1", timeout=5) for _ in range(3)]
    assert [r.status_code for r in flaky] == [503, 503, 200]
    assert flaky[0].headers["Retry-After"] == "1"


def test_fastapi_app_with_a_toxic_and_a_restart(
    fastapi_pair: Pair, http_session: requests.Session
) -> None:
    pair = fastapi_pair
    pair.proxy.add_toxic("latency", latency=300)
    started = time.monotonic()
    assert http_session.get(pair.url + "/health", timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.3
    pair.clear_faults()
    pair.kill_server()
    pair.clear_faults()  # restarts uvicorn on the same port, ready by /health
    assert http_session.get(pair.url + "/health", timeout=5).json() == {"status": "ok"}


# ---- Command: a Node.js server ----------------------------------------------------------------


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_server(lab: Lab, http_session: requests.Session) -> None:
    node = shutil.which("node")
    assert node is not None
    command = faultlab.Command(
        [node, str(SERVICES / "node_server.js"), "{port}", "{host}"], ready=ready.http("/health")
    )
    pair = lab.pair(command, protocol="http")
    body = http_session.get(pair.url + "/items/3", timeout=5).json()
    assert body == {"id": 3, "name": "item-3", "server": "node"}
    pair.pause_server()
    with pytest.raises(requests.Timeout):
        http_session.get(pair.url + "/health", timeout=0.5)
    pair.resume_server()
    pair.stop_server()  # SIGTERM: node closes its server and exits 0
    proc = server(pair).proc
    assert proc is not None
    assert proc.returncode == 0
    pair.restart_server()
    assert http_session.get(pair.url + "/health", timeout=5).status_code == 200


# ---- Command speaking a faultlab protocol -------------------------------------------------------


def test_a_command_speaking_jsonrpc_keeps_the_faultlab_client(lab: Lab, tmp_path: Path) -> None:
    command = faultlab.Command(
        [
            PY,
            "-m",
            "faultlab.lab.serve_target",
            "--factory",
            "faultlab.examples.calc:Calc",
            "--protocol",
            "jsonrpc",
            "--address",
            "tcp://{address}",
            "--events",
            str(tmp_path / "events.jsonl"),
        ],
        cwd=ROOT,
    )
    pair = lab.pair(command, protocol="jsonrpc")
    assert pair.run(lambda client: client.call("add", 2, 3)) == 5
    (start,) = pair.events(kinds=["call_start"])
    assert start["proxy"] == pair.name


# ---- Address: a service somebody else runs -------------------------------------------------------


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the test's own server"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def own_server() -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("form", ["tcp://127.0.0.1:{}", "127.0.0.1:{}", "http://127.0.0.1:{}/"])
def test_an_address_is_fronted_by_the_proxy(
    lab: Lab, own_server: int, http_session: requests.Session, form: str
) -> None:
    pair = lab.pair(faultlab.Address(form.format(own_server)), protocol="http")
    assert pair.server_url == f"http://127.0.0.1:{own_server}"
    response = http_session.get(pair.url + "/anything", timeout=5)
    assert response.text == "hello from the test's own server"


def test_an_address_has_no_process_faults(
    lab: Lab, own_server: int, http_session: requests.Session
) -> None:
    pair = lab.pair(faultlab.Address(f"127.0.0.1:{own_server}"), protocol="http")
    for fault in (pair.pause_server, pair.kill_server, pair.restart_server, pair.stop_server):
        with pytest.raises(UnsupportedFault, match="faultlab does not own this process"):
            fault()
    pair.proxy.add_toxic("timeout", timeout=0)
    pair.clear_faults()  # toxics off; the process is left alone
    assert http_session.get(pair.url + "/", timeout=5).status_code == 200
    lab.close()
    assert http_session.get(f"http://127.0.0.1:{own_server}/", timeout=5).status_code == 200


def test_an_address_that_is_not_ready() -> None:
    with Lab() as lab:
        started = time.monotonic()
        with pytest.raises(ReadinessTimeout, match=r"ready\.tcp\(\)"):
            lab.pair(
                faultlab.Address(f"127.0.0.1:{free_port()}", ready_timeout=0.5), protocol="http"
            )
        assert time.monotonic() - started >= 0.5


@pytest.mark.parametrize(
    "url", ["127.0.0.1", "udp://127.0.0.1:53", "http://127.0.0.1:80/api", "tcp://:8080"]
)
def test_addresses_that_are_refused(url: str) -> None:
    with pytest.raises(InvalidService):
        faultlab.Address(url)


def test_address_forms() -> None:
    assert faultlab.Address("tcp://127.0.0.1:8080").address == "tcp://127.0.0.1:8080"
    assert faultlab.Address("127.0.0.1:8080").host_port == ("127.0.0.1", 8080)
    assert faultlab.Address("http://localhost:8080/").host_port == ("localhost", 8080)
    assert faultlab.Address("[::1]:8080").address == "tcp://[::1]:8080"


def test_placeholders_in_env_and_argv(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "seen.txt"
    script = (
        "import os, sys, http.server\n"
        "host, port = os.environ['LISTEN'].rsplit(':', 1)\n"
        "open(os.environ['OUT'], 'w').write(os.environ['OTHER'] + '|' + sys.argv[1])\n"
        "http.server.HTTPServer((host, int(port)), http.server.BaseHTTPRequestHandler)"
        ".serve_forever()\n"
    )
    command = faultlab.Command(
        [PY, "-c", script, "{host}/{port}/{nope}"],
        env={"LISTEN": "{address}", "OTHER": "{braces} stay", "OUT": str(out)},
    )
    pair = lab.pair(command, protocol="http")
    port = server(pair).port
    assert out.read_text() == f"{{braces}} stay|127.0.0.1/{port}/{{nope}}"


def test_commands_that_are_refused() -> None:
    with pytest.raises(InvalidService, match="not a string"):
        faultlab.Command("python -m http.server")  # type: ignore[arg-type]
    with pytest.raises(InvalidService):
        faultlab.Command([])
    with pytest.raises(InvalidService, match="str to str"):
        faultlab.Command(["true"], env={"PORT": 8080})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="ready must be"):
        faultlab.Command(["true"], ready=42)  # type: ignore[arg-type]
