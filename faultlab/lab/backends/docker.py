"""The Docker backend: the server runs in a container on its own bridge network.

Containers make process faults the engine's (``docker pause`` freezes the
cgroup; kill, stop and restart act on PID 1) and let the network itself fail:
:meth:`DockerServer.partition` disconnects the container from its Pair's
network (both directions) or, as root with ``nsenter`` and ``iptables`` on the
host, drops one direction inside the container's network namespace. The test
process reaches the server on the container's bridge IP (routed on Linux, no
port publishing), at a fixed IP and port, so a restart keeps the address.

The container runs ``python -m faultlab.lab.serve_target`` like the subprocess
backend: it prints ``READY``, and writes its server events as JSON lines to a
bind-mounted host directory; they are timed on the host's monotonic clock
(containers share the kernel), so the lab's journal origin holds.

A user's own image (``faultlab.Image``) runs the same way as an
:class:`ImageServer`: the same network, faults and cleanup (both are a
:class:`ContainerServer`), but the image's own program, ready when its declared
check (:mod:`faultlab.lab.readiness`) passes at ``tcp://<bridge IP>:<port>``.

Everything created carries ``faultlab=1`` and session/owner labels; close()
removes it, and :func:`sweep` (run on the backend's first use) removes what a
crashed run left behind.
"""

from __future__ import annotations

import importlib
import ipaddress
import itertools
import math
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from faultlab._cleanup import Owner, pid_alive, runtime_dir
from faultlab.journal import Journal
from faultlab.journal import schema as ev
from faultlab.journal.store import copy_appended
from faultlab.lab.backends.base import (
    BackendError,
    ServerHandle,
    ServerSpec,
    UnsupportedFault,
    register_backend,
)
from faultlab.lab.readiness import ServiceExited, ServiceStartError, wait_ready
from faultlab.lab.services import Image

__all__ = [
    "LABEL",
    "SUPPORTED_SCHEMES",
    "ContainerServer",
    "DockerProxy",
    "DockerServer",
    "DockerUnavailable",
    "ImageNotFound",
    "ImageServer",
    "available",
    "docker_client",
    "labels",
    "sweep",
]

LABEL = "faultlab"
SESSION_LABEL = "faultlab.session"
OWNER_LABEL = "faultlab.owner"
SUPPORTED_SCHEMES = ("tcp", "udp", "unix", "unixgram")
IP_SCHEMES = ("tcp", "udp")
CONTAINER_PORT = 7000
PROXY_API_PORT = 8474
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10
DEFAULT_SUBNETS = "10.213.0.0/16"
TAIL_CHARS = 4000
"""How much of a container's log an error message quotes."""

Direction = Literal["both", "inbound", "outbound"]


class DockerUnavailable(BackendError):
    """No docker SDK or no engine answering: Docker tests skip on this, never fail."""


class ImageNotFound(BackendError):
    """A ``faultlab.Image`` names an image the local engine does not have (never pulled)."""


class _Session:
    """Per-process state: one client, one image, one sweep, one id for labels."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex[:10]
        self.pid = os.getpid()
        self.owner = f"{socket.gethostname()}:{self.pid}"
        self.names = itertools.count()
        self.lock = threading.Lock()
        self._client: Any = None
        self._image: str | None = None

    def client(self) -> Any:
        with self.lock:
            if self._client is None:
                self._client = _connect()
                sweep(self._client)
            return self._client

    def image(self) -> str:
        """The image for servers; looked up each time, since a parallel run may prune it."""
        client = self.client()
        with self.lock:
            if self._image is not None and not _has_image(client, self._image):
                self._image = None
            if self._image is None:
                self._image = _resolve_image(client)
            return self._image


_session_lock = threading.Lock()
_session: _Session | None = None


def _current() -> _Session:
    global _session
    with _session_lock:
        if _session is None or _session.pid != os.getpid():
            _session = _Session()
        return _session


def _sdk() -> Any:
    """The docker SDK module, imported lazily so faultlab works without it.

    Untyped (no stubs); imported by name because mypy, run from the repository root, would
    take the ``docker/`` folder there for a namespace package and miss the SDK (Python
    does too when the SDK is missing, hence the check).
    """
    module = importlib.import_module("docker")
    if not hasattr(module, "from_env"):
        raise ImportError("the docker SDK is not installed (found only a 'docker' folder)")
    return module


def _connect() -> Any:
    try:
        docker = _sdk()
    except ImportError:
        raise DockerUnavailable(
            "the docker SDK is not installed: pip install 'faultlab[docker]'"
        ) from None
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:
        raise DockerUnavailable(
            f"no Docker engine answers at {where} ({exc}); start one, e.g. `bash .ci/docker.sh`"
        ) from None
    return client


def docker_client() -> Any:
    """This process's docker SDK client (connects, and sweeps leftovers, on first use)."""
    return _current().client()


