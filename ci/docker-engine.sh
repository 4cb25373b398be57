#!/usr/bin/env bash
# Starts a docker engine for the docker driver when none answers (DOCKER_HOST, else the local
# socket): our machines have the engine installed but not running, and no bridge or NAT may be
# set up, so it runs with host networking only (the driver's default mode). A running engine,
# local or remote, is left as it is. The engine is machine infrastructure, like a system service:
# it outlives the run; containers, networks and volumes of runs do not (interop targets clean).
set -euo pipefail
if docker version >/dev/null 2>&1; then
  echo "docker-engine: an engine answers at ${DOCKER_HOST:-the local socket}"
  exit 0
fi
if [ -n "${DOCKER_HOST:-}" ]; then
  echo "docker-engine: DOCKER_HOST=$DOCKER_HOST does not answer" >&2
  exit 1
fi
log=/var/log/interop-dockerd.log
echo "docker-engine: starting dockerd (log: $log)"
setsid nohup dockerd --bridge=none --iptables=false --ip-masq=false --ip6tables=false >"$log" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  if docker version >/dev/null 2>&1; then
    echo "docker-engine: up ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 0.5
done
echo "docker-engine: dockerd did not answer within 60 s; last lines of $log:" >&2
tail -n 20 "$log" >&2
exit 1
