# The two commands a newcomer needs are `make dev` and `make test`; see README.md.
.PHONY: dev test lint fmt build lambda-build bench

dev: ## Run the whole store locally on http://127.0.0.1:8080
	@scripts/dev.sh

test: ## Lint and run every test against a throw-away PostgreSQL
	@scripts/test.sh

lint: ## cargo fmt --check and clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

lambda-build: ## Build every function for Lambda (arm64, provided.al2023)
	@scripts/lambda-build.sh

bench: ## API and Lambda binaries vs the peer baseline (pgbench), one fresh Postgres; ~12 min
	@scripts/bench.sh