def available() -> str | None:
    """None when the Docker backend can run here, else the reason it cannot."""
    try:
        docker_client()
    except DockerUnavailable as exc:
        return str(exc)
    return None


def labels(**extra: str) -> dict[str, str]:
    """The labels every faultlab resource carries: sweepable by owner, removable by session."""
    session = _current()
    return {LABEL: "1", SESSION_LABEL: session.id, OWNER_LABEL: session.owner, **extra}


def _has_image(client: Any, tag: str) -> bool:
    try:
        client.images.get(tag)
    except _sdk().errors.ImageNotFound:
        return False
    return True


def _resolve_image(client: Any) -> str:
    """FAULTLAB_DOCKER_IMAGE if set (never pulled), else the locally built image."""
    docker = _sdk()
    from faultlab.lab.docker_image import ImageBuildError, ensure_local_image

    named = os.environ.get("FAULTLAB_DOCKER_IMAGE")
    if named:
        try:
            client.images.get(named)
        except docker.errors.ImageNotFound:
            raise BackendError(
                f"FAULTLAB_DOCKER_IMAGE={named} is not present locally: build it "
                "(docker build -f docker/Dockerfile -t faultlab .) or pull it first"
            ) from None
        return named
    try:
        return ensure_local_image(client, log=False)
    except ImageBuildError as exc:
        raise BackendError(f"cannot build the local faultlab image: {exc}") from exc


def _stale(resource_labels: dict[str, str] | None, session: _Session, everything: bool) -> bool:
    """Removable: ours from another session whose owner process on this host is gone."""
    found = resource_labels or {}
    if found.get(SESSION_LABEL) == session.id:
        return False
    if everything:
        return True
    host, _, pid = found.get(OWNER_LABEL, "").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def sweep(
    client: Any | None = None, *, everything: bool = False, images: bool = False
) -> dict[str, int]:
    """Remove ``faultlab=1`` containers, networks and volumes that a dead run left.

    Only resources whose owner process (on this host) is gone are touched, so
    parallel runs and xdist workers keep theirs; ``everything=True`` removes all
    but this session's. Images are a cache kept across runs: ``images=True``
    also removes unused faultlab images.
    """
    docker = _sdk()
    client = client if client is not None else docker_client()
    session = _current()
    counts = {"containers": 0, "networks": 0, "volumes": 0, "images": 0}
    flt = {"label": f"{LABEL}=1"}
    for info in client.api.containers(all=True, filters=flt):
        if _stale(info.get("Labels"), session, everything):
            try:
                client.api.remove_container(info["Id"], force=True, v=True)
                counts["containers"] += 1
            except docker.errors.NotFound:
                pass
    for info in client.api.networks(filters=flt):
        if _stale(info.get("Labels"), session, everything):
            try:
                client.api.remove_network(info["Id"])
                counts["networks"] += 1
            except docker.errors.NotFound:
                pass
    for info in client.api.volumes(filters=flt).get("Volumes") or []:
        if _stale(info.get("Labels"), session, everything):
            try:
                client.api.remove_volume(info["Name"], force=True)
                counts["volumes"] += 1
            except docker.errors.NotFound:
                pass
    _sweep_workdirs(client, session)
    if images:
        for info in client.api.images(filters=flt):
            try:
                client.api.remove_image(info["Id"], force=False)
                counts["images"] += 1
            except docker.errors.APIError:
                pass  # in use by a container, or already gone
    return counts


