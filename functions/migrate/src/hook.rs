//! The CodeDeploy side of the PreTraffic hook: recognising its event and reporting the
//! outcome with `PutLifecycleEventHookExecutionStatus`.

use aws_sdk_codedeploy::types::LifecycleEventStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What CodeDeploy invokes a lifecycle hook with.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HookEvent {
    pub deployment_id: String,
    pub lifecycle_event_hook_execution_id: String,
}

/// The outcome a hook reports; CodeDeploy shifts traffic only after `Succeeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HookStatus {
    Succeeded,
    Failed,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot report {status:?} for CodeDeploy deployment {deployment_id}: {reason}")]
pub struct ReportError {
    status: HookStatus,
    deployment_id: String,
    reason: String,
}

impl HookEvent {
    /// The hook event, when `payload` is one (both ids present and non-empty); any other
    /// event is a direct invocation.
    pub fn from_payload(payload: &Value) -> Option<Self> {
        let event = Self::deserialize(payload).ok()?;
        (!event.deployment_id.is_empty() && !event.lifecycle_event_hook_execution_id.is_empty()).then_some(event)
    }

    /// Tells CodeDeploy the hook's outcome. The client comes from the standard SDK
    /// configuration, so `AWS_ENDPOINT_URL_CODEDEPLOY` points it elsewhere in tests.
    pub async fn report(&self, status: HookStatus) -> Result<(), ReportError> {
        let client = aws_sdk_codedeploy::Client::new(&common::aws::sdk_config().await);
        let lifecycle_status = match status {
            HookStatus::Succeeded => LifecycleEventStatus::Succeeded,
            HookStatus::Failed => LifecycleEventStatus::Failed,
        };
        client
            .put_lifecycle_event_hook_execution_status()
            .deployment_id(&self.deployment_id)
            .lifecycle_event_hook_execution_id(&self.lifecycle_event_hook_execution_id)
            .status(lifecycle_status)
            .send()
            .await
            .map_err(|err| ReportError {
                status,
                deployment_id: self.deployment_id.clone(),
                reason: aws_sdk_codedeploy::error::DisplayErrorContext(err).to_string(),
            })?;
        tracing::info!(deployment_id = %self.deployment_id, ?status, "reported the hook's outcome to CodeDeploy");
        Ok(())
    }
}
