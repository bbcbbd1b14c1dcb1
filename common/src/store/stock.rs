//! Stock changes made outside orders, each recorded in the `stock_movements` ledger.

use crate::db::{Executor, Pool};
use tokio_postgres::types::Type;

use super::orders::{is_transient, order_error};
use super::{StoreError, Unavailable};
use crate::domain::{ProductId, StockDelta, StockReason, UserId};
use crate::metrics::{self, Metric};

/// How often a change is tried: removing stock takes it as a retried order does, which a
/// split of the product racing it can roll back with 40001.
const ATTEMPTS: usize = 3;

/// Adds `delta` units to the product's stock (removes them when negative) and records who,
/// when, how much and why in the ledger, in one statement (`adjust_stock`,
/// migrations/functions), safely beside orders taking stock of the same product. Returns
/// the stock afterwards. An unknown product is [`StoreError::NotFound`], a removal of more
/// than is left [`StoreError::StockShort`]; either way nothing is written. A connection lost
/// once the statement was sent is [`Unavailable::CommitUnknown`]: it may have committed.
pub async fn adjust(
    pool: &Pool,
    product: ProductId,
    delta: StockDelta,
    reason: &StockReason,
    by: UserId,
) -> Result<i64, StoreError> {
    let client = pool.get().await?;
    let mut attempt = 1;
    loop {
        // Through `Executor`, which times it, not the driver's own method.
        let result = Executor::query_typed(
            &**client,
            "SELECT adjust_stock($1, $2, $3, $4)",
            &[
                (&product.get(), Type::INT8),
                (&delta.get(), Type::INT4),
                (&reason.as_str(), Type::TEXT),
                (&by.get(), Type::INT8),
            ],
        )
        .await;
        match result {
            Ok(rows) => return super::single(&rows, |row| Ok(row.try_get(0)?)),
            Err(err) if attempt < ATTEMPTS && is_transient(&err) => {
                tracing::info!(attempt, error = %err, "stock change rolled back by the database, retrying");
                metrics::count(Metric::TransactionRetries);
                attempt += 1;
            }
            Err(err) => {
                return Err(match order_error(err) {
                    StoreError::OutOfStock { product_id } => StoreError::StockShort { product_id },
                    err @ StoreError::Unavailable { kind: Unavailable::CommitUnknown, .. } => {
                        drop(deadpool_postgres::Object::take(client));
                        err
                    }
                    err => err,
                });
            }
        }
    }
}
