#!/usr/bin/env bash
# make test: lint, then every test against a throw-away PostgreSQL started here and stopped
# at the end. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_postgres
ensure_nextest

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

dir=.test/pg
pg_stop "$dir" 2>/dev/null || true
rm -rf "$dir"
port=$(free_port 55432)
trap 'pg_stop "$dir"' EXIT
log "starting PostgreSQL on 127.0.0.1:$port"
# Durability off: this cluster lives for one test run.
pg_start "$dir" "$port" "fsync = off" "synchronous_commit = off" "full_page_writes = off" "max_connections = 300"
export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"

scripts/infra.sh lint

# The welcome-email tests need Redis and LocalStack (SQS, SES): started here, stopped at exit.
rdir=.test/redis lsdir=.test/localstack
redis_stop "$rdir" 2>/dev/null || true
localstack_stop "$lsdir" 2>/dev/null || true
rm -rf "$rdir" "$lsdir"
trap 'pg_stop "$dir"; redis_stop "$rdir"; localstack_stop "$lsdir"' EXIT
rport=$(free_port 56379)
log "starting Redis on 127.0.0.1:$rport"
redis_start "$rdir" "$rport"
export TEST_REDIS_URL="redis://127.0.0.1:$rport"
lsport=$(free_port 54566)
log "starting LocalStack on 127.0.0.1:$lsport"
localstack_start "$lsdir" "$lsport"
export TEST_LOCALSTACK_URL="http://127.0.0.1:$lsport"

log "contract test (schemathesis against the OpenAPI document)"
contract=0
scripts/contract.sh || contract=$?

log "cargo nextest run"
cargo nextest run --workspace --no-fail-fast
[ "$contract" = 0 ] || die "the contract test failed (schemathesis output above)"
