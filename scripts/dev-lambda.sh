#!/usr/bin/env bash
# make dev-lambda: the real function binaries under `cargo lambda watch` on 127.0.0.1:9000,
# wired to LocalStack (SQS, SES, Secrets Manager) and the project-local PostgreSQL of
# `make dev`. The email worker polls the LocalStack queue (`gamestore worker`, the same
# handler the SQS-triggered Lambda runs) and sends through LocalStack's SES. Ctrl-C stops
# what this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
mkdir -p .dev
stops=()
stop_services() { local s; for s in "${stops[@]}"; do eval "$s"; done; }
trap stop_services EXIT

command -v curl >/dev/null 2>&1 || apt_install curl
dev_database

# LocalStack on 127.0.0.1:4566 (the next free port if 4566 is taken).
lsdir=.dev/localstack
if [ -f "$lsdir/pid" ] && kill -0 "$(cat "$lsdir/pid")" 2>/dev/null; then
  lsport=$(cat "$lsdir/port")
else
  lsport=$(free_port "${LOCALSTACK_PORT:-4566}")
  GAMESTORE_DATABASE_URL=$DATABASE_URL localstack_start "$lsdir" "$lsport"
  stops+=('log "stopping LocalStack"; localstack_stop .dev/localstack')
fi
endpoint="http://127.0.0.1:$lsport"

# cargo-lambda from PyPI, in the project's .venv.
if ! cargo lambda -V >/dev/null 2>&1; then
  if [ ! -x .venv/bin/cargo-lambda ]; then
    log "installing cargo-lambda into .venv"
    ensure_venv && venv_install cargo-lambda
  fi
  export PATH="$PWD/.venv/bin:$PATH"
fi

# What the functions read: AWS endpoint and credentials of LocalStack, the queue, SES as the
# mailer, and the JWT secret as stored in LocalStack's Secrets Manager by the init hook.
export AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export QUEUE_URL="$endpoint/queue/us-east-1/000000000000/gamestore-welcome-emails"
export MAILER=ses MAIL_FROM=welcome@gamestore.example
JWT_SECRET=$(.venv-localstack/bin/python - "$endpoint" <<'PY'
import sys, boto3
sm = boto3.client("secretsmanager", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
print(sm.get_secret_value(SecretId="gamestore/jwt-secret")["SecretString"])
PY
)
export JWT_SECRET

dev_build_and_seed

log "email worker polling $QUEUE_URL (log in .dev/worker.log)"
"$bin" worker >.dev/worker.log 2>&1 &
worker_pid=$!
stops+=("kill $worker_pid 2>/dev/null || true")

envs=()
for name in DATABASE_URL JWT_SECRET AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION \
  QUEUE_URL MAILER MAIL_FROM; do
  envs+=(--env-var "$name=${!name}")
done

cat <<MSG

  Functions on http://127.0.0.1:9000/lambda-url/<function>/...  (Ctrl-C stops everything)

  curl -s -X POST http://127.0.0.1:9000/lambda-url/register/api/v1/auth/register \\
       -H 'content-type: application/json' -d '{"email":"ann@example.com","password":"correct horse"}'
  curl -s $endpoint/_aws/ses | jq '.messages[] | {Destination, Subject}'   # the welcome mail
  cargo lambda invoke outbox-sweeper --invoke-address 127.0.0.1 --invoke-port 9000 \\
       --data-file events/outbox-sweeper.json

MSG
cargo lambda watch -A 127.0.0.1 -P 9000 "${envs[@]}"
