#!/usr/bin/env bash
# make lint, and the lint step of make test: cargo fmt --check, clippy -D warnings, and the
# template checks (scripts/infra.sh lint: cfn-lint, sam validate --lint, checkov).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
scripts/infra.sh lint
