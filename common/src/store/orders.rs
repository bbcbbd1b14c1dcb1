use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::error::{Severity, SqlState};
use tokio_postgres::types::Type;

use super::{Entity, StoreError, Unavailable};
use crate::db::{Executor, Pool};
use crate::domain::{IdempotencyKey, OrderId, OrderLines, OrderStatus, UserId};
use crate::message::{ORDER_CANCELLED, ORDER_CONFIRMATION, OutboxMessage};
use crate::metrics::{self, Correlation, Metric};

#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub id: i64,
    pub status: OrderStatus,
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

/// A placed order, and whether it was replayed for a repeated idempotency key. A new
/// order comes with its confirmation mail's outbox row, committed with it, to publish.
#[derive(Debug)]
pub struct Placed {
    pub order: Order,
    pub replayed: bool,
    pub confirmation: Option<OutboxMessage>,
}

/// `place_order`, with the confirmation mail's outbox row for a new order written by the
/// function in the same transaction (one round trip); a replay writes none.
const PLACE_SQL: &str = "\
    SELECT order_id, created_at, status, product_id, quantity, unit_price, replayed, \
           message_id, message_payload, message_created_ms \
      FROM place_order($1, $2, $3, $4, $5, $6, $7, $8, $9)";

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
    let caused_by = metrics::correlation();
    let (request_id, trace_id) = Correlation::ids(caused_by.as_ref());
    let client = pool.get().await?;
    let mut attempt = 1;
    let mut in_order = false;
    let rows = loop {
        // Through `Executor`, which times it, not the driver's own method.
        let result = Executor::query_typed(
            &**client,
            PLACE_SQL,
            &[
                (&user.get(), Type::INT8),
                (&product_ids, Type::INT8_ARRAY),
                (&quantities, Type::INT4_ARRAY),
                (&key, Type::TEXT),
                (&fingerprint, Type::TEXT),
                (&in_order, Type::BOOL),
                (&ORDER_CONFIRMATION, Type::TEXT),
                (&request_id, Type::TEXT),
                (&trace_id, Type::TEXT),
            ],
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
    let confirmation =
        rows.first().map(|row| message(row, ORDER_CONFIRMATION, caused_by.as_ref())).transpose()?.flatten();
    let order = orders_from_rows(&rows)?.pop().ok_or_else(|| StoreError::unexpected("place_order returned no row"))?;
    Ok(Placed { order, replayed, confirmation })
}

/// The outbox message of kind `kind` a row carries in `message_id` and `message_payload`,
/// if any.
fn message(row: &Row, kind: &str, caused_by: Option<&Correlation>) -> Result<Option<OutboxMessage>, StoreError> {
    let Some(id) = row.try_get::<_, Option<i64>>("message_id")? else { return Ok(None) };
    let payload: String = row.try_get("message_payload")?;
    let payload = serde_json::from_str(&payload).map_err(StoreError::unexpected)?;
    let (request_id, trace_id) = Correlation::ids(caused_by);
    Ok(Some(OutboxMessage {
        id,
        kind: kind.to_owned(),
        payload,
        created_ms: row.try_get("message_created_ms")?,
        request_id: request_id.map(str::to_owned),
        trace_id: trace_id.map(str::to_owned),
    }))
}

/// Order `id` with its lines, if it exists and, with `owner`, is that user's.
pub async fn get(db: &impl Executor, id: OrderId, owner: Option<UserId>) -> Result<Order, StoreError> {
    const SQL: &str = "\
        SELECT o.id AS order_id, o.created_at, o.status, i.product_id, i.quantity, i.unit_price \
          FROM orders o JOIN order_items i ON i.order_id = o.id \
         WHERE o.id = $1 AND ($2::BIGINT IS NULL OR o.user_id = $2) \
         ORDER BY i.product_id";
    let owner = owner.map(UserId::get);
    let rows = db.query_typed(SQL, &[(&id.get(), Type::INT8), (&owner, Type::INT8)]).await?;
    orders_from_rows(&rows)?.pop().ok_or(StoreError::NotFound { entity: Entity::Order, id: id.get() })
}

/// What a cancel did: the order as it is now, and the cancellation mail's outbox row when
/// this call cancelled it (a repeated cancel finds it cancelled and writes nothing).
#[derive(Debug)]
pub struct Cancelled {
    pub order: Order,
    pub mail: Option<OutboxMessage>,
}

/// Who cancels: the buyer (their own orders only, within `window` of placing), or an admin
/// (any order, any time).
#[derive(Debug, Clone, Copy)]
pub enum Canceller {
    Buyer { id: UserId, window: std::time::Duration },
    Admin,
}

/// Cancels order `id` in one statement (`cancel_order`, its own transaction): its stock goes
/// back once and the cancellation mail's outbox row commits with it. Another user's order
/// (or none) is [`StoreError::NotFound`], a buyer past the window
/// [`StoreError::CancelWindowClosed`].
pub async fn cancel(db: &impl Executor, id: OrderId, by: Canceller) -> Result<Cancelled, StoreError> {
    let (user, admin, window) = match by {
        Canceller::Buyer { id, window } => (Some(id.get()), false, window),
        Canceller::Admin => (None, true, std::time::Duration::ZERO),
    };
    let window_secs = window.as_secs_f64();
    let caused_by = metrics::correlation();
    let (request_id, trace_id) = Correlation::ids(caused_by.as_ref());
    let rows = db
        .query_typed(
            "SELECT * FROM cancel_order($1, $2, $3, make_interval(secs => $4), $5, $6)",
            &[
                (&id.get(), Type::INT8),
                (&user, Type::INT8),
                (&admin, Type::BOOL),
                (&window_secs, Type::FLOAT8),
                (&request_id, Type::TEXT),
                (&trace_id, Type::TEXT),
            ],
        )
        .await
        .map_err(|err| match err.as_db_error().map(|db| db.code().code()) {
            Some("GS404") => StoreError::NotFound { entity: Entity::Order, id: id.get() },
            Some("GS410") => StoreError::CancelWindowClosed,
            _ => err.into(),
        })?;
    let mail = rows.first().map(|row| message(row, ORDER_CANCELLED, caused_by.as_ref())).transpose()?.flatten();
    let order = orders_from_rows(&rows)?.pop().ok_or_else(|| StoreError::unexpected("cancel_order returned no row"))?;
    Ok(Cancelled { order, mail })
}

/// Every user's orders, newest first, optionally only those in `status`: up to `limit` of
/// them older than order `before`.
pub async fn list_all(
    db: &impl Executor,
    status: Option<OrderStatus>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Order>, StoreError> {
    const SQL: &str = "\
        SELECT o.id AS order_id, o.created_at, o.status, i.product_id, i.quantity, i.unit_price \
          FROM (SELECT id, created_at, status FROM orders \
                 WHERE ($1::TEXT IS NULL OR status = $1) AND id < $2 ORDER BY id DESC LIMIT $3) o \
          JOIN order_items i ON i.order_id = o.id \
         ORDER BY o.id DESC, i.product_id";
    let status = status.map(OrderStatus::as_str);
    let rows = db
        .query_typed(SQL, &[(&status, Type::TEXT), (&before.unwrap_or(i64::MAX), Type::INT8), (&limit, Type::INT8)])
        .await?;
    orders_from_rows(&rows)
}

/// The caller's orders, newest first: up to `limit` of them older than order `before`.
pub async fn list_for_user(
    db: &impl Executor,
    user: UserId,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Order>, StoreError> {
    const SQL: &str = "\
        SELECT o.id AS order_id, o.created_at, o.status, i.product_id, i.quantity, i.unit_price \
          FROM (SELECT id, created_at, status FROM orders WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3) o \
          JOIN order_items i ON i.order_id = o.id \
         ORDER BY o.id DESC, i.product_id";
    let rows = db
        .query_typed(SQL, &[(&user.get(), Type::INT8), (&before.unwrap_or(i64::MAX), Type::INT8), (&limit, Type::INT8)])
        .await?;
    orders_from_rows(&rows)
}

/// Groups rows of (order_id, created_at, status, product_id, quantity, unit_price), ordered
/// by order, into orders with their items and totals.
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
                status: OrderStatus::parse(row.try_get("status")?)
                    .map_err(|err| StoreError::unexpected(format!("order {id} status: {}", err.0)))?,
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
pub async fn delete_expired_keys(db: &impl Executor, limit: i64) -> Result<u64, StoreError> {
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