WORKDIR_GRACE = 60.0


def _workdirs() -> Path:
    return runtime_dir() / "docker"


def _sweep_workdirs(client: Any, session: _Session) -> None:
    """Remove bind-mount directories whose container is gone (a crashed run's), but not
    one a parallel run is still setting up (younger than WORKDIR_GRACE)."""
    root = _workdirs()
    if not root.is_dir():
        return
    names = {n.lstrip("/") for c in client.api.containers(all=True) for n in c.get("Names") or []}
    now = time.time()
    for path in root.iterdir():
        if path.name in names or path.name.startswith(f"faultlab-{session.id}-"):
            continue
        try:
            if now - path.stat().st_mtime > WORKDIR_GRACE:
                shutil.rmtree(path, ignore_errors=True)
        except FileNotFoundError:
            pass


def _subnet_pool() -> list[ipaddress.IPv4Network]:
    pool = ipaddress.ip_network(os.environ.get("FAULTLAB_DOCKER_SUBNETS", DEFAULT_SUBNETS))
    if not isinstance(pool, ipaddress.IPv4Network) or pool.prefixlen > 28:
        raise BackendError(f"FAULTLAB_DOCKER_SUBNETS must be an IPv4 network /28 or larger: {pool}")
    return list(pool.subnets(new_prefix=28))


def _create_network(client: Any, name: str) -> tuple[str, ipaddress.IPv4Network]:
    """A fresh internal bridge with a subnet we choose, so containers get fixed IPs."""
    docker = _sdk()
    used = set()
    for info in client.api.networks():
        for cfg in (info.get("IPAM") or {}).get("Config") or []:
            if cfg.get("Subnet"):
                used.add(ipaddress.ip_network(cfg["Subnet"], strict=False))
    free = [s for s in _subnet_pool() if not any(s.overlaps(u) for u in used)]
    rng = random.Random()
    last: Exception | None = None
    for _ in range(16):
        if not free:
            break
        subnet = free.pop(rng.randrange(len(free)))
        ipam = docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=str(subnet), gateway=str(subnet[1]))]
        )
        try:
            net = client.api.create_network(
                name,
                driver="bridge",
                internal=True,
                ipam=ipam,
                labels=labels(),
                check_duplicate=True,
            )
        except docker.errors.APIError as exc:
            last = exc
            if "overlap" in str(exc).lower():
                continue  # another run took it between our look and our create
            raise BackendError(f"cannot create docker network {name}: {exc}") from exc
        return str(net["Id"]), subnet
    raise BackendError(f"no free /28 subnet for a docker network in the pool: {last}")


def _tail(data: bytes, limit: int = 2000) -> str:
    return data.decode(errors="replace")[-limit:]


