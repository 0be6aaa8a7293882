#!/bin/sh
# Create (or update) the application role and database named by POSTGRES_USER / POSTGRES_PASSWORD
# / POSTGRES_DB, with the server listening on the Unix socket only, then record what was applied.
set -eu
pg_ctl -D "$PGDATA" -w -s -o "-c listen_addresses=''" start
psql -v ON_ERROR_STOP=1 -q -U postgres -d postgres \
     -v user="$POSTGRES_USER" -v password="$POSTGRES_PASSWORD" -v db="$POSTGRES_DB" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN CREATEDB PASSWORD %L', :'user', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \gexec
SQL
pg_ctl -D "$PGDATA" -w -s -m fast stop
printf '%s\n' "$POSTGRES_USER" "$POSTGRES_PASSWORD" "$POSTGRES_DB" > "$PGDATA/.fnplat-applied"
