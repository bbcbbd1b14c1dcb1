//! Windowed counters, one per subject, shared by every process through Postgres (the table
//! and the `rate_limit_hit` function, migrations/functions/rate_limit_hit.sql). What is counted, and with which
//! limits, is the business of the `throttle` module.

use std::time::Duration;

use crate::db::Executor;
use tokio_postgres::types::Type;

use super::StoreError;

/// One subject's counter and its limit.
#[derive(Debug)]
pub struct Counter {
    pub subject: String,
    /// Hits counted in one window before the subject is refused (or slowed, see `backoff`).
    pub limit: i32,
    pub window: Duration,
    /// `None`: past the limit, refused until the window ends. `Some`: one more hit per
    /// delay instead, the delay doubling with each hit.
    pub backoff: Option<Backoff>,
}

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

/// Counts one hit on every counter, atomically, or on none: when any of them is past its
/// limit nothing is counted and the answer is how long to wait.
pub async fn hit(db: &impl Executor, counters: &[&Counter]) -> Result<Option<Duration>, StoreError> {
    const SQL: &str = "SELECT rate_limit_hit($1, $2, $3, $4, $5)";
    let subjects: Vec<&str> = counters.iter().map(|c| c.subject.as_str()).collect();
    let limits: Vec<i32> = counters.iter().map(|c| c.limit).collect();
    let windows: Vec<f64> = counters.iter().map(|c| c.window.as_secs_f64()).collect();
    let delays: Vec<Option<f64>> = counters.iter().map(|c| c.backoff.map(|b| b.first.as_secs_f64())).collect();
    let max_delays: Vec<Option<f64>> = counters.iter().map(|c| c.backoff.map(|b| b.max.as_secs_f64())).collect();
    let rows = db
        .query_typed(
            SQL,
            &[
                (&subjects, Type::TEXT_ARRAY),
                (&limits, Type::INT4_ARRAY),
                (&windows, Type::FLOAT8_ARRAY),
                (&delays, Type::FLOAT8_ARRAY),
                (&max_delays, Type::FLOAT8_ARRAY),
            ],
        )
        .await?;
    let wait: Option<f64> = super::single(&rows, |row| Ok(row.try_get(0)?))?;
    // Whole seconds, rounded up: a client that waits `Retry-After` is not refused again.
    Ok(wait.map(|seconds| Duration::from_secs(seconds.ceil().max(1.0) as u64)))
}

/// After a success: `cleared` starts again from zero, and the hits it held (the success
/// and the failures before it) are taken back from the `wider` counters too.
pub async fn forgive(db: &impl Executor, cleared: &Counter, wider: &[&Counter]) -> Result<(), StoreError> {
    // Rows are locked in subject order, as `rate_limit_hit` locks them, so the two cannot
    // deadlock; FOR UPDATE reads the newest count, not the statement's snapshot.
    const SQL: &str = "\
        WITH locked AS ( \
            SELECT subject, hits FROM rate_limits \
             WHERE (subject = $1 OR subject = ANY ($2)) AND expires_at > now() ORDER BY subject FOR UPDATE) \
        UPDATE rate_limits r SET hits = CASE WHEN r.subject = $1 THEN 0 ELSE \
                greatest(r.hits - coalesce((SELECT hits FROM locked WHERE subject = $1), 1), 0) END \
          FROM locked l WHERE r.subject = l.subject";
    let wider: Vec<&str> = wider.iter().map(|c| c.subject.as_str()).collect();
    db.execute_typed(SQL, &[(&cleared.subject.as_str(), Type::TEXT), (&wider, Type::TEXT_ARRAY)]).await?;
    Ok(())
}

/// Deletes the counters whose window has ended and returns how many. Rows a hit is using
/// right now are skipped (the hit restarts their window), so this never waits on a login.
pub async fn delete_expired(db: &impl Executor, limit: i64) -> Result<u64, StoreError> {
    const SQL: &str = "\
        DELETE FROM rate_limits WHERE subject IN \
            (SELECT subject FROM rate_limits WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)";
    Ok(db.execute_typed(SQL, &[(&limit, Type::INT8)]).await?)
}
