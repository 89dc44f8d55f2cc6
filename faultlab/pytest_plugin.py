"""faultlab's pytest plugin (entry point ``pytest11: faultlab``).

Thin wiring only, after pytest-timeout and pytest-randomly: options (each with
an ini twin), the ``faultlab`` marker that parametrizes the transport x
protocol x fault matrix, fixtures, the seed in the header, and a replay line
on failure. Everything it exposes works from plain Python (``faultlab.lab``).
Under pytest-xdist each worker is its own process with its own Lab, proxies
and ephemeral ports; the controller passes every worker the same seed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from faultlab.proxy.control import ProxyServer

SEED_HELP = "session seed for every random fault decision (default: random, printed)"
MARKER = (
    "faultlab(transports=None, protocols=None, faults=None, backend=None, target=False, "
    "proxy_framing='auto'): run the test over the transport x protocol x fault matrix; it "
    "receives the faultlab_pair fixture (and faultlab_fault); transports/protocols default to "
    "--faultlab-transports/-protocols, or with target=True to the --faultlab-target's own "
    "(narrowed by the options); proxy_framing None makes the pair's proxy a raw byte relay"
)
DEFAULT_TARGET = "faultlab.examples.target:calc"
_seed_key = pytest.StashKey[int]()
_DEFAULT_TRANSPORTS = "tcp"
_DEFAULT_PROTOCOLS = "binrpc"
DEFAULT_SERVICE_REF = "faultlab.examples.calc:Calc"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faultlab", "faultlab resilience testing")
    options = [
        ("--faultlab-seed", "faultlab_seed", SEED_HELP),
        (
            "--faultlab-transports",
            "faultlab_transports",
            f"comma-separated transports for the faultlab marker (default: {_DEFAULT_TRANSPORTS})",
        ),
        (
            "--faultlab-protocols",
            "faultlab_protocols",
            f"comma-separated protocols for the faultlab marker (default: {_DEFAULT_PROTOCOLS})",
        ),
        (
            "--faultlab-backend",
            "faultlab_backend",
            "where servers run: thread, subprocess or docker (default: thread)",
        ),
        (
            "--faultlab-report",
            "faultlab_report",
            "directory to write the run's journal.json into (default: none)",
        ),
        (
            "--toxiproxy-url",
            "toxiproxy_url",
            "drive a real Toxiproxy server at this URL instead of faultlab's own",
        ),
        (
            "--faultlab-target",
            "faultlab_target",
            "module:factory returning the Target the bundled suites test "
            "(default: faultlab.examples.target:calc)",
        ),
    ]
    for flag, dest, help_text in options:
        group.addoption(flag, dest=dest, default=None, help=help_text)
        parser.addini(dest, f"default for {flag}: {help_text}", default=None)


def _setting(config: pytest.Config, name: str, default: str | None = None) -> str | None:
    value = config.getoption(name, default=None)
    if value is None:
        value = config.getini(name) or None
    if value is None:
        value = os.environ.get(name.upper()) or default
    return None if value is None else str(value)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "faultlab_seed" in workerinput:
        seed = int(workerinput["faultlab_seed"])
    else:
        raw = _setting(config, "faultlab_seed")
        if raw is None:
            from faultlab._seed import new_seed

            seed = new_seed()
        else:
            try:
                seed = int(raw)
            except ValueError:
                raise pytest.UsageError(
                    f"--faultlab-seed must be an integer, got {raw!r}"
                ) from None
    config.stash[_seed_key] = seed


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker gets the controller's seed."""
    node.workerinput["faultlab_seed"] = node.config.stash[_seed_key]


def pytest_report_header(config: pytest.Config) -> str:
    seed = config.stash[_seed_key]
    return f"faultlab: seed {seed} (replay with --faultlab-seed={seed})"


