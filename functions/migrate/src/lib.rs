//! The migrate Lambda: applies pending migrations and creates the first admin from
//! `ADMIN_SECRET_ARN` when no admin exists — the same code as `gamestore migrate`
//! ([`common::setup::migrate_and_ensure_admin`]). Idempotent.
//!
//! Two callers:
//! - CodeDeploy, as the PreTraffic hook of every function's deployment (the event carries
//!   `DeploymentId` and `LifecycleEventHookExecutionId`): it migrates, then reports
//!   `Succeeded` or `Failed` with `PutLifecycleEventHookExecutionStatus`, so no new version
//!   takes traffic before its schema exists and a failed migration rolls the deploy back.
//! - A person or `scripts/deploy.sh` with any other event (e.g. `{}`): the result is
//!   `{"applied_migrations": [...], "admin": "created" | "present" | "skipped"}`; a failure
//!   is a function error, so `aws lambda invoke` reports `FunctionError`.

mod hook;

use common::config::{self, ApplicationLogin, ProcessEnv};
use common::db;
use common::setup::{SetupReport, migrate_and_ensure_admin};
use lambda_runtime::{Error, LambdaEvent};
use serde::Serialize;
use serde_json::Value;

pub use hook::{HookEvent, HookStatus};

/// What an invocation answers.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    /// A direct invocation: what was done.
    Setup(SetupReport),
    /// A CodeDeploy hook: the status reported (the details are in the log).
    Hook { hook_status: HookStatus },
}

/// Everything runs per invocation, not at init: the secrets come through the Parameters
/// and Secrets extension, which serves only during INVOKE, and this function runs a few
/// times per deploy, so nothing is worth caching.
pub async fn handler(event: LambdaEvent<Value>) -> Result<Outcome, Error> {
    match HookEvent::from_payload(&event.payload) {
        Some(hook) => {
            // The outcome goes to CodeDeploy; the invocation fails only when reporting
            // does, so that Lambda's retry reports again.
            let status = match setup().await {
                Ok(_) => HookStatus::Succeeded,
                Err(_) => HookStatus::Failed,
            };
            hook.report(status).await?;
            Ok(Outcome::Hook { hook_status: status })
        }
        None => Ok(Outcome::Setup(setup().await?)),
    }
}

async fn setup() -> Result<SetupReport, Error> {
    let result = async {
        // The owner's credentials (DB_OWNER_SECRET_ARN); the application's (DB_SECRET_ARN)
        // only for the login this sets up.
        let target = config::migration_database(&ProcessEnv).await?;
        let owner = db::pool(&target.owner_url, 1)?;
        let result = run(&owner, target.application.as_ref()).await;
        owner.close();
        result
    }
    .await;
    result.inspect_err(|err| tracing::error!(error = %err, "migrate failed"))
}

async fn run(pool: &common::db::Pool, application: Option<&ApplicationLogin>) -> Result<SetupReport, Error> {
    let admin = config::admin_credentials(&ProcessEnv).await?;
    let report = migrate_and_ensure_admin(pool, application, admin).await?;
    tracing::info!(applied = ?report.applied_migrations, admin = report.admin, "database ready");
    Ok(report)
}
