#!/usr/bin/env bash
# make test: lint, then every test against a throw-away PostgreSQL started here and stopped
# at the end. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_postgres
ensure_nextest

scripts/lint.sh

# Durability off: this cluster lives for one test run.
fresh_service pg .test/pg 55432 "fsync = off" "synchronous_commit = off" "full_page_writes = off" "max_connections = 300"
export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$service_port/postgres"

# The welcome-email tests need Redis and LocalStack (SQS, SES): started here, stopped at exit.
fresh_service redis .test/redis 56379
export TEST_REDIS_URL="redis://127.0.0.1:$service_port"
fresh_service localstack .test/localstack 54566
export TEST_LOCALSTACK_URL="http://127.0.0.1:$service_port"

log "contract test (schemathesis against the OpenAPI document)"
contract=0
scripts/contract.sh || contract=$?

# The metric-line tests check EMF lines against infra/emf.schema.json with jsonschema.
ensure_venv
venv_install "jsonschema==4.26.0"

log "cargo nextest run"
cargo nextest run --workspace --no-fail-fast

# The deployed shape (make dev-lambda) on free ports: devgw routes, batches and schedules
# from infra/template.yaml into the function binaries under cargo lambda watch. Its own
# database and queues; a short visibility timeout, redrive count, schedule and outbox grace
# so that the dead-letter and sweeper checks take seconds.
ldir=.test/lambda
rm -rf "$ldir" # pid files of an interrupted run name processes long gone
on_exit 'lambda_stack_stop .test/lambda'
"$PGBIN/psql" -qc "CREATE DATABASE lambda_e2e" "$TEST_DATABASE_URL"
lambda_db="${TEST_DATABASE_URL%/*}/lambda_e2e"
DATABASE_URL=$lambda_db dev_build_and_seed
queues=$(.venv-localstack/bin/python - "$TEST_LOCALSTACK_URL" <<'PY'
import sys, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
print(sqs.create_queue(QueueName="lambda-e2e")["QueueUrl"], sqs.create_queue(QueueName="lambda-e2e-dlq")["QueueUrl"])
PY
)
read -r queue dlq <<<"$queues"
api_port=$(free_port 19000)
log "Lambda stack on 127.0.0.1:$api_port (logs in $ldir)"
# The contract run and the checks register and sign in many times from 127.0.0.1: the
# throttling limits are raised here as in scripts/contract.sh (they have their own tests).
limits="REGISTER_MAX_PER_NETWORK=1000000 LOGIN_MAX_FAILURES_PER_PAIR=1000000"
limits+=" LOGIN_MAX_FAILURES_PER_NETWORK=1000000 LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY=1000000"
# QUEUE_MAX_ATTEMPTS follows --max-receive-count, as the template's follows maxReceiveCount.
DATABASE_URL=$lambda_db LAMBDA_ENV="OUTBOX_GRACE_SECONDS=1 QUEUE_MAX_ATTEMPTS=3 $limits" lambda_stack_start "$ldir" "$api_port" \
  "$TEST_LOCALSTACK_URL" "$queue" "$dlq" --visibility-timeout 1 --max-receive-count 3 --schedule-seconds 2
log "warming the Lambda stack (the first request to each function compiles it)"
lambda_stack_warm "http://127.0.0.1:$api_port"
log "contract test against the Lambda stack"
lambda_contract=0
CONTRACT_EXAMPLES=${LAMBDA_CONTRACT_EXAMPLES:-10} scripts/contract.sh "http://127.0.0.1:$api_port/api/v1" \
  || lambda_contract=$?
log "end-to-end checks against the Lambda stack"
TEST_LAMBDA_API="http://127.0.0.1:$api_port" TEST_LAMBDA_DATABASE_URL=$lambda_db TEST_LAMBDA_QUEUE_URL=$queue \
  TEST_LAMBDA_DLQ_URL=$dlq TEST_LAMBDA_MAX_RECEIVES=3 cargo nextest run -p devgw --run-ignored only
[ "$lambda_contract" = 0 ] || die "the contract test against the Lambda stack failed (output above)"
[ "$contract" = 0 ] || die "the contract test failed (schemathesis output above)"
