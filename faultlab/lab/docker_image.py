"""Build the faultlab image locally, without a registry, from this host's own Python.

Where no registry is reachable, ``docker/Dockerfile``'s ``FROM python:3.11-slim``
cannot be pulled. The same image is assembled instead, in two layers:

* **base** (``faultlab-local-base:<key>``): a root file system imported with
  ``docker import`` - the running interpreter laid out as an official image does
  (``/usr/local/bin/python3.11``, ``/usr/local/lib/python3.11``), the shared
  libraries it and its extension modules link (found with ``ldd``), and the
  installed files (from RECORD) of faultlab's runtime dependencies. Its tag is a
  hash of that file list, so it is built once per interpreter and dependency set.
* **app** (``faultlab-local:<key>``): ``FROM`` the base, ``COPY`` of the faultlab
  package; rebuilt in about a second when the source changes.

Both carry the label ``faultlab=1``. ``python -m faultlab.lab.docker_image``
builds (or finds) the image and prints its tag; ``--base`` prints the base's tag.

A user's own service image (``faultlab.Image``) can be built the same way, with no
registry: :func:`ensure_base_image` gives a ``FROM`` with Python, and
:func:`build_local` builds a Dockerfile and in-memory files into a tagged image
(never pulling).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import faultlab
from faultlab.errors import FaultlabError

__all__ = [
    "APP_REPO",
    "BASE_REPO",
    "IMAGE_LABELS",
    "ImageBuildError",
    "app_key",
    "base_key",
    "build_local",
    "ensure_base_image",
    "ensure_local_image",
    "runtime_requirements",
]

BASE_REPO = "faultlab-local-base"
APP_REPO = "faultlab-local"
IMAGE_LABELS = {"faultlab": "1", "faultlab.kind": "image"}
# Bump when the layout changes, so stale images are not reused.
_LAYOUT_VERSION = "1"
_PY = f"python{sys.version_info.major}.{sys.version_info.minor}"
_STDLIB_SKIP = {
    "site-packages",
    "test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "__phello__",
    f"config-{sys.version_info.major}.{sys.version_info.minor}-{sys.implementation._multiarch}",
}
_DYNLOAD_SKIP = re.compile(r"^(_tkinter|_test|_xxtest|xxlimited|_ctypes_test)")
# Build-time only: protoc is not needed to serve gRPC.
_REQUIREMENT_SKIP = {"grpcio-tools"}
_RUNTIME_EXTRAS = ("grpc",)


class ImageBuildError(FaultlabError):
    """The local image could not be assembled or imported."""


@dataclass(frozen=True)
class _Entry:
    """One member of the root file system: a host file, a symlink, or literal bytes."""

    arcname: str
    source: Path | None = None
    link: str | None = None
    data: bytes | None = None
    mode: int = 0o644

    def fingerprint(self) -> str:
        if self.source is not None:
            st = self.source.stat()
            return f"{self.arcname}|{st.st_size}|{st.st_mtime_ns}|{st.st_mode:o}"
        if self.link is not None:
            return f"{self.arcname}|->{self.link}"
        return f"{self.arcname}|{hashlib.sha256(self.data or b'').hexdigest()}"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _req_name(requirement: str) -> str:
    return _norm(re.split(r"[\s;<>=!~\[(]", requirement.strip(), maxsplit=1)[0])


def runtime_requirements() -> list[str]:
    """faultlab's runtime requirements (+ the grpc extra), from pyproject.toml when present.

    The source tree's pyproject is the truth; an editable install's metadata can lag it.
    """
    pyproject = Path(faultlab.__file__).resolve().parent.parent / "pyproject.toml"
    reqs: list[str] = []
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text())["project"]
        reqs += project.get("dependencies", [])
        for extra in _RUNTIME_EXTRAS:
            reqs += project.get("optional-dependencies", {}).get(extra, [])
    else:
        for req in distribution("faultlab").requires or []:
            marker = req.partition(";")[2]
            found = re.search(r"extra\s*==\s*['\"]([^'\"]+)", marker)
            if found is None or found.group(1) in _RUNTIME_EXTRAS:
                reqs.append(req)
    return sorted({_req_name(r) for r in reqs} - _REQUIREMENT_SKIP)


def _dependency_closure(names: Iterable[str]) -> list[Distribution]:
    """Installed distributions needed at run time (uninstalled ones: a marker said no)."""
    seen: dict[str, Distribution] = {}
    todo = list(names)
    while todo:
        name = _norm(todo.pop())
        if name in seen or name in _REQUIREMENT_SKIP:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        seen[name] = dist
        for req in dist.requires or []:
            if "extra ==" not in req.replace('"', "'").replace("extra==", "extra =="):
                todo.append(_req_name(req))
    return [seen[k] for k in sorted(seen)]


def _site_files(dists: Iterable[Distribution], site: Path) -> Iterator[Path]:
    for dist in dists:
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file))).resolve()
            if path.is_file() and path.is_relative_to(site.resolve()):
                yield path


def _ldd(paths: Iterable[Path]) -> set[str]:
    """Shared libraries the given ELF files load (host paths), minus the vDSO."""
    libs: set[str] = set()
    for path in paths:
        try:
            out = subprocess.run(
                ["ldd", str(path)], capture_output=True, text=True, timeout=30, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ImageBuildError(f"ldd {path} failed: {exc}") from exc
        for line in out.splitlines():
            match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if match and "not found" not in line:
                libs.add(match.group(1))
    return libs


def _lib_entries(libs: Iterable[str], prefix: Path) -> list[_Entry]:
    """Each library at its host path, keeping the symlinks (/lib -> usr/lib, libz.so.1 -> ...)."""
    entries: dict[str, _Entry] = {}
    for top in ("lib", "lib64", "bin", "sbin"):
        host = Path("/") / top
        if host.is_symlink():
            entries[top] = _Entry(top, link=os.readlink(host))
    for lib in libs:
        if Path(lib).resolve().is_relative_to(prefix.resolve()):
            continue  # libpython: placed under /usr/local/lib instead
        real_parent = Path(lib).parent.resolve()
        path = real_parent / Path(lib).name
        while path.is_symlink():
            target = os.readlink(path)
            entries[str(path).lstrip("/")] = _Entry(str(path).lstrip("/"), link=target)
            hop = Path(os.path.normpath(path.parent / target))
            path = hop.parent.resolve() / hop.name
        entries[str(path).lstrip("/")] = _Entry(str(path).lstrip("/"), source=path, mode=0o755)
    return list(entries.values())


def _collect_base() -> list[_Entry]:
    """The root file system's members (no I/O beyond stat, ldd and directory walks)."""
    prefix = Path(sys.base_prefix)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    site = Path(sysconfig.get_paths()["purelib"])
    entries: list[_Entry] = [
        _Entry("tmp/", mode=0o1777),
        _Entry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/false\n"),
        _Entry("etc/group", data=b"root:x:0:\n"),
        _Entry("root/", mode=0o755),
    ]
    exe = prefix / "bin" / _PY
    if not exe.is_file():
        raise ImageBuildError(f"no interpreter at {exe}")
    entries.append(_Entry(f"usr/local/bin/{_PY}", source=exe, mode=0o755))
    entries.append(_Entry("usr/local/bin/python3", link=_PY))
    entries.append(_Entry("usr/local/bin/python", link=_PY))
    entries.append(
        _Entry(
            "usr/local/bin/faultlab",
            data=(
                f"#!/usr/local/bin/{_PY}\nimport sys\nfrom faultlab.cli import main\n"
                "sys.exit(main())\n"
            ).encode(),
            mode=0o755,
        )
    )
    elves: list[Path] = [exe]
    for lib in sorted((prefix / "lib").glob(f"lib{_PY}*.so*")):
        if lib.is_symlink():
            entries.append(_Entry(f"usr/local/lib/{lib.name}", link=os.readlink(lib)))
        else:
            entries.append(_Entry(f"usr/local/lib/{lib.name}", source=lib, mode=0o755))
            elves.append(lib)
    for root, dirs, files in os.walk(stdlib):
        rel = Path(root).relative_to(stdlib)
        if rel == Path("."):
            dirs[:] = sorted(d for d in dirs if d not in _STDLIB_SKIP)
        else:
            dirs.sort()
        for name in sorted(files):
            if rel == Path("lib-dynload") and _DYNLOAD_SKIP.match(name):
                continue
            path = Path(root) / name
            if path.is_symlink() or not path.is_file():
                continue
            arc = f"usr/local/lib/{_PY}/{rel / name}".replace("/./", "/")
            entries.append(_Entry(arc, source=path))
            if name.endswith(".so"):
                elves.append(path)
    dists = _dependency_closure(runtime_requirements())
    for path in sorted(set(_site_files(dists, site))):
        rel = path.relative_to(site.resolve())
        entries.append(_Entry(f"usr/local/lib/{_PY}/site-packages/{rel}", source=path))
        if ".so" in path.name:
            elves.append(path)
    entries += _lib_entries(_ldd(elves), prefix)
    return entries


