#!/usr/bin/env bash
# Install everything fnplat needs on this machine, idempotently:
#   1. a virtualenv in .venv with fnplat (editable) and its dev tools (skipped when pyproject.toml is unchanged)
#   2. a Docker engine (the one that answers, or Debian's, installed and started when we are root)
#   3. the base, runtime and Postgres images, built offline (skipped when their inputs are unchanged)
#   4. host tools the benchmarks use (wrk), from Debian when missing
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[install] %s\n' "$*" >&2; }

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.fnplat-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "installing fnplat and its dependencies into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  echo "$want" > "$stamp"
else
  log ".venv up to date"
fi

scripts/ensure-docker.sh
scripts/build-images.sh
scripts/ensure-tools.sh
log "ready: .venv/bin/fnctl up starts the platform"
