//! The migrate Lambda: CI invokes it after every deploy. It applies pending migrations and
//! creates the first admin from `ADMIN_SECRET_ARN` when no admin exists — the same code as
//! `gamestore migrate` ([`common::db::migrate_and_ensure_admin`]). Idempotent.
//!
//! Event: any JSON (ignored). Result: `{"applied_migrations": [...], "admin": "created" |
//! "present" | "skipped"}`; a failure is a function error, so `aws lambda invoke` reports
//! `FunctionError` and CI stops.

use common::config::{self, ProcessEnv};
use common::db::{self, SetupReport};
use lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

/// Everything runs per invocation, not at init: the secrets come through the Parameters
/// and Secrets extension, which serves only during INVOKE, and this function runs once
/// per deploy, so nothing is worth caching.
pub async fn handler(_event: LambdaEvent<Value>) -> Result<SetupReport, Error> {
    let pool = db::pool(&config::database_url().await?, 1)?;
    let result = run(&pool).await;
    pool.close();
    result.inspect_err(|err| tracing::error!(error = %err, "migrate failed"))
}

async fn run(pool: &deadpool_postgres::Pool) -> Result<SetupReport, Error> {
    let admin = config::admin_credentials(&ProcessEnv).await?;
    let report = db::migrate_and_ensure_admin(pool, admin).await?;
    tracing::info!(applied = ?report.applied_migrations, admin = report.admin, "database ready");
    Ok(report)
}
