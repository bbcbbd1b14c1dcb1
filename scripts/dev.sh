#!/usr/bin/env bash
# make dev: the whole store on http://127.0.0.1:8080 (PORT/BIND override) with a
# project-local PostgreSQL in .dev/ (or DATABASE_URL if set), the seed's admin and demo
# products. Ctrl-C stops the server and the database this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
mkdir -p .dev

if [ -z "${DATABASE_URL:-}" ]; then
  ensure_postgres
  apt_install jq
  dir=.dev/pg
  if pg_running "$dir"; then
    port=$(cat "$dir/port")
    log "using the PostgreSQL already running in $dir (port $port)"
  else
    port=$(free_port 5433)
    log "starting PostgreSQL on 127.0.0.1:$port (data in $dir)"
    pg_start "$dir" "$port"
    trap 'log "stopping PostgreSQL"; pg_stop "$dir"' EXIT
  fi
  admin_url="postgres://postgres@127.0.0.1:$port/postgres"
  if [ -z "$("$PGBIN/psql" -Atqc "SELECT 1 FROM pg_database WHERE datname = 'gamestore'" "$admin_url")" ]; then
    "$PGBIN/psql" -qc "CREATE DATABASE gamestore" "$admin_url"
  fi
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/gamestore"
fi

# A random secret for this checkout only; outside dev, the process refuses to start without one.
if [ ! -s .dev/jwt_secret ]; then
  (umask 077 && head -c 48 /dev/urandom | base64 -w0 >.dev/jwt_secret)
fi
JWT_SECRET=$(cat .dev/jwt_secret)
export JWT_SECRET

log "building"
cargo build --quiet --bin gamestore
bin=${CARGO_TARGET_DIR:-target}/debug/gamestore

"$bin" migrate
"$bin" seed-admin --email admin@gamestore.com --password admin123
"$bin" seed-demo

api="http://${BIND:-127.0.0.1}:${PORT:-8080}/api/v1"
cat <<MSG

  The game store is starting on $api  (Ctrl-C stops it)

  curl -s $api/products
  curl -s -X POST $api/auth/register -H 'content-type: application/json' \\
       -d '{"email":"ann@example.com","password":"correct horse"}'
  TOKEN=\$(curl -s -X POST $api/auth/login -H 'content-type: application/json' \\
       -d '{"email":"ann@example.com","password":"correct horse"}' | jq -r .token)
  curl -s -X POST $api/orders -H "authorization: Bearer \$TOKEN" \\
       -H 'content-type: application/json' -d '{"product_id":1}'

  Admin: admin@gamestore.com / admin123 — the README walks through the rest.

MSG
"$bin" serve
