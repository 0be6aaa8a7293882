#!/usr/bin/env bash
# mypy --strict over the fnplat package. The package is assembled from several top-level folders
# (pyproject's package-dir), which mypy cannot follow through the editable-install import hook,
# so we check a shadow tree of symlinks laid out as the installed package is.
set -euo pipefail
cd "$(dirname "$0")/.."
shadow=build/typecheck
rm -rf "$shadow"; mkdir -p "$shadow/fnplat"
for entry in platform/fnplat/*; do
  ln -s "$PWD/$entry" "$shadow/fnplat/$(basename "$entry")"
done
ln -s "$PWD/controller" "$shadow/fnplat/controller"
ln -s "$PWD/gateway" "$shadow/fnplat/gateway"
ln -s "$PWD/migrations" "$shadow/fnplat/migrations"
cd "$shadow" && exec ../../.venv/bin/mypy --config-file ../../pyproject.toml -p fnplat "$@"
