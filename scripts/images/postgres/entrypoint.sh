#!/bin/sh
# Apply POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB when they differ from what the image (or an
# earlier start on this data directory) set up, then run the server as PID 1.
set -eu
if [ "${1:-}" = "postgres" ]; then
  wanted=$(printf '%s\n' "$POSTGRES_USER" "$POSTGRES_PASSWORD" "$POSTGRES_DB")
  if [ "$wanted" != "$(cat "$PGDATA/.fnplat-applied" 2>/dev/null || true)" ]; then
    fnplat-postgres-setup-role
  fi
  shift
  exec postgres -D "$PGDATA" "$@"
fi
exec "$@"
