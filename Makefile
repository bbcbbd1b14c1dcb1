# The two commands a newcomer needs are `make dev` and `make test`; see README.md.
.PHONY: dev test lint fmt build lambda-build infra-lint infra-check localstack dev-lambda bench

dev: ## Run the whole store locally on http://127.0.0.1:8080
	@scripts/dev.sh

test: ## Lint and run every test against a throw-away PostgreSQL
	@scripts/test.sh

lint: ## What make test lints with: cargo fmt --check, clippy -D warnings, infra-lint
	@scripts/lint.sh

fmt:
	cargo fmt --all

lambda-build: ## Build every function for Lambda (arm64, provided.al2023)
	@scripts/infra.sh lambda

infra-lint: ## cfn-lint, sam validate --lint and the checkov policy scan of infra/template.yaml
	@scripts/infra.sh lint

infra-check: ## infra-lint, then sam build: every function as an arm64 Lambda binary
	@scripts/infra.sh check

localstack: ## LocalStack (SQS, SES, Secrets Manager) on 127.0.0.1:4566, no Docker; Ctrl-C stops it
	@localstack/run.sh foreground .dev/localstack $${LOCALSTACK_PORT:-4566}

dev-lambda: ## The API on 127.0.0.1:9000 through the Lambda binaries, routed by infra/template.yaml (devgw)
	@scripts/dev-lambda.sh

bench: ## API and Lambda binaries vs the peer baseline (pgbench), one fresh Postgres; ~12 min
	@scripts/bench.sh