def _listing(config: pytest.Config, name: str, default: str) -> list[str]:
    raw = _setting(config, name, default) or default
    return [part.strip() for part in raw.split(",") if part.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("faultlab")
    if marker is None:
        return
    allowed = {"transports", "protocols", "faults", "backend", "target", "proxy_framing"}
    unknown = set(marker.kwargs) - allowed
    if unknown or marker.args:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: faultlab marker takes only keyword arguments "
            f"{sorted(allowed)}; got {sorted(unknown) or marker.args}"
        )
    config = metafunc.config
    if marker.kwargs.get("target"):
        target = _target(config)
        transports = _narrow(config, "faultlab_transports", target.transports)
        protocols = _narrow(config, "faultlab_protocols", target.protocols)
        transports = marker.kwargs.get("transports") or transports
        protocols = marker.kwargs.get("protocols") or protocols
    else:
        transports = marker.kwargs.get("transports") or _listing(
            config, "faultlab_transports", _DEFAULT_TRANSPORTS
        )
        protocols = marker.kwargs.get("protocols") or _listing(
            config, "faultlab_protocols", _DEFAULT_PROTOCOLS
        )
    faults = marker.kwargs.get("faults")
    wants_t = "faultlab_transport" in metafunc.fixturenames
    wants_p = "faultlab_protocol" in metafunc.fixturenames
    if wants_t and wants_p:
        from faultlab.lab.pair import incompatibility

        combos = []
        for transport in transports:
            for protocol in protocols:
                reason = incompatibility(protocol, transport)
                marks = [pytest.mark.skip(reason=reason)] if reason else []
                combos.append(
                    pytest.param(transport, protocol, marks=marks, id=f"{transport}-{protocol}")
                )
        metafunc.parametrize(["faultlab_transport", "faultlab_protocol"], combos)
    elif wants_t:
        metafunc.parametrize("faultlab_transport", list(transports))
    elif wants_p:
        metafunc.parametrize("faultlab_protocol", list(protocols))
    if faults is not None and "faultlab_fault" in metafunc.fixturenames:
        ids = [_fault_id(f) for f in faults]
        metafunc.parametrize("faultlab_fault", list(faults), ids=ids, scope="function")


_target_key = pytest.StashKey[Any]()


def _target(config: pytest.Config) -> Any:
    """The --faultlab-target, loaded once per session."""
    cached = config.stash.get(_target_key, None)
    if cached is None:
        from faultlab.suites.target import TargetError, load_target

        ref = _setting(config, "faultlab_target", DEFAULT_TARGET) or DEFAULT_TARGET
        try:
            cached = load_target(ref)
        except TargetError as exc:
            raise pytest.UsageError(str(exc)) from None
        config.stash[_target_key] = cached
    return cached


def _narrow(config: pytest.Config, name: str, available: Any) -> list[str]:
    """The target's list, narrowed to --faultlab-transports/-protocols when given."""
    wanted = _setting(config, name)
    items = list(available)
    if wanted:
        chosen = [w.strip() for w in wanted.split(",") if w.strip()]
        items = [i for i in items if i in chosen]
    return items


@pytest.fixture(scope="session")
def faultlab_target(pytestconfig: pytest.Config) -> Any:
    """The Target under test (``--faultlab-target``, default: the bundled calc)."""
    return _target(pytestconfig)


def _fault_id(fault: Any) -> str:
    if isinstance(fault, dict):
        attrs = ",".join(f"{k}={v}" for k, v in fault.items() if k not in ("type", "stream"))
        return f"{fault.get('type', 'fault')}[{attrs}]" if attrs else str(fault.get("type"))
    return str(fault)


# ---- fixtures -------------------------------------------------------------
@pytest.fixture(scope="session")
def faultlab_seed(pytestconfig: pytest.Config) -> int:
    """The session seed (printed in the header; replay with ``--faultlab-seed``)."""
    return pytestconfig.stash[_seed_key]


_session_lab = pytest.StashKey[Any]()


@pytest.fixture(scope="session")
def faultlab_lab(pytestconfig: pytest.Config, faultlab_seed: int) -> Iterator[Any]:
    """A session-wide :class:`faultlab.lab.Lab` (one per xdist worker)."""
    from faultlab.lab import Lab

    backend = _setting(pytestconfig, "faultlab_backend", "thread") or "thread"
    lab = Lab(seed=faultlab_seed, backend=backend)
    pytestconfig.stash[_session_lab] = lab
    try:
        yield lab
    finally:
        report_dir = _setting(pytestconfig, "faultlab_report")
        if report_dir:
            _write_journal(Path(report_dir), lab, pytestconfig)
        lab.close()


def _write_journal(folder: Path, lab: Any, config: pytest.Config) -> None:
    """``journal.json`` (``journal-<worker>.json`` under xdist) in the versioned schema; a
    worker tells the controller its file, which merges them (:func:`_merge_worker_journals`)."""
    from faultlab.journal.fileformat import write_journal

    worker = getattr(config, "workerinput", {}).get("workerid")
    name = f"journal-{worker}.json" if worker else "journal.json"
    path = write_journal(folder / name, lab.journal, lab.seed, worker=worker)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["faultlab_journal"] = str(path.resolve())


