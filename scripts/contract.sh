#!/usr/bin/env bash
# The contract test: schemathesis generates requests from functions/openapi/openapi.json
# and runs every check (schemathesis's default: no 5xx, every status, content type, header and body
# as documented, schema-violating requests refused, schema-valid ones accepted, ...; use_after_free
# is off for GET and PATCH of a product only, scripts/contract.toml says why) in
# every phase, the stateful one included (it follows the document's links: register ->
# login -> order, product -> get/order). Two runs: a fixed seed, so a change that breaks
# the contract fails at once, and a seed that changes every day, so new inputs are tried
# over time; each prints its seed, and CONTRACT_SEED=<seed> reruns just that one.
# Needs TEST_DATABASE_URL (a role with CREATEDB); run by make test. CONTRACT_EXAMPLES
# overrides the cases per operation of scripts/contract.toml (the Lambda stack run: fewer).
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
on_exit '"$PGBIN/psql" -qc "DROP DATABASE IF EXISTS $db" "$TEST_DATABASE_URL"'
export DATABASE_URL="$admin_url/$db"
JWT_SECRET=$(head -c 48 /dev/urandom | base64 -w0)
export JWT_SECRET RUST_LOG=${RUST_LOG:-warn}
# Every request comes from 127.0.0.1, and the stateful phase registers and signs in
# hundreds of times: with the production limits (10 registrations an hour per network, 5
# attempts per account and network) most of its chains would end in 429 after a few steps
# and test nothing further. The limits themselves are tested in server/tests/api.
export REGISTER_MAX_PER_NETWORK=1000000 LOGIN_MAX_FAILURES_PER_PAIR=1000000 \
  LOGIN_MAX_FAILURES_PER_NETWORK=1000000 LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY=1000000

dev_build_and_seed

port=$(free_port 18080)
"$bin" serve --port "$port" &
server=$!
on_exit "kill $server 2>/dev/null; wait $server 2>/dev/null"
wait_for_port "$port" "$server"
api="http://127.0.0.1:$port/api/v1"
fi
token=$(curl -fs -X POST "$api/auth/login" -H 'content-type: application/json' \
  -d '{"email":"admin@gamestore.com","password":"admin123"}' | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || die "could not sign in as the seed admin"

# One worker: with several, Python 3.11 before 3.11.8 can fail inside hypothesis with
# "AST constructor recursion depth mismatch" (CPython gh-106905), an error of the tool.
contract_run() {
  log "schemathesis against $api/openapi.json, seed $1 (rerun: CONTRACT_SEED=$1 scripts/contract.sh)"
  .venv/bin/st --config-file scripts/contract.toml run "$api/openapi.json" \
    --phases examples,coverage,fuzzing,stateful \
    --header "Authorization: Bearer $token" \
    ${CONTRACT_EXAMPLES:+--max-examples "$CONTRACT_EXAMPLES"} \
    --seed "$1" --generation-database none --workers 1 --no-color
}

if [ -n "${CONTRACT_SEED:-}" ]; then
  contract_run "$CONTRACT_SEED"
else
  failed=0
  contract_run 20261125 || failed=1
  contract_run "$(date -u +%Y%m%d)" || failed=1
  [ "$failed" = 0 ]
fi
