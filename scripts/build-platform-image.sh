#!/usr/bin/env bash
# Build the platform's own image, fnplat/platform:latest (Dockerfile at the repository root), offline.
#
# pip inside `docker build` cannot reach PyPI here, so fnplat and all its runtime dependencies
# (exact pins from pyproject.toml) are built as wheels on the host into build/platform-wheels/,
# the only thing .dockerignore lets into the build context; the Dockerfile installs them with
# `pip install --no-index`. The wheel of fnplat is built from a clean copy of the package sources,
# so stale build/ output of an in-tree build can never leak deleted modules into the image.
#
# Idempotent and fast when nothing changed: the image carries a label fnplat.inputs-sha256 (package
# sources, pyproject.toml, Dockerfile, .dockerignore, this script, base image id) and is skipped,
# wheels included, when the label matches.
#
# usage: scripts/build-platform-image.sh      env: FNPLAT_PLATFORM_IMAGE (tag), PYTHON (host python)
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${FNPLAT_PLATFORM_IMAGE:-fnplat/platform:latest}
BASE_TAG="fnplat/debian:bookworm"
PYTHON=${PYTHON:-.venv/bin/python}
WHEELS=build/platform-wheels
# What the fnplat wheel is built from (pyproject.toml's package-dir). README.md only feeds the
# wheel's long description, so it is copied but not hashed: editing it does not rebuild the image.
PACKAGE_SOURCES=(pyproject.toml platform/fnplat controller gateway migrations)

log() { printf '[build-platform-image] %s\n' "$*" >&2; }

inputs_label() { docker image inspect --format '{{ index .Config.Labels "fnplat.inputs-sha256" }}' "$1" 2>/dev/null || true; }

hash_dir() {  # sha256 over the relative paths, modes and contents of a directory
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; \
   find . -type f -printf '%p %m\n' | LC_ALL=C sort) | sha256sum | cut -d' ' -f1
}

command -v "$PYTHON" >/dev/null || { log "no $PYTHON: run scripts/install.sh first (or set PYTHON to a python with pip)"; exit 1; }

mkdir -p build
exec 9>build/.platform-image.lock
flock 9  # two builds at once would empty each other's wheel directory

scripts/build-images.sh base  # starts the engine if needed; the image is built FROM this base

stage=$(mktemp -d)
trap 'rm -rf "$stage" "$stage.log"' EXIT
# A clean copy of the sources without caches (bytecode, editable-install metadata, build output).
tar --create --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' "${PACKAGE_SOURCES[@]}" \
  | tar --extract --directory "$stage"
base_id=$(docker image inspect --format '{{.Id}}' "$BASE_TAG")
want=$( (hash_dir "$stage"; echo "$base_id"
         sha256sum Dockerfile .dockerignore scripts/build-platform-image.sh | cut -d' ' -f1) \
       | sha256sum | cut -d' ' -f1)
if [ "$(inputs_label "$TAG")" = "$want" ]; then
  log "$TAG up to date"
  exit 0
fi

started=$(date +%s)
cp README.md "$stage/"
log "building wheels of fnplat and its runtime dependencies into $WHEELS"
rm -rf "$WHEELS"
# Output goes to a log shown only on failure: setuptools and pip warnings would drown the result.
"$PYTHON" -m pip wheel --wheel-dir "$WHEELS" "$stage" >"$stage.log" 2>&1 \
  || { cat "$stage.log" >&2; log "pip wheel failed"; exit 1; }
version=$("$PYTHON" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' pyproject.toml)

log "building $TAG"
docker build --label "fnplat.inputs-sha256=$want" --build-arg "FNPLAT_VERSION=$version" \
  -t "$TAG" . >"$stage.log" 2>&1 || { cat "$stage.log" >&2; log "docker build failed"; exit 1; }
# The build stage (wheels and all) stays behind as an untagged image with the classic builder.
docker image prune --force --filter label=fnplat.stage=platform-build >/dev/null
size=$(docker image inspect --format '{{.Size}}' "$TAG")
log "built $TAG ($((size / 1000000)) MB) in $(($(date +%s) - started)) s"
