#!/usr/bin/env bash
# make infra-lint / make infra-check: validate infra/template.yaml offline and build every
# function the way `sam deploy` ships it. Tools live in a project venv (.venv/, git-ignored),
# installed on first use.
#
#   scripts/infra.sh lint    cfn-lint + sam validate --lint + checkov policy scan (run by make test)
#   scripts/infra.sh check   lint, then sam build (arm64 release binaries via cargo-lambda)
#   scripts/infra.sh lambda  cargo lambda build --release --arm64 (make lambda-build)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

venv=.venv
template=infra/template.yaml
# Exact tool versions: a new release's new rules must not fail a build nobody changed.
# The deploy workflow installs the same SAM CLI and cargo-lambda versions.
SAM_CLI_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
# cargo-lambda: ensure_cargo_lambda (scripts/lib.sh; make dev-lambda and make test use it too).
CHECKOV_VERSION=3.3.30
# checkov pins its own boto3, cfn-lint and friends, which clash with the SAM CLI's: it gets
# a venv of its own.
checkov_venv=.venv-checkov
waivers=infra/checkov-waivers.yaml
# Offline validation still wants a region; any region works, none is contacted.
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-eu-west-1}
export SAM_CLI_TELEMETRY=0
# sam finds cargo-lambda, and cargo-lambda finds zig (ziglang wheel), on PATH.
export PATH="$PWD/$venv/bin:$PATH"

# ensure_tools PACKAGE...: pip-installs into the venv the packages whose command is missing.
ensure_tools() {
  local missing=()
  for tool in "$@"; do
    case $tool in
      aws-sam-cli) [ -x "$venv/bin/sam" ] || missing+=("aws-sam-cli==$SAM_CLI_VERSION") ;;
      cfn-lint) [ -x "$venv/bin/cfn-lint" ] || missing+=("cfn-lint==$CFN_LINT_VERSION") ;;
      *) die "ensure_tools: unknown tool $tool" ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  ensure_venv
  log "installing ${missing[*]} into $venv"
  venv_install "${missing[@]}"
}

ensure_checkov() {
  # The pinned version, not whatever an older checkout installed.
  compgen -G "$checkov_venv/lib/python3*/site-packages/checkov-$CHECKOV_VERSION.dist-info" >/dev/null && return 0
  log "installing checkov $CHECKOV_VERSION into $checkov_venv"
  ensure_venv "$checkov_venv"
  "$checkov_venv/bin/pip" install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION" >/dev/null \
    || die "pip install checkov==$CHECKOV_VERSION failed"
}

# Policy as code: checkov's CloudFormation checks (offline: no guideline download, no
# platform upload); every finding must be fixed or waived with a reason in $waivers.
policy_scan() {
  ensure_checkov
  log "checkov $template (waivers: $waivers)"
  local report
  report=$(mktemp)
  # checkov exits non-zero on any failed check; the gate below decides.
  BC_SKIP_MAPPING=TRUE "$checkov_venv/bin/checkov" --file "$template" --framework cloudformation --skip-download \
    --output json --quiet --compact >"$report" 2>/dev/null || true
  "$checkov_venv/bin/python" scripts/policy_gate.py "$report" "$waivers" || { rm -f "$report"; die "policy scan failed"; }
  rm -f "$report"
}

lint() {
  ensure_tools cfn-lint aws-sam-cli
  log "cfn-lint $template"
  cfn-lint "$template"
  log "sam validate --lint"
  sam validate --lint --template-file "$template" >/dev/null
  policy_scan
}

# The Lambda binaries' toolchain: cargo-lambda and Rust's arm64 target.
ensure_lambda_toolchain() {
  ensure_cargo_lambda
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
}

build() {
  ensure_tools aws-sam-cli
  ensure_lambda_toolchain
  local start=$SECONDS
  # Every function resource of the template (server/tests/infra_drift.rs keeps them in step
  # with functions/).
  log "sam build ($(grep -c 'BuildMethod: rust-cargolambda' "$template") functions)"
  sam build --template-file "$template" --build-dir .aws-sam/build
  log "sam build done in $((SECONDS - start)) s"
}

# Every function as a Lambda binary, without SAM: target/lambda/<function>/bootstrap.
lambda_build() {
  ensure_lambda_toolchain
  cargo lambda build --release --arm64
}

case ${1:-check} in
  lint) lint ;;
  lambda) lambda_build ;;
  build) build ;;
  check) lint; build ;;
  *) die "usage: $0 lint|build|check|lambda" ;;
esac
