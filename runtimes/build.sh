#!/usr/bin/env bash
# Build the runtime images offline (Debian base from mmdebstrap, then each runtimes/<name>/Dockerfile).
# usage: runtimes/build.sh [python3.11 nodejs18.x provided]   (default: all three)
# Images are rebuilt only when their inputs change; see scripts/build-images.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then set -- python3.11 nodejs18.x provided; fi
exec scripts/build-images.sh "$@"
