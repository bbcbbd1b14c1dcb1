#!/usr/bin/env bash
# make infra-lint / make infra-check: validate infra/template.yaml offline and build every
# function the way `sam deploy` ships it. Tools live in a project venv (.venv/, git-ignored),
# installed on first use.
#
#   scripts/infra.sh lint    cfn-lint + sam validate --lint (run by make test)
#   scripts/infra.sh check   lint, then sam build (arm64 release binaries via cargo-lambda)
#   scripts/infra.sh lambda  cargo lambda build --release --arm64 (make lambda-build)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

venv=.venv
template=infra/template.yaml
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
      aws-sam-cli) [ -x "$venv/bin/sam" ] || missing+=("$tool") ;;
      *) [ -x "$venv/bin/$tool" ] || missing+=("$tool") ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  ensure_venv
  log "installing ${missing[*]} into $venv"
  venv_install "${missing[@]}"
}

lint() {
  ensure_tools cfn-lint aws-sam-cli
  log "cfn-lint $template"
  cfn-lint "$template"
  log "sam validate --lint"
  sam validate --lint --template-file "$template" >/dev/null
}

build() {
  ensure_tools aws-sam-cli cargo-lambda
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
  local start=$SECONDS
  # Every function resource of the template (server/tests/infra_drift.rs keeps them in step
  # with functions/).
  log "sam build ($(grep -c 'BuildMethod: rust-cargolambda' "$template") functions)"
  sam build --template-file "$template" --build-dir .aws-sam/build
  log "sam build done in $((SECONDS - start)) s"
}

# Every function as a Lambda binary, without SAM: target/lambda/<function>/bootstrap.
lambda_build() {
  ensure_tools cargo-lambda
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
  cargo lambda build --release --arm64
}

case ${1:-check} in
  lint) lint ;;
  lambda) lambda_build ;;
  build) build ;;
  check) lint; build ;;
  *) die "usage: $0 lint|build|check|lambda" ;;
esac
