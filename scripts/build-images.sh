#!/usr/bin/env bash
# Build every image fnplat needs, offline (no registry): a Debian base root filesystem made
# with mmdebstrap from Debian packages, then each build context listed below FROM that base.
# Idempotent and fast when nothing changed: each image carries a label with the sha256 of its
# inputs (build context + base image id) and is skipped when the label matches.
#
# usage: scripts/build-images.sh [NAME...]     (default: all; names: base and the contexts below)
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_TAG="fnplat/debian:bookworm"
BASE_RECIPE="minbase-v1"  # bump when build_base changes
# tag <TAB> build context
CONTEXTS=$(cat <<'LIST'
fnplat/runtime-python3.11:latest	runtimes/python3.11
fnplat/runtime-nodejs18.x:latest	runtimes/nodejs18.x
fnplat/runtime-provided:latest	runtimes/provided
fnplat/postgres:15	scripts/images/postgres
LIST
)

log() { printf '[build-images] %s\n' "$*" >&2; }

inputs_label() { docker image inspect --format '{{ index .Config.Labels "fnplat.inputs-sha256" }}' "$1" 2>/dev/null || true; }

hash_dir() {  # sha256 over the relative paths, modes and contents of a directory
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum; \
   find . -type f -printf '%p %m\n' | LC_ALL=C sort) | sha256sum | cut -d' ' -f1
}

build_base() {
  local want; want=$( (echo "$BASE_RECIPE"; cat scripts/images/base/packages.txt) | sha256sum | cut -d' ' -f1)
  if [ "$(inputs_label "$BASE_TAG")" = "$want" ]; then log "base image up to date"; return; fi
  command -v mmdebstrap >/dev/null || { log "installing mmdebstrap"; apt-get update -q >/dev/null; apt-get install -y -q mmdebstrap >/dev/null; }
  local tmp; tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  log "building $BASE_TAG with mmdebstrap (about 30 s)"
  mmdebstrap --quiet --variant=minbase --include="$(paste -sd, scripts/images/base/packages.txt)" \
    --aptopt='APT::Install-Recommends "false"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    bookworm "$tmp/rootfs.tar" http://deb.debian.org/debian
  docker import --change "LABEL fnplat.inputs-sha256=$want" --change 'CMD ["/bin/bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tmp/rootfs.tar" "$BASE_TAG" >/dev/null
  # Standard Dockerfiles (FROM debian:bookworm-slim) then build offline against our base.
  docker tag "$BASE_TAG" debian:bookworm-slim
  docker tag "$BASE_TAG" debian:bookworm
}

build_context() {
  local tag=$1 dir=$2
  local base_id; base_id=$(docker image inspect --format '{{.Id}}' "$BASE_TAG")
  local want; want=$(printf '%s %s' "$(hash_dir "$dir")" "$base_id" | sha256sum | cut -d' ' -f1)
  if [ "$(inputs_label "$tag")" = "$want" ]; then log "$tag up to date"; return; fi
  log "building $tag from $dir"
  docker build --quiet --label "fnplat.inputs-sha256=$want" -t "$tag" "$dir" >/dev/null
}

wanted=("$@")
want() { [ ${#wanted[@]} -eq 0 ] && return 0; local w; for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

scripts/ensure-docker.sh
build_base  # everything else is built FROM it
while IFS=$'\t' read -r tag dir; do
  [ -n "$tag" ] || continue
  name=${dir##*/}
  if want "$name" && [ -f "$dir/Dockerfile" ]; then build_context "$tag" "$dir"; fi
done <<< "$CONTEXTS"
log "done"
