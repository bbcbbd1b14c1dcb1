use deadpool_postgres::Pool;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

use crate::domain::{ProductId, Quantity, UserId};
use crate::error::AppError;

/// One line of an order request.
#[derive(Debug, Clone, Copy)]
pub struct Line {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

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

/// How often an order is retried when Postgres aborts it for a serialization failure or
/// a deadlock; neither should happen with ordered locking, so this is a safety net.
const ATTEMPTS: usize = 3;

/// Places an order in one statement (one round trip, its own transaction): unknown
/// product is [`AppError::ProductNotFound`], too little stock [`AppError::OutOfStock`],
/// and in both cases nothing is written.
pub async fn place(pool: &Pool, user: UserId, lines: &[Line]) -> Result<Order, AppError> {
    let mut lines = lines.to_vec();
    merge_lines(&mut lines)?;
    let product_ids: Vec<i64> = lines.iter().map(|l| l.product_id.get()).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity.get()).collect();
    let client = pool.get().await?;
    let mut attempt = 1;
    let rows = loop {
        let result = client
            .query_typed(
                "SELECT * FROM place_order($1, $2, $3)",
                &[
                    (&user.get(), Type::INT8),
                    (&product_ids, Type::INT8_ARRAY),
                    (&quantities, Type::INT4_ARRAY),
                ],
            )
            .await;
        match result {
            Ok(rows) => break rows,
            Err(err) if attempt < ATTEMPTS && is_transient(&err) => {
                tracing::warn!(attempt, error = %err, "order aborted by the database, retrying");
                attempt += 1;
            }
            Err(err) => return Err(order_error(err)),
        }
    };
    let mut items = Vec::with_capacity(rows.len());
    let mut header = None;
    for row in &rows {
        header.get_or_insert((row.try_get::<_, i64>("order_id")?, row.try_get("created_at")?));
        let quantity: i32 = row.try_get("quantity")?;
        let unit_price: i64 = row.try_get("unit_price")?;
        items.push(Item {
            product_id: row.try_get("product_id")?,
            quantity,
            unit_price,
            line_total: i64::from(quantity) * unit_price,
        });
    }
    let (id, created_at) = header.ok_or_else(|| AppError::Internal("place_order returned no row".into()))?;
    Ok(Order {
        id,
        single: match items.as_slice() {
            [only] => Some(SingleLine {
                product_id: only.product_id,
                quantity: only.quantity,
                unit_price: only.unit_price,
            }),
            _ => None,
        },
        total: items.iter().map(|i| i.line_total).sum(),
        items,
        created_at,
    })
}

/// Sorts lines by product id (the lock order) and merges repeated products into one line.
fn merge_lines(lines: &mut Vec<Line>) -> Result<(), AppError> {
    lines.sort_by_key(|l| l.product_id);
    let mut merged: Vec<Line> = Vec::with_capacity(lines.len());
    for line in lines.drain(..) {
        match merged.last_mut() {
            Some(last) if last.product_id == line.product_id => {
                let sum = i64::from(last.quantity.get()) + i64::from(line.quantity.get());
                last.quantity = Quantity::parse(sum).map_err(|_| {
                    AppError::invalid(
                        "quantity",
                        format!("quantity: at most {} units of one product", Quantity::MAX),
                    )
                })?;
            }
            _ => merged.push(line),
        }
    }
    *lines = merged;
    Ok(())
}

fn is_transient(err: &tokio_postgres::Error) -> bool {
    matches!(err.code(), Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED)
}

/// Maps the SQLSTATEs `place_order` raises (GS404, GS409, product id in DETAIL).
fn order_error(err: tokio_postgres::Error) -> AppError {
    let Some(db) = err.as_db_error() else { return err.into() };
    let product_id = || db.detail().and_then(|d| d.parse().ok()).unwrap_or_default();
    match db.code().code() {
        "GS404" => AppError::ProductNotFound {
            product_id: product_id(),
        },
        "GS409" => AppError::OutOfStock {
            product_id: product_id(),
        },
        // The token names a user that no longer exists.
        "23503" if db.constraint() == Some("orders_user_id_fkey") => AppError::InvalidToken,
        _ => err.into(),
    }
}