def base_key(entries: list[_Entry]) -> str:
    digest = hashlib.sha256(_LAYOUT_VERSION.encode())
    for entry in sorted(entries, key=lambda e: e.arcname):
        digest.update(entry.fingerprint().encode() + b"\n")
    return digest.hexdigest()[:12]


def _write_rootfs(entries: list[_Entry], out: Path) -> None:
    dirs_done: set[str] = set()
    with tarfile.open(out, "w") as tar:

        def parents(arcname: str) -> None:
            parts = arcname.rstrip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs_done:
                    dirs_done.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)

        for entry in sorted(entries, key=lambda e: e.arcname):
            parents(entry.arcname)
            info = tarfile.TarInfo(entry.arcname.rstrip("/"))
            info.mode = entry.mode
            if entry.arcname.endswith("/"):
                if info.name in dirs_done:
                    continue
                dirs_done.add(info.name)
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, entry.link
                tar.addfile(info)
            elif entry.source is not None:
                st = entry.source.stat()
                info.size, info.mtime = st.st_size, int(st.st_mtime)
                info.mode = entry.mode | (st.st_mode & 0o111)
                with open(entry.source, "rb") as f:
                    tar.addfile(info, f)
            else:
                data = entry.data or b""
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def _package_files() -> list[Path]:
    root = Path(faultlab.__file__).resolve().parent
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith((".pyc", ".pyo"))
    )