_worker_journals = pytest.StashKey[list[str]]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: note the journal file a finished worker wrote."""
    path = getattr(node, "workeroutput", {}).get("faultlab_journal")
    if path:
        node.config.stash.setdefault(_worker_journals, []).append(str(path))


def pytest_sessionfinish(session: pytest.Session) -> None:
    _merge_worker_journals(session.config)


def _merge_worker_journals(config: pytest.Config) -> None:
    """xdist controller: merge the workers' journals into one ``journal.json`` next to them."""
    files = config.stash.get(_worker_journals, [])
    if not files or hasattr(config, "workerinput"):
        return
    from faultlab.journal.fileformat import JournalError, merge_journals

    try:
        merge_journals(sorted(files), Path(files[0]).with_name("journal.json"))
    except JournalError as exc:  # the worker files stay; a report can still read them
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"faultlab: worker journals not merged: {exc}")


@pytest.fixture(scope="session")
def _faultlab_pairs(faultlab_lab: Any) -> Iterator[dict[tuple[str, ...], Any]]:
    pairs: dict[tuple[str, ...], Any] = {}
    yield pairs
    for pair in pairs.values():
        pair.close()


@pytest.fixture
def faultlab_transport() -> str:
    """The transport of this test (parametrized by the ``faultlab`` marker)."""
    return _DEFAULT_TRANSPORTS


@pytest.fixture
def faultlab_protocol() -> str:
    """The protocol of this test (parametrized by the ``faultlab`` marker)."""
    return _DEFAULT_PROTOCOLS


@pytest.fixture
def faultlab_fault() -> Any:
    """The fault of this test (a toxic dict from the marker's ``faults``), or None."""
    return None


@pytest.fixture
def faultlab_pair(
    request: pytest.FixtureRequest,
    faultlab_lab: Any,
    _faultlab_pairs: dict[tuple[str, ...], Any],
    faultlab_transport: str,
    faultlab_protocol: str,
) -> Iterator[Any]:
    """A Pair for this test's transport and protocol, reused across tests, faults cleared after."""
    marker = request.node.get_closest_marker("faultlab")
    backend = (marker.kwargs.get("backend") if marker else None) or faultlab_lab.backend
    service = DEFAULT_SERVICE_REF
    if marker is not None and marker.kwargs.get("target"):
        service = _target(request.config).service
    proxy_framing = marker.kwargs.get("proxy_framing", "auto") if marker else "auto"
    key = (faultlab_protocol, faultlab_transport, backend, service, proxy_framing)
    pair = _faultlab_pairs.pop(key, None)
    if pair is None:
        _evict(_faultlab_pairs, faultlab_transport)
        pair = faultlab_lab.pair(
            service,
            protocol=faultlab_protocol,
            transport=faultlab_transport,
            backend=backend,
            proxy_framing=proxy_framing,
        )
    _faultlab_pairs[key] = pair  # most recently used last
    request.node.stash[_pair_key] = pair
    request.node.stash[_lab_key] = faultlab_lab
    request.node.stash[_start_key] = faultlab_lab.journal.now()
    request.node.stash[_labels_key] = lambda: {
        "transport": faultlab_transport,
        "protocol": faultlab_protocol,
        "backend": backend,
    }
    try:
        yield pair
    finally:
        pair.clear_faults()


MAX_CACHED_PAIRS = 8
SCARCE = {"mq": 1}
"""Transports whose kernel budget is small (POSIX queues: 800 KiB per user) keep fewer pairs."""


def _evict(cache: dict[tuple[str, ...], Any], transport: str) -> None:
    """Close least recently used pairs before opening another one."""
    limit = SCARCE.get(transport)
    if limit is not None:
        same = [k for k in cache if k[1] == transport]
        for key in same[: max(0, len(same) - limit + 1)]:
            cache.pop(key).close()
    while len(cache) >= MAX_CACHED_PAIRS:
        cache.pop(next(iter(cache))).close()


_pair_key = pytest.StashKey[Any]()
_lab_key = pytest.StashKey[Any]()
_start_key = pytest.StashKey[float]()
_plan_key = pytest.StashKey[Any]()
_labels_key = pytest.StashKey[Any]()
FAULTLAB_FIXTURES = frozenset(
    {"faultlab_pair", "faultlab_proxy", "faultlab_check", "faultlab_lab", "toxiproxy_url"}
)
"""A test that uses any of these is journaled and appears in the report."""


