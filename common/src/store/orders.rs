use deadpool_postgres::Pool;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::error::{Severity, SqlState};
use tokio_postgres::types::Type;
use tokio_postgres::{GenericClient, Row};

use super::{Entity, StoreError, Unavailable};
use crate::domain::{IdempotencyKey, OrderLines, UserId};
use crate::metrics::{self, Metric};

#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub id: i64,
    /// For a one-line order (the seed's shape), that line's product, quantity and price.
    #[serde(flatten)]
    pub single: Option<SingleLine>,
    pub items: Vec<Item>,
    pub total: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct SingleLine {
    pub product_id: i64,
    pub quantity: i32,
    pub unit_price: i64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Item {
    pub product_id: i64,
    pub quantity: i32,
    pub unit_price: i64,
    pub line_total: i64,
}

/// How often an order is tried. `place_order` first takes stock without ever waiting while
/// it holds a bucket out of order, and answers 40001 when only buckets other orders hold
/// could cover a line; the retry locks buckets in order. A deadlock (40P01) should no longer
/// happen; it is retried the same way, as a safety net.
const ATTEMPTS: usize = 3;

/// A placed order, and whether it was replayed for a repeated idempotency key.
#[derive(Debug)]
pub struct Placed {
    pub order: Order,
    pub replayed: bool,
}

/// Places an order in one statement (one round trip, its own transaction): unknown
/// product is [`StoreError::NotFound`], too little stock [`StoreError::OutOfStock`], a
/// user that no longer exists [`StoreError::Conflict`] on `orders_user_id_fkey`, and in
/// each case nothing is written. With an idempotency key seen in the last 24 h the first
/// order comes back instead, or [`StoreError::KeyReused`] when that key was used for a
/// different request. When the connection is lost once the statement was sent, the order
/// may have committed: [`Unavailable::CommitUnknown`].
pub async fn place(
    pool: &Pool,
    user: UserId,
    lines: &OrderLines,
    key: Option<&IdempotencyKey>,
) -> Result<Placed, StoreError> {
    let lines = lines.as_slice();
    let product_ids: Vec<i64> = lines.iter().map(|l| l.product_id.get()).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity.get()).collect();
    let fingerprint =
        lines.iter().map(|l| format!("{}x{}", l.product_id.get(), l.quantity.get())).collect::<Vec<_>>().join(",");
    let key = key.map(IdempotencyKey::as_str);
    let client = metrics::timed(Metric::PoolWait, pool.get()).await?;
    let mut attempt = 1;
    let mut in_order = false;
    let rows = loop {
        let result = metrics::timed(
            Metric::DatabaseTime,
            client.query_typed(
                "SELECT * FROM place_order($1, $2, $3, $4, $5, $6)",
                &[
                    (&user.get(), Type::INT8),
                    (&product_ids, Type::INT8_ARRAY),
                    (&quantities, Type::INT4_ARRAY),
                    (&key, Type::TEXT),
                    (&fingerprint, Type::TEXT),
                    (&in_order, Type::BOOL),
                ],
            ),
        )
        .await;
        match result {
            Ok(rows) => break rows,
            Err(err) if attempt < ATTEMPTS && is_transient(&err) => {
                tracing::info!(attempt, error = %err, "order rolled back by the database, retrying with ordered locks");
                metrics::count(Metric::TransactionRetries);
                attempt += 1;
                in_order = true;
            }
            Err(err) => {
                let error = order_error(err);
                if matches!(error, StoreError::Unavailable { kind: Unavailable::CommitUnknown, .. }) {
                    // The connection is dead, though it may not know yet: keep it out of the
                    // pool, or the next request fails on it.
                    drop(deadpool_postgres::Object::take(client));
                }
                return Err(error);
            }
        }
    };
    let replayed = rows.first().map(|row| row.try_get("replayed")).transpose()?.unwrap_or(false);
    let order = orders_from_rows(&rows)?.pop().ok_or_else(|| StoreError::unexpected("place_order returned no row"))?;
    Ok(Placed { order, replayed })
}

