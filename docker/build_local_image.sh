#!/usr/bin/env bash
# Build the faultlab image without a registry, from this host's Python; print its tag.
#
# Layers: faultlab-local-base:<hash> (docker import of a root file system holding the running
# interpreter, its shared libraries and faultlab's runtime dependencies; built once) and
# faultlab-local:<hash> (+ the faultlab package; rebuilt in ~1 s when the source changes),
# also tagged faultlab-local:latest. Needs a running engine and the docker SDK.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
exec "$python" -m faultlab.lab.docker_image "$@"