class ContainerServer(ServerHandle):
    """A server in a container, alone on its own internal bridge network at a fixed IP.

    What every server container shares: its network, process faults (``docker pause``,
    SIGKILL, SIGTERM then SIGKILL, restart on the same IP), partitions, journaled
    ``process`` events (``target="server"``, ``container=<name>``) and cleanup (an
    :class:`~faultlab._cleanup.Owner`: close, failure and interpreter exit remove the
    container and the network). Subclasses create the container (:meth:`_create`) and
    say when it is ready (:meth:`_wait_ready`).
    """

    scheme = "tcp"
    stop_timeout: float = STOP_TIMEOUT

    def __init__(self, journal: Journal) -> None:
        session = _current()
        self.client = session.client()  # DockerUnavailable before anything is created
        self.journal = journal
        self.name = f"faultlab-{session.id}-{next(session.names)}"
        self.network_id: str | None = None
        self.container_id: str | None = None
        self.ip: str | None = None
        self.subnet: ipaddress.IPv4Network | None = None
        self._paused = False
        self._partition: Direction | None = None
        self._closed = False
        self._owner = Owner(self._remove)

    # setup
    def _create_network(self) -> None:
        """This server's own network; the container will have its third address."""
        self.network_id, self.subnet = _create_network(self.client, self.name)
        self.ip = str(self.subnet[2])

    def _create(
        self,
        image: str,
        command: Sequence[str] | None,
        *,
        environment: dict[str, str] | None = None,
        binds: dict[str, dict[str, str]] | None = None,
        extra_labels: dict[str, str] | None = None,
        **options: Any,
    ) -> None:
        """Create (not start) the container on this server's network at its fixed IP."""
        api = self.client.api
        host_config = api.create_host_config(binds=binds, network_mode=self.name)
        networking = api.create_networking_config(
            {self.name: api.create_endpoint_config(ipv4_address=self.ip)}
        )
        created = api.create_container(
            image,
            list(command) if command is not None else None,
            name=self.name,
            labels=labels(**{"faultlab.role": "server", **(extra_labels or {})}),
            environment=environment,
            host_config=host_config,
            networking_config=networking,
            **options,
        )
        self.container_id = str(created["Id"])

    def _start(self) -> None:
        self.client.api.start(self.container_id)
        self._wait_ready()
        self.pid = int(self._inspect()["State"]["Pid"]) or None
        self._paused = False
        if self._partition in ("inbound", "outbound"):
            self._iptables("-I", self._partition)  # a new netns forgot the rule

    @abstractmethod
    def _wait_ready(self) -> None:
        """Return once the started container serves; raise BackendError if it cannot."""

    def describe(self) -> str:
        return f"server container {self.name}"

    def _inspect(self) -> dict[str, Any]:
        info: dict[str, Any] = self.client.api.inspect_container(self.container_id)
        return info

    def logs(self) -> str:
        """The container's stdout and stderr so far (for failure messages)."""
        if self.container_id is None:
            return ""
        return _tail(self.client.api.logs(self.container_id), 20_000)

    def _process_event(self, action: str, **fields: Any) -> None:
        self.journal.record(
            ev.PROCESS, action=action, pid=self.pid, target="server", container=self.name, **fields
        )

    def merge_events(self) -> None:
        """Copy events the container wrote for the lab's journal (none by default)."""

    # state
    @property
    def alive(self) -> bool:
        if self.container_id is None or self._closed:
            return False
        try:
            return bool(self._inspect()["State"]["Running"])
        except Exception:
            return False

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def partitioned(self) -> Direction | None:
        return self._partition

    @contextmanager
    def _engine(self, what: str) -> Iterator[None]:
        """The engine's errors as BackendError, naming the fault and the container."""
        try:
            yield
        except _sdk().errors.DockerException as exc:
            raise BackendError(f"docker {what} of {self.name} failed: {exc}") from exc

    # process faults
    def pause(self) -> None:
        if not self.alive:
            raise BackendError(f"cannot pause: {self.describe()} is not running")
        with self._engine("pause"):
            self.client.api.pause(self.container_id)
        self._paused = True
        self._process_event("pause")

    def resume(self) -> None:
        if self._paused and self.alive:
            with self._engine("unpause"):
                self.client.api.unpause(self.container_id)
            self._paused = False
            self._process_event("resume")

    def kill(self) -> None:
        if self.container_id is None:
            return
        self.merge_events()
        if self.alive:
            with self._engine("kill"):
                self.client.api.kill(self.container_id)  # SIGKILL; thaws a paused container
                self.client.api.wait(self.container_id, timeout=STOP_TIMEOUT)
        self._paused = False
        self._process_event("kill")

    def stop(self) -> None:
        if self.container_id is not None and self.alive:
            with self._engine("stop"):
                if self._paused:
                    self.client.api.unpause(self.container_id)
                    self._paused = False
                # SIGTERM, then SIGKILL after the grace period (whole seconds for the engine)
                self.client.api.stop(self.container_id, timeout=math.ceil(self.stop_timeout))
            self.merge_events()
            self._process_event("stop")

    def restart(self) -> None:
        """Start again on the same address (same IP and port) after kill, stop, or running."""
        if self.container_id is None:
            raise BackendError(f"cannot restart: {self.describe()} was removed")
        self.merge_events()
        with self._engine("restart"):
            if self.alive:
                self.client.api.kill(self.container_id)
                self.client.api.wait(self.container_id, timeout=STOP_TIMEOUT)
            self._start()
        self._process_event("restart")

    # network faults
    def partition(self, direction: Direction = "both") -> None:
        """Cut the server off the network: ``both`` disconnects it from the Pair's network;
        ``inbound`` (nothing reaches it) and ``outbound`` (it receives but its replies are
        lost) drop packets with iptables in its network namespace."""
        if self.scheme not in IP_SCHEMES:
            raise UnsupportedFault(
                f"a network partition needs an IP transport; {self.scheme}:// crosses a bind mount"
            )
        if direction not in ("both", "inbound", "outbound"):
            raise ValueError(f"direction must be both, inbound or outbound: {direction!r}")
        if self._partition == direction:
            return
        if self._partition is not None:
            self.heal()
        if direction == "both":
            with self._engine("disconnect"):
                self.client.api.disconnect_container_from_network(
                    self.container_id, self.network_id
                )
        else:
            if not self.alive:
                raise BackendError(f"a one-way partition needs {self.describe()} running")
            self._iptables("-I", direction)
        self._partition = direction
        self._process_event("partition", direction=direction)

    def heal(self) -> None:
        """Undo :meth:`partition` (the server keeps its IP, so the address still holds)."""
        direction = self._partition
        if direction is None:
            return
        if direction == "both":
            with self._engine("reconnect"):
                self.client.api.connect_container_to_network(
                    self.container_id, self.network_id, ipv4_address=self.ip
                )
        elif self.alive:
            self._iptables("-D", direction)
        self._partition = None
        self._process_event("heal", direction=direction)

    def _iptables(self, op: str, direction: Direction) -> None:
        chain, iface = ("INPUT", "-i") if direction == "inbound" else ("OUTPUT", "-o")
        cmd = ["nsenter", "-t", str(self.pid), "-n", "iptables", "-w", "5", op, chain]
        cmd += ["!", iface, "lo", "-j", "DROP"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=15, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UnsupportedFault(
                f"a one-way partition needs root, nsenter and iptables on the host ({exc}); "
                "direction='both' (network disconnect) works without them"
            ) from exc
        if done.returncode != 0:
            raise UnsupportedFault(
                f"{' '.join(cmd)} failed ({done.stderr.strip()}); a one-way partition needs "
                "root and iptables on the host; direction='both' works without them"
            )

    # teardown
    def _remove(self) -> None:
        """Remove the container and the network (idempotent, quiet)."""
        docker = _sdk()
        api = self.client.api
        if self.container_id is not None:
            try:
                api.remove_container(self.container_id, force=True, v=True)
            except docker.errors.NotFound:
                pass
            self.container_id = None
        if self.network_id is not None:
            try:
                api.remove_network(self.network_id)
            except docker.errors.NotFound:
                pass
            self.network_id = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.merge_events()
        finally:
            try:
                self._remove()
            except Exception as exc:
                raise BackendError(f"cannot remove {self.name}: {exc}") from exc
            finally:
                self._owner.forget()


class DockerServer(ContainerServer):
    """A Pair's server (a Python factory run by ``serve_target``) in faultlab's own image."""

    def __init__(self, spec: ServerSpec, journal: Journal) -> None:
        scheme = spec.address.split("://", 1)[0]
        if scheme not in SUPPORTED_SCHEMES:
            raise BackendError(
                f"the docker backend serves {', '.join(SUPPORTED_SCHEMES)}; not {scheme}://"
            )
        self.spec = spec
        self.scheme = scheme
        self.address = spec.address
        self._read_offset = 0
        self._ready_seen = 0
        self._proxies: list[DockerProxy] = []
        super().__init__(journal)
        self.workdir = _workdirs() / self.name
        self.events_path = self.workdir / "events.jsonl"
        try:
            image = _current().image()
            self.workdir.mkdir(mode=0o700, parents=True)
            self._create_network()
            inner = self._addresses()
            self._create_container(image, inner)
            self._start()
        except BaseException:
            self.close()
            raise

    # setup
    def _addresses(self) -> str:
        """Set the host-side ``address``; return the address the server binds inside."""
        if self.scheme in IP_SCHEMES:
            port = urlsplit(self.spec.address).port or CONTAINER_PORT
            self.address = f"{self.scheme}://{self.ip}:{port}"
            return f"{self.scheme}://0.0.0.0:{port}"
        path = self.spec.address.split("://", 1)[1]
        self.address = f"{self.scheme}://{self.workdir / Path(path).name}"
        return self.address

    def _create_container(self, image: str, inner: str) -> None:
        cmd = self.spec.serve_command("python3", inner, str(self.events_path), self.journal.origin)
        binds = {str(self.workdir): {"bind": str(self.workdir), "mode": "rw"}}
        env = {"PYTHONUNBUFFERED": "1"}
        extra = [p for p in os.environ.get("FAULTLAB_DOCKER_PYTHONPATH", "").split(":") if p]
        for path in extra:
            binds[path] = {"bind": path, "mode": "ro"}
        if extra:
            env["PYTHONPATH"] = ":".join(extra)
        self._create(
            image,
            cmd,
            environment=env,
            binds=binds,
            # serve_target exits when its stdin closes: keep it open, unattached.
            stdin_open=True,
            user=f"{os.getuid()}:{os.getgid()}",
        )

    def _wait_ready(self) -> None:
        """Wait for one more ``READY`` line in the container's stdout than seen before."""
        api = self.client.api
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            count = api.logs(self.container_id, stdout=True, stderr=False).count(b"READY ")
            if count > self._ready_seen:
                self._ready_seen = count
                return
            if not self._inspect()["State"]["Running"]:
                break
            time.sleep(0.02)
        err = api.logs(self.container_id, stdout=False, stderr=True)
        raise BackendError(
            f"server container {self.name} did not print READY within {START_TIMEOUT:g} s; "
            f"stderr: {_tail(err)}"
        )

    def merge_events(self) -> None:
        """Copy the container's new server events (bind-mounted JSONL) into the lab journal."""
        self._read_offset = copy_appended(self.events_path, self._read_offset, self.journal)

    # teardown
    def _remove(self) -> None:
        """Remove the proxies, the container, the network and the work directory."""
        for proxy in self._proxies:
            proxy.close()
        super()._remove()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def start_proxy(
        self, command: Sequence[str] | None = None, *, api_port: int = PROXY_API_PORT
    ) -> DockerProxy:
        """Run ``faultlab proxy`` (Toxiproxy API) in a container next to this server."""
        if self.network_id is None or self.subnet is None:
            raise BackendError("the server container was removed")
        proxy = DockerProxy(
            self.client,
            _current().image(),
            network=self.name,
            ip=str(self.subnet[3]),
            upstream_host=self.ip or "",
            command=command,
            api_port=api_port,
        )
        self._proxies.append(proxy)
        return proxy


class ImageServer(ContainerServer):
    """A user's own image (:class:`~faultlab.lab.services.Image`) as a Pair's server.

    The container runs the image as built (its entrypoint, its user; ``command``, if
    given, in place of its CMD), with ``env``, on its own internal network; faultlab reaches it at ``tcp://<ip>:<port>``
    (its bridge IP, nothing published) and it is ready when the declared check passes
    there. The image must be present locally: faultlab never pulls.
    """

    def __init__(self, service: Image, journal: Journal) -> None:
        self.service = service
        self.port = service.port
        self.stop_timeout = service.stop_timeout
        self.address = ""
        super().__init__(journal)
        try:
            self._check_image()
            self._create_network()
            self.address = f"tcp://{self.ip}:{self.port}"
            self._create(
                service.image,
                service.command,
                environment=dict(service.env or {}),
                extra_labels={"faultlab.image": service.image},
            )
            self._start()
        except BaseException:
            self.close()
            raise

    def _check_image(self) -> None:
        docker = _sdk()
        name = self.service.image
        try:
            self.client.images.get(name)
        except docker.errors.ImageNotFound:
            raise ImageNotFound(
                f"image {name!r} is not present in the local Docker engine, and faultlab never "
                f"pulls: build it first (docker build -t {name} .) or pull it yourself"
            ) from None
        except docker.errors.APIError as exc:
            raise BackendError(f"cannot look up image {name!r}: {exc}") from exc

    def describe(self) -> str:
        return f"container {self.name} (image {self.service.image})"

    def _wait_ready(self) -> None:
        """The declared check at the container's address; an exited container fails at once.

        Across a full partition (the container disconnected) nothing can be probed: a
        restart then returns once the container runs.
        """
        if self._partition == "both":
            if (error := self._exited()) is not None:
                raise error
            return
        wait_ready(
            self.service.check,
            f"{self.ip}:{self.port}",
            timeout=self.service.ready_timeout,
            what=self.describe(),
            exited=self._exited,
        )

    def _exited(self) -> ServiceStartError | None:
        try:
            state = self._inspect()["State"]
        except _sdk().errors.DockerException as exc:
            return ServiceStartError(f"{self.describe()} is gone: {exc}")
        if state["Running"]:
            return None
        code = state.get("ExitCode")
        error = f" ({state['Error']})" if state.get("Error") else ""
        tail = self.logs()[-TAIL_CHARS:].strip() or "(empty)"
        return ServiceExited(
            f"{self.describe()} exited with code {code}{error} before it was ready; "
            f"log tail (stdout and stderr):\n{tail}"
        )


class DockerProxy:
    """The faultlab proxy in a container on a server's network (for end-to-end setups).

    ``api_url`` is the Toxiproxy HTTP API; proxies created through it listen on
    ``host`` (the container's bridge IP), and reach the server at ``upstream_host``.
    """

    def __init__(
        self,
        client: Any,
        image: str,
        *,
        network: str,
        ip: str,
        upstream_host: str,
        command: Sequence[str] | None = None,
        api_port: int = PROXY_API_PORT,
    ) -> None:
        api = client.api
        self.client = client
        self.name = f"{network}-proxy"
        self.host = ip
        self.upstream_host = upstream_host
        self.api_url = f"http://{ip}:{api_port}"
        cmd = list(command or ["faultlab", "proxy", "--host", "0.0.0.0", "--port", str(api_port)])
        created = api.create_container(
            image,
            cmd,
            name=self.name,
            labels=labels(**{"faultlab.role": "proxy"}),
            user=f"{os.getuid()}:{os.getgid()}",
            host_config=api.create_host_config(network_mode=network),
            networking_config=api.create_networking_config(
                {network: api.create_endpoint_config(ipv4_address=ip)}
            ),
        )
        self.container_id: str | None = str(created["Id"])
        self._owner = Owner(self.close)
        try:
            api.start(self.container_id)
            self._wait_api(api_port)
        except BaseException:
            self.close()
            raise

    def _wait_api(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, port), timeout=0.5).close()
                return
            except OSError:
                state = self.client.api.inspect_container(self.container_id)["State"]
                if not state["Running"]:
                    break
                time.sleep(0.05)
        logs = self.client.api.logs(self.container_id) if self.container_id else b""
        raise BackendError(f"proxy container {self.name} did not listen on {port}: {_tail(logs)}")

    def close(self) -> None:
        docker = _sdk()
        if self.container_id is not None:
            try:
                self.client.api.remove_container(self.container_id, force=True, v=True)
            except docker.errors.NotFound:
                pass
            self.container_id = None
        self._owner.forget()

    def __enter__(self) -> DockerProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


register_backend("docker", DockerServer)
