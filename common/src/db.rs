//! The Postgres pool, and the versioned migrations for the binaries that apply them.
//!
//! All statements go through `query_typed`/`execute_typed`: one round trip, no named
//! prepared statement, so nothing pins a connection behind RDS Proxy or pgbouncer.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    #[error("cannot build the connection pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("cannot get a database connection: {0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    #[cfg(feature = "migrations")]
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
}

/// Builds a pool of at most `size` connections. Connections open lazily; a request that
/// waits longer than 5 s for one fails with 503 instead of hanging.
pub fn pool(database_url: &str, size: usize) -> Result<Pool, DbError> {
    let pg = tokio_postgres::Config::from_str(database_url).map_err(DbError::Url)?;
    let manager = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let timeouts = Timeouts {
        wait: Some(Duration::from_secs(5)),
        create: Some(Duration::from_secs(5)),
        recycle: Some(Duration::from_secs(5)),
    };
    Ok(Pool::builder(manager).max_size(size.max(1)).timeouts(timeouts).runtime(Runtime::Tokio1).build()?)
}

#[cfg(feature = "migrations")]
mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// Applies every pending migration; safe to run on every start or deploy.
#[cfg(feature = "migrations")]
pub async fn migrate(pool: &Pool) -> Result<(), DbError> {
    let mut client = pool.get().await?;
    let report = embedded::migrations::runner().run_async(&mut **client).await?;
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied migration");
    }
    Ok(())
}

/// A fingerprint of the embedded migrations (names and checksums), so tooling can tell
/// whether a database was migrated by exactly this build.
#[cfg(feature = "migrations")]
pub fn migrations_fingerprint() -> u64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |acc, m| acc.rotate_left(5) ^ m.checksum())
}
