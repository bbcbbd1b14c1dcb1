#!/usr/bin/env bash
# make dev-lambda: the store as AWS runs it, on one base URL (http://127.0.0.1:9000, or
# LAMBDA_API_PORT). devgw reads infra/template.yaml and routes each request to the function
# binary the template names (running under `cargo lambda watch`), feeds the email worker
# SQS batches from LocalStack's queue, invokes the outbox sweeper on its schedule
# (DEVGW_SCHEDULE_SECONDS for a shorter period), and serves the Secrets extension the
# functions read their secrets through, backed by LocalStack's Secrets Manager. PostgreSQL
# and LocalStack are started when not running. Ctrl-C stops what this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
mkdir -p .dev

command -v curl >/dev/null 2>&1 || apt_install curl
dev_database

# LocalStack on 127.0.0.1:4566 (the next free port if 4566 is taken).
dev_service localstack .dev/localstack "${LOCALSTACK_PORT:-4566}"
endpoint="http://127.0.0.1:$service_port"
queues="$endpoint/queue/us-east-1/000000000000"

dev_build_and_seed

api_port=${LAMBDA_API_PORT:-9000}
port_free "$api_port" || die "port $api_port is taken (set LAMBDA_API_PORT)"
log "starting cargo lambda watch and devgw (logs in .dev/lambda/)"
on_exit 'log "stopping devgw and cargo lambda watch"; lambda_stack_stop .dev/lambda'
lambda_stack_start .dev/lambda "$api_port" "$endpoint" \
  "$queues/gamestore-welcome-emails" "$queues/gamestore-welcome-emails-dlq"

cat <<MSG

  The API on http://127.0.0.1:$api_port/api/v1/...  (Ctrl-C stops everything)
  The first request to each function compiles it (seconds with a warm target/, ~30 s cold).

  api=http://127.0.0.1:$api_port/api/v1
  curl -s -X POST \$api/auth/register -H 'content-type: application/json' \\
       -d '{"email":"ann@example.com","password":"correct horse"}'
  curl -s $endpoint/_aws/ses | jq '.messages[] | {Destination, Subject}'   # the welcome mail

MSG
tail -n +1 -f .dev/lambda/devgw.log .dev/lambda/watch.log &
on_exit "kill $! 2>/dev/null"
wait "$(cat .dev/lambda/devgw.pid)"
