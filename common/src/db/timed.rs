//! The one way code reaches Postgres, timed for the invocation's metric line: a checkout
//! from [`Pool`] adds its wait to `PoolWait`, and every statement run through [`Executor`]
//! (the store's only way to run one) adds its round trip to `DatabaseTime`. A new store
//! function or handler is measured without doing anything.
//!
//! Cheap by construction: a timed future is the statement's own future plus two clock
//! reads, with no allocation; outside an invocation (migrate, unit tests) nothing is
//! recorded. Calling the driver's inherent methods also skips the boxed future that
//! `tokio_postgres::GenericClient` (an `async_trait`) makes per statement.

use std::future::Future;

use deadpool_postgres::{Object, PoolError, Status, Transaction};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Error, Row};

use crate::metrics::{self, Metric};

/// The connection pool; [`Pool::get`] is timed as `PoolWait`.
#[derive(Clone)]
pub struct Pool(deadpool_postgres::Pool);

impl Pool {
    pub(super) fn new(pool: deadpool_postgres::Pool) -> Self {
        Self(pool)
    }

    /// A connection, once one is free (or opened): the wait counts as `PoolWait`.
    pub async fn get(&self) -> Result<Object, PoolError> {
        metrics::timed(Metric::PoolWait, self.0.get()).await
    }

    /// Closes the pool: its idle connections end now, the others when they come back.
    pub fn close(&self) {
        self.0.close();
    }

    pub fn status(&self) -> Status {
        self.0.status()
    }
}

/// Typed parameters, as `query_typed` takes them.
pub type Params<'a> = &'a [(&'a (dyn ToSql + Sync), Type)];

/// A connection or a transaction: what the store's functions run statements on. Each
/// statement is one `query_typed`/`execute_typed` round trip (no named prepared
/// statement, see the module `db`), timed as `DatabaseTime`.
pub trait Executor: Sync {
    fn query_typed<'a>(
        &'a self,
        sql: &'a str,
        params: Params<'a>,
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a;

    fn execute_typed<'a>(
        &'a self,
        sql: &'a str,
        params: Params<'a>,
    ) -> impl Future<Output = Result<u64, Error>> + Send + 'a;
}

/// The same timing for both of tokio-postgres' statement runners, which share no trait but
/// `GenericClient` (the one whose boxed futures this avoids).
macro_rules! timed_executor {
    ($runner:ty) => {
        impl Executor for $runner {
            fn query_typed<'a>(
                &'a self,
                sql: &'a str,
                params: Params<'a>,
            ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send + 'a {
                metrics::timed(Metric::DatabaseTime, <$runner>::query_typed(self, sql, params))
            }

            fn execute_typed<'a>(
                &'a self,
                sql: &'a str,
                params: Params<'a>,
            ) -> impl Future<Output = Result<u64, Error>> + Send + 'a {
                metrics::timed(Metric::DatabaseTime, <$runner>::execute_typed(self, sql, params))
            }
        }
    };
}

timed_executor!(tokio_postgres::Client);
timed_executor!(tokio_postgres::Transaction<'_>);

/// `BEGIN` on `client`, timed as `DatabaseTime` like the statements that follow.
pub async fn begin(client: &mut Object) -> Result<Transaction<'_>, Error> {
    metrics::timed(Metric::DatabaseTime, client.transaction()).await
}

/// `COMMIT`, timed as `DatabaseTime` (with synchronous commit, the WAL flush is in it).
pub async fn commit(tx: Transaction<'_>) -> Result<(), Error> {
    metrics::timed(Metric::DatabaseTime, tx.commit()).await
}
