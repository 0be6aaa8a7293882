#!/usr/bin/env bash
# Host tools the tests and benchmarks call: wrk (HTTP load for bench/). Installs Debian's package
# only when the tool is missing and we are root with apt-get; otherwise says what is missing.
# Idempotent and silent when everything is there.
set -euo pipefail

log() { printf '[ensure-tools] %s\n' "$*" >&2; }

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "missing: ${missing[*]} (needed by bench/ and its smoke test); install them and re-run."
  exit 1
fi
log "installing Debian's ${missing[*]}"
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -q "${missing[@]}" >/dev/null