def _uses_faultlab(item: pytest.Item) -> bool:
    names = set(getattr(item, "fixturenames", ()))
    return item.get_closest_marker("faultlab") is not None or bool(FAULTLAB_FIXTURES & names)


class VerdictRecorder:
    """``faultlab_check(verdict)``: journal an oracle's verdict and fail the test if it failed."""

    def __init__(self, node: pytest.Item, lab: Any) -> None:
        self.node = node
        self.lab = lab
        self.verdicts: list[Any] = []

    def __call__(self, verdict: Any, *, soft: bool = False) -> Any:
        from faultlab.oracles.verdict import Verdict, record_verdict

        self.verdicts.append(verdict)
        if not isinstance(verdict, Verdict):  # any object with the verdict's attributes
            verdict = Verdict(
                oracle=str(getattr(verdict, "oracle", "")),
                property=str(getattr(verdict, "property", "")),
                passed=bool(verdict.passed),
                vacuous=bool(getattr(verdict, "vacuous", False)),
                message=str(getattr(verdict, "message", "")),
                evidence=list(getattr(verdict, "evidence", [])),
            )
        record_verdict(self.lab.journal, verdict, nodeid=self.node.nodeid)
        if not soft and not verdict.passed:
            verdict.raise_if_failed()
        return self.verdicts[-1]

    def plan(self, plan: Any) -> None:
        """Attach the (shrunk) fault plan of this test, for the report and the replay line."""
        self.node.stash[_plan_key] = plan

    def search(
        self, strategy: Any, test: Callable[[Any], object], *, fail: bool = True, **options: Any
    ) -> Any:
        """:func:`faultlab.strategies.search_plans` for this test: the plan found is attached
        (so the replay line printed on failure carries it), the result is journaled (a
        ``plan_search`` event and a ``plans`` verdict, ``flaky`` when the failure did not
        replay, with both outcomes and the replay line), and with ``fail`` the test fails
        with that report. Returns the :class:`~faultlab.strategies.PlanSearch`."""
        from faultlab.strategies.search import search_plans

        seed = self.node.config.stash[_seed_key]

        def replay(plan: Any) -> str:
            self.plan(plan)
            return replay_command(self.node, seed)

        result = search_plans(
            strategy,
            test,
            journal=self.lab.journal,
            nodeid=self.node.nodeid,
            replay=replay,
            **options,
        )
        self.verdicts.append(result.verdict())
        if fail:
            result.raise_if_failed()
        return result

    def events(self) -> list[dict[str, Any]]:
        """This test's share of the journal (from its first faultlab fixture on), with the
        server processes' events merged: what to hand an oracle. Wire exchanges outside any
        ``pair.logical_call`` window are read as one logical call: the test."""
        pair = self.node.stash.get(_pair_key, None)
        if pair is not None:
            pair.events()  # merges a server process's events into the journal
        start = self.node.stash.get(_start_key, None)
        found = self.lab.journal.events()
        return found if start is None else [e for e in found if e["t"] >= start]


@pytest.fixture
def faultlab_check(request: pytest.FixtureRequest, faultlab_lab: Any) -> VerdictRecorder:
    """Record oracle verdicts in the journal (for reports); fails the test on a failed one."""
    request.node.stash[_lab_key] = faultlab_lab
    request.node.stash.setdefault(_start_key, faultlab_lab.journal.now())
    return VerdictRecorder(request.node, faultlab_lab)


@pytest.fixture
def faultlab_proxy(
    request: pytest.FixtureRequest, faultlab_lab: Any, toxiproxy_url_option: str | None
) -> Iterator[ProxyServer]:
    """A proxy engine (or a real Toxiproxy given ``--toxiproxy-url``), either way a
    :class:`~faultlab.proxy.control.ProxyServer`; proxies made in the test are deleted and
    toxics reset after it. The test is journaled and reported, labelled with the transport
    and framing of the proxies it made."""
    server: ProxyServer
    if toxiproxy_url_option:
        from faultlab.proxy.remote import RemoteToxiproxy

        server = RemoteToxiproxy(toxiproxy_url_option)
    else:
        server = faultlab_lab.engine
    before = set(server.list_proxies())
    request.node.stash[_lab_key] = faultlab_lab
    request.node.stash.setdefault(_start_key, faultlab_lab.journal.now())
    request.node.stash[_labels_key] = lambda: _proxy_labels(server, before)
    try:
        yield server
    finally:
        for name in set(server.list_proxies()) - before:
            server.delete(name)
        for name in before:
            server.proxy(name).clear()
        if toxiproxy_url_option:
            server.close()  # the client's connection; the lab owns (and closes) its engine


