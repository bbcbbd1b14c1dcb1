//! Retention: what the store keeps only for a while, deleted by the outbox sweeper (the
//! scheduled Lambda in AWS, the periodic task locally) in bounded batches, so one sweep
//! stays short however much has piled up, and no table grows without bound.
//!
//! - Idempotency keys of orders and registrations, once expired (24 h): an expired key is
//!   a new request anyway, and the key ties an account to a client's retry.
//! - Settled outbox rows (mail sent, or rejected for good) and their delivery records, once
//!   older than the retention period: they hold the recipient's address. An unsettled row is
//!   never deleted; the sweeper keeps it until its mail is settled.
//! - Login and registration throttling counters past their window: an attacker's spray of
//!   subjects (emails, addresses) does not stay.
//!
//! Off the request path: it answers [`StoreError`].

use crate::db::Pool;
use serde::Serialize;

use crate::config::RetentionConfig;
use crate::store::{StoreError, orders, outbox, rate_limits, users};

/// Rows one sweep deleted, per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub idempotency_keys: u64,
    pub registration_keys: u64,
    pub outbox: u64,
    pub rate_limits: u64,
}

/// Most batches per table in one sweep: the rest waits for the next sweep.
const MAX_BATCHES: usize = 10;

/// Deletes what is past its time, each table in batches of `config.batch`.
pub async fn purge(db: &Pool, config: &RetentionConfig) -> Result<PurgeReport, StoreError> {
    let client = db.get().await?;
    let db = &**client;
    let limit = config.batch;
    Ok(PurgeReport {
        idempotency_keys: batched(limit, || orders::delete_expired_keys(db, limit)).await?,
        registration_keys: batched(limit, || users::delete_expired_registration_keys(db, limit)).await?,
        outbox: batched(limit, || outbox::delete_settled(db, config.period, limit)).await?,
        rate_limits: batched(limit, || rate_limits::delete_expired(db, limit)).await?,
    })
}

/// Runs `delete` (one batch of at most `limit` rows) until a batch comes back short or
/// [`MAX_BATCHES`] ran; returns the rows deleted.
async fn batched<F, Fut>(limit: i64, mut delete: F) -> Result<u64, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let mut total = 0;
    for _ in 0..MAX_BATCHES {
        let deleted = delete().await?;
        total += deleted;
        if deleted < u64::try_from(limit).unwrap_or(0) {
            break;
        }
    }
    Ok(total)
}
