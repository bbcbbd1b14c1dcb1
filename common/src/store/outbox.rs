//! The transactional outbox and the delivery record of sent mails.

use std::time::Duration;

use crate::db::Executor;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use super::StoreError;
use crate::message::OutboxMessage;
use crate::metrics::Correlation;

fn message(row: &Row) -> Result<OutboxMessage, StoreError> {
    let payload: String = row.try_get("payload")?;
    Ok(OutboxMessage {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        payload: serde_json::from_str(&payload).map_err(StoreError::unexpected)?,
        created_ms: row.try_get("created_ms")?,
        request_id: row.try_get("request_id")?,
        trace_id: row.try_get("trace_id")?,
    })
}

/// The columns [`message`] reads.
const MESSAGE: &str = "id, kind, payload::TEXT AS payload, \
    (extract(epoch FROM created_at) * 1000)::BIGINT AS created_ms, request_id, trace_id";

/// Adds a message to the outbox, in the caller's transaction, with the ids of the request
/// that causes it.
pub async fn insert(
    db: &impl Executor,
    kind: &str,
    payload: &serde_json::Value,
    caused_by: Option<&Correlation>,
) -> Result<OutboxMessage, StoreError> {
    let payload = payload.to_string();
    let (request_id, trace_id) = Correlation::ids(caused_by);
    let rows = db
        .query_typed(
            &format!(
                "INSERT INTO outbox (kind, payload, request_id, trace_id) VALUES ($1, $2::TEXT::JSONB, $3, $4) \
                 RETURNING {MESSAGE}"
            ),
            &[(&kind, Type::TEXT), (&payload, Type::TEXT), (&request_id, Type::TEXT), (&trace_id, Type::TEXT)],
        )
        .await?;
    super::single(&rows, message)
}

/// Records that the queue accepted message `id`.
pub async fn mark_published(db: &impl Executor, id: i64) -> Result<(), StoreError> {
    db.execute_typed(
        "UPDATE outbox SET published_at = now() WHERE id = $1 AND published_at IS NULL",
        &[(&id, Type::INT8)],
    )
    .await?;
    Ok(())
}

