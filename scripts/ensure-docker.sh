#!/usr/bin/env bash
# Make sure a Docker engine answers. Uses the engine that is already there; installs and starts
# Debian's engine only when none answers and we are root on Debian/Ubuntu. Idempotent.
set -euo pipefail

log() { printf '[ensure-docker] %s\n' "$*" >&2; }

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
  log "starting dockerd in the background (log: /var/log/dockerd.log)"
  # setsid: the engine must outlive the shell that started it.
  setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
fi

if ! docker info >/dev/null 2>&1; then
  log "dockerd did not answer within 30 s; see /var/log/dockerd.log"
  exit 1
fi
log "Docker engine is up: $(docker version --format '{{.Server.Version}}')"
