#!/usr/bin/env bash
# Build, deploy, migrate and smoke-test one environment of infra/samconfig.toml, with the
# caller's AWS credentials. The deploy workflow runs exactly this; so can a person.
#
#   scripts/deploy.sh dev|prod
#
# Environment: AWS_REGION (required), STACK_NAME (default: the config env's stack_name),
# ADMIN_EMAIL, MAIL_FROM, ALARM_EMAIL (optional template parameters), CONFIRM=1 to review
# the change set before it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
config_env=${1:?usage: $0 dev|prod}
: "${AWS_REGION:?set AWS_REGION}"
export SAM_CLI_TELEMETRY=0
[ -d .venv/bin ] && export PATH="$PWD/.venv/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# samconfig.toml's parameter_overrides for this environment, one per line: a
# --parameter-overrides on the command line replaces that list, so it is passed in full.
read_config() {
  python3 - "$config_env" "$1" <<'PY'
import sys, tomllib
env, key = sys.argv[1], sys.argv[2]
params = tomllib.load(open("infra/samconfig.toml", "rb"))[env]["deploy"]["parameters"]
value = params.get(key, "")
print("\n".join(value) if isinstance(value, list) else value)
PY
}

stack=${STACK_NAME:-$(read_config stack_name)}
mapfile -t overrides < <(read_config parameter_overrides)
[ -n "${ADMIN_EMAIL:-}" ] && overrides+=("AdminEmail=$ADMIN_EMAIL")
[ -n "${MAIL_FROM:-}" ] && overrides+=("MailFrom=$MAIL_FROM")
[ -n "${ALARM_EMAIL:-}" ] && overrides+=("AlarmEmail=$ALARM_EMAIL")

log "sam build ($config_env)"
(cd infra && sam build --config-env "$config_env")

log "sam deploy $stack to $AWS_REGION"
confirm=--no-confirm-changeset
[ "${CONFIRM:-0}" = 1 ] && confirm=--confirm-changeset
(cd infra && sam deploy --config-env "$config_env" --stack-name "$stack" --region "$AWS_REGION" \
  "$confirm" --no-fail-on-empty-changeset --parameter-overrides "${overrides[@]}")

output() {
  aws cloudformation describe-stacks --stack-name "$stack" --region "$AWS_REGION" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
api_url=$(output ApiUrl)
migrate=$(output MigrateFunctionName)
admin_secret=$(output AdminSecretArn)

log "migrate ($migrate)"
result=$(mktemp)
meta=$(aws lambda invoke --function-name "$migrate" --region "$AWS_REGION" \
  --cli-binary-format raw-in-base64-out --payload '{}' --cli-read-timeout 330 "$result")
cat "$result" >&2; echo >&2
# A handler error still exits 0 from the CLI; FunctionError in the metadata says it failed.
if jq -e 'has("FunctionError")' <<<"$meta" >/dev/null; then
  echo "migrate failed" >&2
  exit 1
fi

log "smoke test $api_url"
scripts/smoke.sh "$api_url" "$admin_secret"
log "deployed: $api_url"
