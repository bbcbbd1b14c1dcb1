//! SQL, grouped by aggregate: the only layer that talks to Postgres. Nothing outside this
//! module writes SQL, and nothing in it knows of HTTP: every function answers
//! [`StoreError`], which `crate::http` maps to the API's errors.
//!
//! Layers: handler (`functions/*`) → domain and HTTP (`domain`, `http`, `auth`, `throttle`,
//! `outbox`) → store → SQL. A store module may import `domain` and `message` (values it
//! stores), never `error`, `http`, `auth` or a module above it.

pub mod orders;
pub mod outbox;
pub mod products;
pub mod rate_limits;
pub mod stock;
pub mod users;

#[cfg(test)]
pub(crate) mod tests;

use std::fmt;

use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a store operation failed, in the store's terms.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row the operation needs does not exist.
    #[error("{entity} {id} not found")]
    NotFound { entity: Entity, id: i64 },
    /// The statement broke the named integrity constraint (unique, foreign key, check):
    /// what it writes conflicts with what is stored. Nothing was written.
    #[error("conflict on constraint {constraint}: {source}")]
    Conflict {
        constraint: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// Too little stock for the product; nothing was written.
    #[error("product {product_id} is out of stock")]
    OutOfStock { product_id: i64 },
    /// The product is archived: it takes no new orders; nothing was written.
    #[error("product {product_id} is archived")]
    Archived { product_id: i64 },
    /// Removing stock would take the product below zero; nothing was written.
    #[error("product {product_id} has less stock than the removal")]
    StockShort { product_id: i64 },
    /// The row changed since the version the caller read; nothing was written.
    #[error("the row changed since the version the caller read")]
    VersionMismatch,
    /// The buyer's time to cancel the order is over; nothing was written.
    #[error("the order can no longer be cancelled by its buyer")]
    CancelWindowClosed,
    /// An idempotency key came back with a different request; nothing was written.
    #[error("idempotency key was already used for a different request")]
    KeyReused,
    /// The database cannot answer now; what `kind` says about the write is all we know.
    #[error("database unavailable ({kind}): {source}")]
    Unavailable {
        kind: Unavailable,
        #[source]
        source: Cause,
    },
    /// Anything else: a fault of ours (a statement or a row that does not fit the code).
    #[error("unexpected database error: {0}")]
    Unexpected(#[source] Cause),
}

/// What a [`StoreError::NotFound`] was looking for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Product,
    Order,
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Product => "product",
            Self::Order => "order",
        })
    }
}

/// Why the database could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// No connection could be had from the pool (none free in time, or none could open).
    Pool,
    /// The connection is closed.
    ConnectionLost,
    /// `statement_timeout` cancelled the statement (57014): it rolled back.
    Timeout,
    /// The connection was lost once a writing statement was sent: it may have committed.
    CommitUnknown,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pool => "no connection",
            Self::ConnectionLost => "connection lost",
            Self::Timeout => "statement timeout",
            Self::CommitUnknown => "connection lost, commit unknown",
        })
    }
}

impl StoreError {
    pub fn unexpected(cause: impl Into<Cause>) -> Self {
        Self::Unexpected(cause.into())
    }
}

/// The one classification of driver errors. A lost connection or a statement cancelled by
/// `statement_timeout` (an ERROR answer: it rolled back) is [`StoreError::Unavailable`]; a
/// broken named constraint (class 23) is [`StoreError::Conflict`]; anything else is ours.
impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        let kind = if err.is_closed() {
            Some(Unavailable::ConnectionLost)
        } else if err.code() == Some(&SqlState::QUERY_CANCELED) {
            Some(Unavailable::Timeout)
        } else {
            None
        };
        if let Some(kind) = kind {
            return Self::Unavailable { kind, source: Box::new(err) };
        }
        let constraint = err
            .as_db_error()
            .filter(|db| db.code().code().starts_with("23"))
            .and_then(|db| db.constraint())
            .map(str::to_owned);
        match constraint {
            Some(constraint) => Self::Conflict { constraint, source: err },
            None => Self::Unexpected(Box::new(err)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Self::Unavailable { kind: Unavailable::Pool, source: Box::new(err) }
    }
}

/// The one row a statement with `RETURNING` must produce.
fn single<T>(rows: &[Row], map: impl FnOnce(&Row) -> Result<T, StoreError>) -> Result<T, StoreError> {
    rows.first().map(map).ok_or_else(|| StoreError::unexpected("statement returned no row"))?
}
