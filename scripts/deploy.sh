#!/usr/bin/env bash
# Build, deploy and smoke-test one environment of infra/samconfig.toml, with the caller's
# AWS credentials. The deploy workflow runs exactly this; so can a person.
#
#   scripts/deploy.sh dev|prod
#
# Environment: AWS_REGION (required), MAIL_FROM (required unless samconfig.toml sets
# MailFrom: the SES-verified sender of the welcome mails), STACK_NAME (default: the config
# env's stack_name), ADMIN_EMAIL, ALARM_EMAIL, SECRETS_EXTENSION_LAYER_ARN (needed in a
# region the template's layer mapping lacks), PERMISSIONS_BOUNDARY_ARN (the boundary the
# deploy role must put on the roles it creates; README "Least privilege") (optional
# template parameters),
# CONFIRM=1 to review the change set before it runs.
#
# The migrations run inside the deploy: CodeDeploy invokes the migrate function as the
# PreTraffic hook of every function's deployment, before any traffic reaches new code
# (README "Rollout and rollback"). This script invokes it once more afterwards, for the two
# deploys that run no hook: the stack's creation, and a change to the migrations alone.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
config_env=${1:?usage: $0 dev|prod}
: "${AWS_REGION:?set AWS_REGION}"
export SAM_CLI_TELEMETRY=0
[ -d .venv/bin ] && export PATH="$PWD/.venv/bin:$PATH"

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
[ -n "${SECRETS_EXTENSION_LAYER_ARN:-}" ] && overrides+=("SecretsExtensionLayerArn=$SECRETS_EXTENSION_LAYER_ARN")
[ -n "${PERMISSIONS_BOUNDARY_ARN:-}" ] && overrides+=("RolePermissionsBoundary=$PERMISSIONS_BOUNDARY_ARN")
# The template has no default sender on purpose; fail before the long build, not after it.
printf '%s\n' "${overrides[@]}" | grep -q '^MailFrom=.' \
  || die "MAIL_FROM is not set: the welcome mails need an SES-verified sender in $AWS_REGION"

stack_exists() {
  aws cloudformation describe-stacks --stack-name "$stack" --region "$AWS_REGION" >/dev/null 2>&1
}
output() {
  aws cloudformation describe-stacks --stack-name "$stack" --region "$AWS_REGION" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

log "sam build ($config_env)"
(cd infra && sam build --config-env "$config_env")

stack_exists && created=0 || created=1
log "sam deploy $stack to $AWS_REGION (migrations run as the PreTraffic hook)"
confirm=--no-confirm-changeset
[ "${CONFIRM:-0}" = 1 ] && confirm=--confirm-changeset
(cd infra && sam deploy --config-env "$config_env" --stack-name "$stack" --region "$AWS_REGION" \
  "$confirm" --no-fail-on-empty-changeset --parameter-overrides "${overrides[@]}")

api_url=$(output ApiUrl)
migrate=$(output MigrateFunctionName)
admin_secret=$(output AdminSecretArn)

# Idempotent: after a deploy whose hooks ran, it finds nothing to apply.
log "migrate ($migrate)$([ "$created" = 1 ] && echo ': first deploy, no hook ran')"
result=$(mktemp)
meta=$(aws lambda invoke --function-name "$migrate" --region "$AWS_REGION" \
  --cli-binary-format raw-in-base64-out --payload '{}' --cli-read-timeout 330 "$result")
cat "$result" >&2; echo >&2
# A handler error still exits 0 from the CLI; FunctionError in the metadata says it failed.
if jq -e 'has("FunctionError")' <<<"$meta" >/dev/null; then
  die "migrate failed"
fi

# Orders only outside prod: an order there would sell a real product, or need an
# orderable 1-cent smoke product in the prod catalogue (and there is no order cancel to
# undo either). Prod gets the read and auth checks.
log "smoke test $api_url"
if [ "$config_env" = prod ]; then
  scripts/smoke.sh "$api_url"
else
  scripts/smoke.sh "$api_url" "$admin_secret"
fi
log "deployed: $api_url"
