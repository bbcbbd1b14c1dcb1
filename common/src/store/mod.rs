//! SQL, grouped by aggregate. Nothing outside this module writes SQL.

pub mod orders;
pub mod outbox;
pub mod products;
pub mod rate_limits;
pub mod users;

use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use crate::error::AppError;

/// The constraint a unique violation broke, if `err` is one.
fn unique_violation(err: &tokio_postgres::Error) -> Option<&str> {
    err.as_db_error().filter(|db| *db.code() == SqlState::UNIQUE_VIOLATION).and_then(|db| db.constraint())
}

/// The one row a statement with `RETURNING` must produce.
fn single<T>(rows: &[Row], map: impl FnOnce(&Row) -> Result<T, AppError>) -> Result<T, AppError> {
    rows.first().map(map).ok_or_else(|| AppError::Internal("statement returned no row".into()))?
}
