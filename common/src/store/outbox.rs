//! The transactional outbox and the delivery record of sent mails.

use std::time::Duration;

use tokio_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::error::AppError;
use crate::outbox::OutboxMessage;

fn message(row: &Row) -> Result<OutboxMessage, AppError> {
    let payload: String = row.try_get("payload")?;
    Ok(OutboxMessage {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        payload: serde_json::from_str(&payload).map_err(AppError::internal)?,
    })
}

/// Adds a message to the outbox, in the caller's transaction.
pub async fn insert(
    db: &impl GenericClient,
    kind: &str,
    payload: &serde_json::Value,
) -> Result<OutboxMessage, AppError> {
    let payload = payload.to_string();
    let rows = db
        .query_typed(
            "INSERT INTO outbox (kind, payload) VALUES ($1, $2::TEXT::JSONB) RETURNING id, kind, payload::TEXT AS payload",
            &[(&kind, Type::TEXT), (&payload, Type::TEXT)],
        )
        .await?;
    super::single(&rows, message)
}

/// Records that the queue accepted message `id`.
pub async fn mark_published(db: &impl GenericClient, id: i64) -> Result<(), AppError> {
    db.execute_typed(
        "UPDATE outbox SET published_at = now() WHERE id = $1 AND published_at IS NULL",
        &[(&id, Type::INT8)],
    )
    .await?;
    Ok(())
}

/// Takes up to `limit` messages the queue has not acknowledged whose last attempt is older
/// than `grace`, and stamps them as attempted now: a lease, so another sweeper running at
/// the same time skips them (`SKIP LOCKED`) and does not take them again before `grace`.
pub async fn claim_unpublished(
    db: &impl GenericClient,
    grace: Duration,
    limit: i64,
) -> Result<Vec<OutboxMessage>, AppError> {
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let rows = db
        .query_typed(
            "UPDATE outbox o SET last_attempt_at = now(), attempts = o.attempts + 1 \
              WHERE o.id IN ( \
                    SELECT id FROM outbox \
                     WHERE published_at IS NULL \
                       AND last_attempt_at < now() - make_interval(secs => $1::BIGINT / 1000.0) \
                     ORDER BY last_attempt_at \
                     LIMIT $2 \
                     FOR UPDATE SKIP LOCKED) \
             RETURNING o.id, o.kind, o.payload::TEXT AS payload",
            &[(&grace_ms, Type::INT8), (&limit, Type::INT8)],
        )
        .await?;
    rows.iter().map(message).collect()
}

/// What [`claim_delivery`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This worker holds the claim and sends the mail.
    Acquired,
    /// The mail was sent already: a redelivery, nothing to send.
    AlreadySent,
    /// Another worker claimed it less than a lease ago and may be sending it right now.
    Held,
    /// No outbox message has this id.
    UnknownMessage,
}

/// Claims the delivery of message `id` to `recipient`: inserts its delivery row, or takes
/// over a claim older than `lease` whose mail was never recorded as sent (its worker died).
pub async fn claim_delivery(
    db: &impl GenericClient,
    id: i64,
    recipient: &str,
    lease: Duration,
) -> Result<Claim, AppError> {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let claimed = db
        .query_typed(
            "INSERT INTO email_deliveries AS d (message_id, recipient) VALUES ($1, $2) \
             ON CONFLICT (message_id) DO UPDATE SET claimed_at = now(), attempts = d.attempts + 1 \
              WHERE d.sent_at IS NULL AND d.claimed_at < now() - make_interval(secs => $3::BIGINT / 1000.0) \
             RETURNING d.attempts",
            &[(&id, Type::INT8), (&recipient, Type::TEXT), (&lease_ms, Type::INT8)],
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
            "SELECT sent_at IS NOT NULL AS sent FROM email_deliveries WHERE message_id = $1",
            &[(&id, Type::INT8)],
        )
        .await?;
    match rows.first().map(|row| row.try_get::<_, bool>("sent")).transpose()? {
        Some(true) => Ok(Claim::AlreadySent),
        // Gone between the two statements (its claim was released): try again later.
        Some(false) | None => Ok(Claim::Held),
    }
}

/// Records that the mail of message `id` was sent.
pub async fn mark_sent(db: &impl GenericClient, id: i64) -> Result<(), AppError> {
    db.execute_typed("UPDATE email_deliveries SET sent_at = now() WHERE message_id = $1", &[(&id, Type::INT8)]).await?;
    Ok(())
}

/// Gives up a claim after a failed send, so the next delivery may try at once.
pub async fn release_delivery(db: &impl GenericClient, id: i64) -> Result<(), AppError> {
    db.execute_typed("DELETE FROM email_deliveries WHERE message_id = $1 AND sent_at IS NULL", &[(&id, Type::INT8)])
        .await?;
    Ok(())
}