def _proxy_labels(server: Any, before: set[str]) -> dict[str, Any]:
    """Transport and protocol labels from the proxies a test made (its first one)."""
    from faultlab import transports
    from faultlab.proxy.proxy import to_uri

    made = sorted(set(server.list_proxies()) - before)
    if not made:
        return {}
    info = server.proxy(made[0]).info()  # faultlab's engine, or any Toxiproxy
    labels: dict[str, Any] = {"protocol": info.get("protocol") or info.get("framing")}
    try:
        labels["transport"] = transports.parse_address(to_uri(str(info["listen"]))).scheme
    except Exception:  # a label must never fail the report
        pass
    return labels


@pytest.fixture(scope="session")
def toxiproxy_url_option(pytestconfig: pytest.Config) -> str | None:
    return _setting(pytestconfig, "toxiproxy_url")


@pytest.fixture(scope="session")
def toxiproxy_url(toxiproxy_url_option: str | None, faultlab_lab: Any) -> Iterator[str]:
    """URL of a Toxiproxy-compatible API: ``--toxiproxy-url``, or faultlab's own on a free port."""
    if toxiproxy_url_option:
        yield toxiproxy_url_option
        return
    from faultlab.proxy.server import ApiServer

    server = ApiServer(faultlab_lab.engine, host="127.0.0.1", port=0)
    server.start()
    try:
        yield server.url
    finally:
        server.close()


# ---- reporting -------------------------------------------------------------
@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when != "call" or not _uses_faultlab(item):
        return report
    # junitxml reads properties from the teardown report, built from item.user_properties
    seed = item.config.stash[_seed_key]
    properties: list[tuple[str, object]] = [("faultlab_seed", seed)]
    labels = _labels(item)
    for name in ("transport", "protocol", "fault"):
        if labels.get(name) is not None:
            properties.append((f"faultlab_{name}", json.dumps(labels[name], default=repr)))
    item.user_properties.extend(properties)
    report.user_properties.extend(properties)
    replay = replay_command(item, seed)
    flaky = _flaky_outcomes(call)
    if flaky is not None:
        text = _flaky_report(item, flaky, replay)
        report.sections.append(("faultlab flaky", text))
        _journal_flaky(item, flaky, replay, text)
    _journal_test(item, report, seed, labels, replay)
    if report.failed:
        report.sections.append(("faultlab replay", f"seed {seed}: {replay}"))
    return report


def _flaky_outcomes(call: pytest.CallInfo[Any]) -> list[dict[str, Any]] | None:
    """A test that ended in Hypothesis' ``Flaky`` (a failure that did not reproduce), as
    faultlab outcomes: each failure of the first run, then the replay that passed. None if
    it did not end so."""
    if call.excinfo is None:
        return None
    try:
        from hypothesis.errors import Flaky
    except ImportError:  # pragma: no cover - hypothesis is a dependency
        return None
    error = call.excinfo.value
    if not isinstance(error, Flaky):
        return None
    inner = [e for e in getattr(error, "exceptions", ()) if isinstance(e, BaseException)]
    outcomes = [
        {"failed": True, "message": f"{type(e).__name__}: {e}", "error": type(e).__name__}
        for e in inner or [error]
    ]
    head = str(error).splitlines()[0] if str(error) else type(error).__name__
    outcomes.append({"failed": False, "message": f"on replay ({head})", "error": None})
    return outcomes


def _flaky_report(item: pytest.Item, outcomes: list[dict[str, Any]], replay: str) -> str:
    plan: Any = item.stash.get(_plan_key, None)
    lines = ["FLAKY: the test failed, then passed when Hypothesis replayed the failing example"]
    if plan is not None and hasattr(plan, "describe"):
        lines.append(plan.describe())
    for number, outcome in enumerate(outcomes, 1):
        label = "replay" if number == len(outcomes) else "first run"
        state = "FAILED" if outcome["failed"] else "passed"
        lines.append(f"  {label}: {state}: {outcome['message']}")
    lines.append(f"replay: {replay}")
    return "\n".join(lines)


