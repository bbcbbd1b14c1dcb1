//! The transactional outbox: messages written in the same transaction as the change that
//! causes them, published to the queue after commit, and republished by the sweeper until
//! their mail is settled (sent, or rejected for good): when the queue never acknowledged
//! them (a crash or a queue outage between commit and publish), and, after a longer grace,
//! when it did but the mail never went out (a queue that lost the message).
//!
//! A domain module above the store and the queue: it answers [`StoreError`], and knows
//! nothing of HTTP; the message itself lives in `crate::message`.

use std::time::Duration;

use crate::db::Executor;
use crate::db::Pool;
use serde::Serialize;

use crate::config::SweepConfig;
use crate::message::{OutboxMessage, WELCOME_EMAIL, WelcomeEmail};
use crate::metrics::{self, Metric};
use crate::queue::Publisher;
use crate::retention::{self, PurgeReport};
use crate::store::StoreError;
use crate::store::outbox as store;

/// Queues a welcome email for `to` in the caller's transaction.
pub async fn add_welcome_email(db: &impl Executor, to: &str) -> Result<OutboxMessage, StoreError> {
    let payload = serde_json::to_value(WelcomeEmail { to: to.to_owned() }).map_err(StoreError::unexpected)?;
    store::insert(db, WELCOME_EMAIL, &payload, metrics::correlation().as_ref()).await
}

/// How long publishing one message may take before it is left to the sweeper.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);

/// Publishes a committed message and records the queue's acknowledgement. Never fails: a
/// message that could not be published (or whose acknowledgement could not be recorded)
/// stays in the outbox, is logged, and the sweeper publishes it after its grace period.
pub async fn publish_committed(db: &Pool, publisher: &dyn Publisher, message: &OutboxMessage) -> bool {
    let published = match tokio::time::timeout(PUBLISH_TIMEOUT, publisher.publish(message)).await {
        Ok(Ok(())) => {
            metrics::observe_since(Metric::PublishLag, message.created_ms);
            true
        }
        Ok(Err(err)) => {
            tracing::warn!(message_id = message.id, error = %err, "publish failed; the outbox sweeper will retry");
            false
        }
        Err(_) => {
            tracing::warn!(message_id = message.id, "publish timed out; the outbox sweeper will retry");
            false
        }
    };
    if published {
        let recorded = match db.get().await {
            Ok(client) => store::mark_published(&**client, message.id).await,
            Err(err) => Err(err.into()),
        };
        if let Err(err) = recorded {
            // Published twice at worst: the worker deduplicates on the message id.
            tracing::warn!(message_id = message.id, error = %err, "cannot record the publish; the sweeper may publish it again");
        }
    }
    published
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    pub republished: u64,
    pub failed: u64,
    pub deleted: PurgeReport,
}

/// Most batches one sweep takes, so a sweep ends even while a queue outage keeps rows coming
/// back (they do not: each taken row waits `grace` again), and within a Lambda timeout.
const MAX_BATCHES_PER_SWEEP: usize = 50;

/// Republishes every message whose mail is due and not settled (see [`SweepConfig`]), then
/// deletes what is past retention.
pub async fn sweep(db: &Pool, publisher: &dyn Publisher, config: &SweepConfig) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    for _ in 0..MAX_BATCHES_PER_SWEEP {
        let messages =
            store::claim_due(&**db.get().await?, config.grace, config.redelivery_grace, config.batch).await?;
        for message in &messages {
            tracing::info!(message_id = message.id, kind = %message.kind, "republishing unsettled outbox message");
            if publish_committed(db, publisher, message).await {
                report.republished += 1;
            } else {
                report.failed += 1;
            }
        }
        if (messages.len() as i64) < config.batch {
            break;
        }
    }
    report.deleted = retention::purge(db, &config.retention).await?;
    Ok(report)
}

/// The sweeper as a periodic task (the local server's counterpart of the scheduled Lambda):
/// sweeps every `interval` until `shutdown` resolves.
pub async fn run_sweeper(
    db: Pool,
    publisher: std::sync::Arc<dyn Publisher>,
    config: SweepConfig,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        match sweep(&db, publisher.as_ref(), &config).await {
            Ok(report) if report != SweepReport::default() => {
                tracing::info!(?report, "outbox sweep");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "outbox sweep failed"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(config.interval) => {}
        }
    }
}