def app_key(base_tag: str) -> str:
    """A hash of the base and every file of the faultlab package (contents, not times)."""
    root = Path(faultlab.__file__).resolve().parent
    digest = hashlib.sha256(base_tag.encode())
    for path in _package_files():
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _sdk() -> Any:
    """The untyped docker SDK (by name: see faultlab.lab.backends.docker._sdk)."""
    module = importlib.import_module("docker")
    if not hasattr(module, "from_env"):
        raise ImportError("the docker SDK is not installed (found only a 'docker' folder)")
    return module


def _has_image(client: Any, tag: str) -> bool:
    docker = _sdk()
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


_base_tag: str | None = None
"""The base tag this process found or built (collecting its files takes seconds)."""


def ensure_base_image(client: Any, *, log: bool = False) -> str:
    """Find or build the base image (this host's Python, no faultlab); return its tag.

    A ``FROM`` for small local images (``/usr/local/bin/python3``, faultlab's runtime
    dependencies installed), built without a registry; looked up once per process.
    """
    global _base_tag
    if _base_tag is None or not _has_image(client, _base_tag):
        _base_tag = _build_base(client, log)
    return _base_tag


def _build_base(client: Any, log: bool) -> str:
    entries = _collect_base()
    tag = f"{BASE_REPO}:{base_key(entries)}"
    if _has_image(client, tag):
        return tag
    if log:
        print(f"faultlab: importing {tag} ({len(entries)} files)", file=sys.stderr)
    changes = [
        "ENV PATH=/usr/local/bin:/usr/bin:/bin",
        "ENV LD_LIBRARY_PATH=/usr/local/lib",
        "ENV LANG=C.UTF-8",
        "ENV PYTHONDONTWRITEBYTECODE=1",
        "WORKDIR /tmp",
        'CMD ["/usr/local/bin/faultlab", "--help"]',
        *(f"LABEL {k}={v}" for k, v in IMAGE_LABELS.items()),
    ]
    with tempfile.TemporaryDirectory(prefix="faultlab-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        _write_rootfs(entries, rootfs)
        repo, _, key = tag.partition(":")
        try:
            client.api.import_image_from_file(
                str(rootfs), repository=repo, tag=key, changes=changes
            )
        except Exception as exc:
            raise ImageBuildError(f"docker import of {tag} failed: {exc}") from exc
    if not _has_image(client, tag):
        raise ImageBuildError(f"docker import did not produce {tag}")
    return tag


def build_local(
    client: Any,
    tag: str,
    dockerfile: str,
    files: Mapping[str, bytes | Path] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Build ``dockerfile`` with ``files`` (context path -> bytes, or a host file) into
    ``tag``, never pulling (its ``FROM`` must be local, e.g. :func:`ensure_base_image`).

    The image carries ``labels`` (default: faultlab's, so ``sweep(images=True)`` removes
    it). Returns ``tag``; raises :class:`ImageBuildError` with the engine's message.
    """
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, content in {"Dockerfile": dockerfile.encode(), **(files or {})}.items():
            if isinstance(content, Path):
                tar.add(content, arcname=name, recursive=False)
                continue
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    context.seek(0)
    try:
        client.images.build(
            fileobj=context,
            custom_context=True,
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            labels=dict(IMAGE_LABELS if labels is None else labels),
        )
    except Exception as exc:
        raise ImageBuildError(f"docker build of {tag} failed: {exc}") from exc
    return tag


def _build_app(client: Any, base: str, log: bool) -> str:
    tag = f"{APP_REPO}:{app_key(base)}"
    if _has_image(client, tag):
        return tag
    if log:
        print(f"faultlab: building {tag} from {base}", file=sys.stderr)
    root = Path(faultlab.__file__).resolve().parent
    labels = "".join(f' {k}="{v}"' for k, v in IMAGE_LABELS.items())
    dockerfile = (
        f"FROM {base}\nLABEL{labels}\n"
        f"COPY faultlab /usr/local/lib/{_PY}/site-packages/faultlab\n"
        f'RUN ["/usr/local/bin/{_PY}", "-c", "import faultlab.lab.serve_target"]\n'
    )
    files: dict[str, bytes | Path] = {
        f"faultlab/{path.relative_to(root)}": path for path in _package_files()
    }
    return build_local(client, tag, dockerfile, files)


def _prune(client: Any, repo: str, keep: int) -> None:
    """Drop all but the newest ``keep`` tags of ``repo``; images in use stay (force=False)."""
    docker = _sdk()
    images = client.api.images(name=repo)
    images.sort(key=lambda i: i.get("Created", 0), reverse=True)
    for info in images[keep:]:
        for tag in info.get("RepoTags") or []:
            if tag.endswith(":latest"):
                continue
            try:
                client.api.remove_image(tag, force=False, noprune=False)
            except docker.errors.APIError:
                pass  # used by a container (maybe a parallel run's): keep it


def ensure_local_image(client: Any, *, log: bool = True, keep: int = 3) -> str:
    """Find or build the local faultlab image for this interpreter and source; return its tag.

    Each source change makes a new small app layer: only the newest ``keep`` are kept.
    """
    base = ensure_base_image(client, log=log)
    app = _build_app(client, base, log)
    client.images.get(app).tag(APP_REPO, "latest")
    _prune(client, APP_REPO, keep)
    _prune(client, BASE_REPO, keep)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m faultlab.lab.docker_image",
        description="Build (or find) the faultlab image without a registry; print its tag.",
    )
    parser.add_argument(
        "--base",
        action="store_true",
        help="only the base (this host's Python, no faultlab): a FROM for your own images",
    )
    args = parser.parse_args(argv)
    try:
        docker = _sdk()
    except ImportError:
        print("the docker SDK is missing: pip install 'faultlab[docker]'", file=sys.stderr)
        return 2
    try:
        client = docker.from_env()
        print(ensure_base_image(client, log=True) if args.base else ensure_local_image(client))
    except (ImageBuildError, docker.errors.DockerException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