def _journal_flaky(
    item: pytest.Item, outcomes: list[dict[str, Any]], replay: str, text: str
) -> None:
    """A ``plan_search`` event and a failed ``plans flaky`` verdict, as ``search_plans``
    journals them, so the report keeps the failure Hypothesis called flaky."""
    lab = item.stash.get(_lab_key, None) or item.config.stash.get(_session_lab, None)
    if lab is None:
        return
    from faultlab.oracles.verdict import Verdict, record_verdict

    plan: Any = item.stash.get(_plan_key, None)
    lab.journal.record(
        "plan_search",
        nodeid=item.nodeid,
        plan=plan.to_json() if hasattr(plan, "to_json") else plan,
        outcomes=outcomes,
        flaky=True,
        replay=replay,
        examples=None,
    )
    record_verdict(lab.journal, Verdict("plans", "flaky", False, message=text), nodeid=item.nodeid)


def _labels(item: pytest.Item) -> dict[str, Any]:
    """transport / protocol / fault / backend of a test: its parameters, else what its
    fixtures say (a pair's, or the proxies it made)."""
    labels: dict[str, Any] = {}
    labeler = item.stash.get(_labels_key, None)
    if labeler is not None:
        try:
            labels.update({k: v for k, v in labeler().items() if v is not None})
        except Exception:  # a label must never fail the report
            pass
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    for name in ("transport", "protocol", "fault"):
        if f"faultlab_{name}" in params:
            labels[name] = params[f"faultlab_{name}"]
    return labels


_REPLAYED_OPTIONS = (
    "faultlab_target",
    "faultlab_backend",
    "faultlab_transports",
    "faultlab_protocols",
    "toxiproxy_url",
)


def replay_command(item: pytest.Item, seed: int) -> str:
    """The full command that reruns exactly this case, as printed: the test's file by its
    absolute path (so ``--pyargs`` runs replay from anywhere), the options that chose the
    case, the seed, and ``FAULTLAB_PLAN`` when a fault plan is attached."""
    import shlex

    from faultlab.strategies.faults import PLAN_ENV

    path = Path(str(item.path)).resolve()
    name = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else ""
    node = f"{path}::{name}" if name else str(path)
    parts = ["pytest", node, f"--faultlab-seed={seed}"]
    for dest in _REPLAYED_OPTIONS:
        value = item.config.getoption(dest, default=None) or item.config.getini(dest) or None
        if value:
            parts.append(f"--{dest.replace('_', '-')}={value}")
    plugins = item.config.getoption("plugins", default=None) or []
    parts += [f"-p={p}" for p in plugins if "faultlab" in str(p)]
    command = " ".join(shlex.quote(p) for p in parts)
    plan: Any = item.stash.get(_plan_key, None)
    if plan is not None and hasattr(plan, "dumps"):
        command = f"{PLAN_ENV}={shlex.quote(plan.dumps())} {command}"
    return command


def _journal_test(
    item: pytest.Item, report: pytest.TestReport, seed: int, labels: dict[str, Any], replay: str
) -> None:
    lab = item.stash.get(_lab_key, None) or item.config.stash.get(_session_lab, None)
    if lab is None:
        return
    from faultlab.journal import schema as ev

    plan: Any = item.stash.get(_plan_key, None)
    plan_json = plan.to_json() if hasattr(plan, "to_json") else plan
    lab.journal.record(
        ev.TEST,
        nodeid=item.nodeid,
        outcome=report.outcome,
        duration=report.duration,
        transport=labels.get("transport"),
        protocol=labels.get("protocol"),
        fault=labels.get("fault"),
        backend=labels.get("backend") or lab.backend,
        seed=seed,
        plan=plan_json,
        replay=replay,
        t_start=item.stash.get(_start_key, None),
        message=str(report.longrepr)[-2000:] if report.failed else "",
    )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """A resilience summary (matrix and failing cases with replay lines), from the journal."""
    lab = config.stash.get(_session_lab, None)
    if lab is None or not any(e["kind"] == "test" for e in lab.journal.events(kinds=["test"])):
        return
    try:
        from faultlab.reports.model import LoadedJournal, build_model
        from faultlab.reports.terminal import print_summary
    except ImportError:  # pragma: no cover
        return
    # through JSON, as the written journal is: keys become strings, values plain data
    events = json.loads(json.dumps(lab.journal.events(), default=repr))
    try:
        model = build_model(LoadedJournal(seed=lab.seed, events=tuple(events)))
    except Exception as exc:  # a summary must never break the test run
        terminalreporter.write_line(
            f"faultlab: no resilience summary ({type(exc).__name__}: {exc})"
        )
        return
    terminalreporter.write_sep("=", "faultlab resilience summary")
    from rich.console import Console

    console = Console()
    print_summary(model, console if console.is_terminal else Console(width=160))
