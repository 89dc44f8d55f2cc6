#!/usr/bin/env bash
# Make a Docker engine available for tests/docker (idempotent; never fails CI).
#
# Installs docker.io + iptables when dockerd is missing, starts dockerd in the background when
# no engine answers, and waits until `docker info` works. Anything it cannot do is printed and
# the script exits 0: the Docker tests then skip with a clear reason instead of failing.
set -uo pipefail

log=${FAULTLAB_DOCKERD_LOG:-/tmp/faultlab-dockerd.log}
say() { echo "docker.sh: $*"; }

engine_up() { timeout 10 docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_up; then
  say "a Docker engine is already running"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  say "not root: cannot install or start dockerd; Docker tests will skip"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v iptables >/dev/null 2>&1; then
  say "installing docker.io and iptables"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq >/dev/null &&
    apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null; }; then
    say "apt-get install docker.io iptables failed; Docker tests will skip"
    exit 0
  fi
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  rm -f /var/run/docker.pid  # left by a dockerd that died: a new one refuses to start over it
  say "starting dockerd (log: $log)"
  # setsid: dockerd outlives this script and CI's process group; stdin from /dev/null.
  setsid nohup dockerd --host=unix:///var/run/docker.sock >"$log" 2>&1 </dev/null &
fi

for _ in $(seq 1 60); do
  if engine_up; then
    say "Docker engine ready ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
  fi
  sleep 0.5
done
say "dockerd did not answer within 30 s; Docker tests will skip. Last log lines:"
tail -n 20 "$log" 2>/dev/null || true
exit 0
