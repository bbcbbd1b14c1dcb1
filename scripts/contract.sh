#!/usr/bin/env bash
# The contract test: schemathesis generates requests from functions/openapi/openapi.json
# and fails on any 5xx or any response (status, content type, headers, body) the document
# does not describe. Needs TEST_DATABASE_URL (a role with CREATEDB); run by make test.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
# scripts/contract.sh API_URL checks a running API instead (make test: the Lambda stack,
# seeded with the same admin); the server start below is then skipped (kept unindented).
api=${1:-}
ensure_venv
venv_install "schemathesis==4.32.5"

if [ -z "$api" ]; then
[ -n "${TEST_DATABASE_URL:-}" ] || die "TEST_DATABASE_URL is not set"
ensure_postgres

db="contract_$$"
admin_url=${TEST_DATABASE_URL%/*}
"$PGBIN/psql" -qc "CREATE DATABASE $db" "$TEST_DATABASE_URL"
export DATABASE_URL="$admin_url/$db"
JWT_SECRET=$(head -c 48 /dev/urandom | base64 -w0)
export JWT_SECRET RUST_LOG=${RUST_LOG:-warn}

cargo build --quiet --bin gamestore
bin=${CARGO_TARGET_DIR:-target}/debug/gamestore
"$bin" migrate
"$bin" seed-admin --email admin@gamestore.com --password admin123
"$bin" seed-demo

port=$(free_port 18080)
"$bin" serve --port "$port" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
api="http://127.0.0.1:$port/api/v1"
for _ in $(seq 100); do
  curl -fs "$api/openapi.json" >/dev/null 2>&1 && break
  sleep 0.1
done
fi
token=$(curl -fs -X POST "$api/auth/login" -H 'content-type: application/json' \
  -d '{"email":"admin@gamestore.com","password":"admin123"}' | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || die "could not sign in as the seed admin"

log "schemathesis against $api/openapi.json"
.venv/bin/st run "$api/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --header "Authorization: Bearer $token" \
  --max-examples "${CONTRACT_EXAMPLES:-40}" --seed 20261125 --generation-database none \
  --workers 2 --no-color