/// The caller's orders, newest first: up to `limit` of them older than order `before`.
pub async fn list_for_user(
    db: &impl GenericClient,
    user: UserId,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Order>, StoreError> {
    const SQL: &str = "\
        SELECT o.id AS order_id, o.created_at, i.product_id, i.quantity, i.unit_price \
          FROM (SELECT id, created_at FROM orders WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3) o \
          JOIN order_items i ON i.order_id = o.id \
         ORDER BY o.id DESC, i.product_id";
    let rows = db
        .query_typed(SQL, &[(&user.get(), Type::INT8), (&before.unwrap_or(i64::MAX), Type::INT8), (&limit, Type::INT8)])
        .await?;
    orders_from_rows(&rows)
}

/// Groups rows of (order_id, created_at, product_id, quantity, unit_price), ordered by
/// order, into orders with their items and totals.
fn orders_from_rows(rows: &[Row]) -> Result<Vec<Order>, StoreError> {
    let mut orders: Vec<Order> = Vec::new();
    for row in rows {
        let id: i64 = row.try_get("order_id")?;
        let quantity: i32 = row.try_get("quantity")?;
        let unit_price: i64 = row.try_get("unit_price")?;
        let item = Item {
            product_id: row.try_get("product_id")?,
            quantity,
            unit_price,
            line_total: i64::from(quantity) * unit_price,
        };
        match orders.last_mut() {
            Some(order) if order.id == id => order.items.push(item),
            _ => orders.push(Order {
                id,
                single: None,
                items: vec![item],
                total: 0,
                created_at: row.try_get("created_at")?,
            }),
        }
    }
    for order in &mut orders {
        order.total = order.items.iter().map(|i| i.line_total).sum();
        order.single = match order.items.as_slice() {
            [only] => {
                Some(SingleLine { product_id: only.product_id, quantity: only.quantity, unit_price: only.unit_price })
            }
            _ => None,
        };
    }
    Ok(orders)
}

pub(super) fn is_transient(err: &tokio_postgres::Error) -> bool {
    matches!(err.code(), Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED)
}

/// Maps the SQLSTATEs `place_order` raises: GS404, GS409 and GS410 (product id in DETAIL), GS422;
/// any other answer is classified as every statement's is. An ERROR answer means the
/// statement was rolled back. Anything else once it was sent (the connection closed, the
/// backend ended with FATAL or PANIC) may have come after the commit.
pub(super) fn order_error(err: tokio_postgres::Error) -> StoreError {
    let commit_unknown = |err| StoreError::Unavailable { kind: Unavailable::CommitUnknown, source: Box::new(err) };
    let Some(db) = err.as_db_error() else { return commit_unknown(err) };
    if matches!(db.parsed_severity(), Some(Severity::Fatal | Severity::Panic)) {
        return commit_unknown(err);
    }
    let product_id = || db.detail().and_then(|d| d.parse().ok()).unwrap_or_default();
    match db.code().code() {
        "GS404" => StoreError::NotFound { entity: Entity::Product, id: product_id() },
        "GS409" => StoreError::OutOfStock { product_id: product_id() },
        "GS410" => StoreError::Archived { product_id: product_id() },
        "GS422" => StoreError::KeyReused,
        _ => err.into(),
    }
}

/// Deletes up to `limit` idempotency keys past the 24 hours `place_order` honours them.
pub async fn delete_expired_keys(db: &impl GenericClient, limit: i64) -> Result<u64, StoreError> {
    let deleted = db
        .execute_typed(
            "DELETE FROM idempotency_keys WHERE (user_id, key) IN ( \
                SELECT user_id, key FROM idempotency_keys WHERE created_at < now() - INTERVAL '24 hours' \
                 ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)",
            &[(&limit, Type::INT8)],
        )
        .await?;
    Ok(deleted)
}
