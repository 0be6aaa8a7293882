#!/usr/bin/env bash
# Make sure a Docker engine answers. Uses the engine that is already there; installs and starts
# Debian's engine only when none answers and we are root on Debian/Ubuntu. Idempotent.
set -euo pipefail

log() { printf '[ensure-docker] %s\n' "$*" >&2; }

# Start dockerd in the background and wait (up to 30 s) until it answers. Also what the
# docker_restart tests call after stopping dockerd through its pid file.
start_dockerd() {
  log "starting dockerd in the background (log: /var/log/dockerd.log)"
  (
    # Only stdin, stdout and stderr: any other inherited descriptor (a lock file held by
    # whoever ran this script, say `flock docker.lock make test`) would be held by dockerd
    # and containerd for their whole life.
    for fd in /proc/$BASHPID/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done
    # setsid: the engine must outlive the shell that started it.
    exec setsid dockerd >>/var/log/dockerd.log 2>&1 < /dev/null
  ) &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 0
}

if docker info >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  log "no Docker engine answers and we are not root: start Docker yourself (or add your user to the docker group) and re-run."
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    log "no Docker engine and no apt-get: install Docker for your system and re-run."
    exit 1
  fi
  log "installing Debian's docker.io engine"
  apt-get update -q >/dev/null
  apt-get install -y -q docker.io >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  start_dockerd
fi

if ! docker info >/dev/null 2>&1; then
  log "dockerd did not answer within 30 s; see /var/log/dockerd.log"
  exit 1
fi
log "Docker engine is up: $(docker version --format '{{.Server.Version}}')"