/// Takes up to `limit` messages whose mail is not settled (sent, or rejected for good) and
/// whose last publish is older than `grace` (never acknowledged by the queue) or than
/// `redelivery_grace` (acknowledged, then lost on the way or still unsent), and stamps them
/// as attempted now: a lease, so another sweeper running at the same time skips them
/// (`SKIP LOCKED`) and does not take them again before the grace has passed again.
pub async fn claim_due(
    db: &impl Executor,
    grace: Duration,
    redelivery_grace: Duration,
    limit: i64,
) -> Result<Vec<OutboxMessage>, StoreError> {
    let rows = db
        .query_typed(
            &format!(
                "UPDATE outbox o SET last_attempt_at = now(), attempts = o.attempts + 1 \
              WHERE o.id IN ( \
                    SELECT id FROM outbox \
                     WHERE settled_at IS NULL \
                       AND last_attempt_at < now() - make_interval(secs => $1::BIGINT / 1000.0) \
                       AND (published_at IS NULL \
                            OR last_attempt_at < now() - make_interval(secs => $2::BIGINT / 1000.0)) \
                     ORDER BY last_attempt_at \
                     LIMIT $3 \
                     FOR UPDATE SKIP LOCKED) \
             RETURNING {MESSAGE}"
            ),
            &[(&millis(grace), Type::INT8), (&millis(redelivery_grace), Type::INT8), (&limit, Type::INT8)],
        )
        .await?;
    rows.iter().map(message).collect()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What [`claim_delivery`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This worker holds the claim and sends the mail.
    Acquired,
    /// The mail was sent already: a redelivery, nothing to send.
    AlreadySent,
    /// The mail service refused the mail for good already: nothing to send.
    AlreadyRejected,
    /// Another worker claimed it less than a lease ago and may be sending it right now.
    Held,
    /// No outbox message has this id.
    UnknownMessage,
}

/// Claims the delivery of message `id` to `recipient`: inserts its delivery row, or takes
/// over a claim older than `lease` whose mail was never settled (its worker died). A
/// settled delivery also settles its outbox row, for rows the previous release settled
/// without marking the outbox (see migration V5).
pub async fn claim_delivery(
    db: &impl Executor,
    id: i64,
    recipient: &str,
    lease: Duration,
) -> Result<Claim, StoreError> {
    let claimed = db
        .query_typed(
            "INSERT INTO email_deliveries AS d (message_id, recipient) VALUES ($1, $2) \
             ON CONFLICT (message_id) DO UPDATE SET claimed_at = now(), attempts = d.attempts + 1 \
              WHERE d.sent_at IS NULL AND d.rejected_at IS NULL \
                AND d.claimed_at < now() - make_interval(secs => $3::BIGINT / 1000.0) \
             RETURNING d.attempts",
            &[(&id, Type::INT8), (&recipient, Type::TEXT), (&millis(lease), Type::INT8)],
        )
        .await;
    match claimed {
        Ok(rows) if !rows.is_empty() => return Ok(Claim::Acquired),
        Ok(_) => {}
        Err(err) if err.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => return Ok(Claim::UnknownMessage),
        Err(err) => return Err(err.into()),
    }
    let rows = db
        .query_typed(
            "WITH d AS (SELECT sent_at, rejected_at FROM email_deliveries WHERE message_id = $1), \
                  settled AS ( \
                    UPDATE outbox o SET settled_at = coalesce(d.sent_at, d.rejected_at) FROM d \
                     WHERE o.id = $1 AND o.settled_at IS NULL \
                       AND coalesce(d.sent_at, d.rejected_at) IS NOT NULL) \
             SELECT sent_at IS NOT NULL AS sent, rejected_at IS NOT NULL AS rejected FROM d",
            &[(&id, Type::INT8)],
        )
        .await?;
    let Some(row) = rows.first() else {
        // Gone between the two statements (its claim was released): try again later.
        return Ok(Claim::Held);
    };
    match (row.try_get::<_, bool>("sent")?, row.try_get::<_, bool>("rejected")?) {
        (true, _) => Ok(Claim::AlreadySent),
        (false, true) => Ok(Claim::AlreadyRejected),
        (false, false) => Ok(Claim::Held),
    }
}

/// Records that the mail of message `id` was sent, which settles its outbox row.
pub async fn mark_sent(db: &impl Executor, id: i64) -> Result<(), StoreError> {
    db.execute_typed(
        "WITH d AS (UPDATE email_deliveries SET sent_at = now() WHERE message_id = $1) \
         UPDATE outbox SET settled_at = now() WHERE id = $1 AND settled_at IS NULL",
        &[(&id, Type::INT8)],
    )
    .await?;
    Ok(())
}

/// Records that the mail service refused the mail of message `id` for good, and why; this
/// settles its outbox row, so neither the queue nor the sweeper tries it again.
pub async fn mark_rejected(db: &impl Executor, id: i64, reason: &str) -> Result<(), StoreError> {
    db.execute_typed(
        "WITH d AS (UPDATE email_deliveries SET rejected_at = now(), failure = $2 \
                     WHERE message_id = $1 AND sent_at IS NULL) \
         UPDATE outbox SET settled_at = now() WHERE id = $1 AND settled_at IS NULL",
        &[(&id, Type::INT8), (&reason, Type::TEXT)],
    )
    .await?;
    Ok(())
}

/// Gives up a claim after a failed send, so the next delivery may try at once.
pub async fn release_delivery(db: &impl Executor, id: i64) -> Result<(), StoreError> {
    db.execute_typed(
        "DELETE FROM email_deliveries WHERE message_id = $1 AND sent_at IS NULL AND rejected_at IS NULL",
        &[(&id, Type::INT8)],
    )
    .await?;
    Ok(())
}

/// Deletes up to `limit` outbox rows settled before `older_than` ago, with their delivery
/// records; an unsettled row is never deleted. Returns how many outbox rows went.
pub async fn delete_settled(db: &impl Executor, older_than: Duration, limit: i64) -> Result<u64, StoreError> {
    // The delivery rows go first within the statement: the foreign key is checked at its end.
    let deleted = db
        .execute_typed(
            "WITH doomed AS ( \
                    SELECT id FROM outbox \
                     WHERE settled_at < now() - make_interval(secs => $1::BIGINT / 1000.0) \
                     ORDER BY settled_at LIMIT $2 FOR UPDATE SKIP LOCKED), \
                  deliveries AS (DELETE FROM email_deliveries WHERE message_id IN (SELECT id FROM doomed)) \
             DELETE FROM outbox WHERE id IN (SELECT id FROM doomed)",
            &[(&millis(older_than), Type::INT8), (&limit, Type::INT8)],
        )
        .await?;
    Ok(deleted)
}
