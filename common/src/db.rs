//! The Postgres pool, and the schema (migrations and SQL functions) for the binaries that
//! apply it.
//!
//! All statements go through `query_typed`/`execute_typed`: one round trip, no named
//! prepared statement, so nothing pins a connection behind RDS Proxy or pgbouncer. They
//! run through [`Executor`] on connections from [`Pool`], which time them for the
//! invocation's metrics (`timed`).

use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Metrics, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

#[cfg(feature = "migrations")]
mod schema;
mod timed;
#[cfg(feature = "migrations")]
pub use schema::{APPLICATION_ROLE, allow_application_login, migrate, migrations_fingerprint};
pub use timed::{Executor, Params, Pool, begin, commit};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    #[error("cannot set up TLS for the database connection: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot build the connection pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    #[error("cannot get a database connection: {0}")]
    Connect(#[from] deadpool_postgres::PoolError),
    #[cfg(feature = "migrations")]
    #[error("cannot lift the statement timeout for migrations: {0}")]
    Session(#[source] tokio_postgres::Error),
    #[cfg(feature = "migrations")]
    #[error("migration failed: {0}")]
    Migrate(#[from] refinery::Error),
    #[cfg(feature = "migrations")]
    #[error("cannot apply the SQL functions: {0}")]
    Functions(#[source] tokio_postgres::Error),
    #[cfg(feature = "migrations")]
    #[error("cannot let the application role log in: {}", postgres_message(.0))]
    ApplicationLogin(#[source] tokio_postgres::Error),
    #[cfg(feature = "migrations")]
    #[error("migrations/functions/{file}.sql failed: {}", postgres_message(.source))]
    Function { file: &'static str, source: tokio_postgres::Error },
}

/// What the server said, for an error it raised: the bare error reads "db error".
#[cfg(feature = "migrations")]
fn postgres_message(err: &tokio_postgres::Error) -> String {
    err.as_db_error().map_or_else(|| err.to_string(), ToString::to_string)
}

/// How long a request may wait for a free connection of the pool (only the local server,
/// whose requests share a pool, ever waits: a Lambda environment serves one at a time).
const WAIT: Duration = Duration::from_secs(3);
/// Opening a connection: TCP within [`CONNECT`], then TLS, start-up and authentication.
const CREATE: Duration = Duration::from_secs(3);
/// The TCP connect, unless `DATABASE_URL` sets `connect_timeout`.
const CONNECT: Duration = Duration::from_secs(3);
/// The session's `statement_timeout`, unless `DATABASE_URL`'s `options` set one.
const STATEMENT: &str = "5s";
/// A connection last handed out longer ago than this is checked with one round trip
/// before it is handed out again. A Lambda environment is frozen between invocations and
/// RDS Proxy drops idle clients: after a pause, the connection's end may be waiting unread
/// on the socket (or lost with the frozen guest's packets), and the fast check
/// (`is_closed`) cannot see it. Under load connections come back within milliseconds and
/// skip the check.
const IDLE_CHECK_AFTER: Duration = Duration::from_secs(1);
/// The round trip of that check; a connection that does not answer in time is replaced.
/// As long as RDS Proxy's `ConnectionBorrowTimeout` (2 s), so a busy proxy is not taken
/// for a dead connection.
const CHECK: Duration = Duration::from_secs(2);

/// Builds a pool of at most `size` connections. Connections open lazily; a request that
/// cannot get one within the timeouts above fails with 503 instead of hanging. A dead
/// connection costs no request: closed ones are dropped on checkout, idle ones checked
/// first (see [`IDLE_CHECK_AFTER`]), and the pool moves on to the next or a new one.
///
/// `sslmode=require` (what the stack sets for RDS Proxy) connects over TLS and verifies
/// the server certificate and host name; no `sslmode`, `prefer` or `disable` (local
/// databases) connect in plain text.
pub fn pool(database_url: &str, size: usize) -> Result<Pool, DbError> {
    let pg = session_defaults(tokio_postgres::Config::from_str(database_url).map_err(DbError::Url)?);
    let config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = if pg.get_ssl_mode() == SslMode::Require {
        Manager::from_config(pg, tls_connector()?, config)
    } else {
        // `prefer` with NoTls never attempts TLS: local clusters need no certificate.
        Manager::from_config(pg, NoTls, config)
    };
    let timeouts = Timeouts { wait: Some(WAIT), create: Some(CREATE), recycle: Some(CHECK) };
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(size.max(1))
        .timeouts(timeouts)
        .runtime(Runtime::Tokio1)
        .post_recycle(Hook::async_fn(|client, metrics| Box::pin(check_if_idle(client, metrics))))
        .build()?;
    Ok(Pool::new(pool))
}

/// The connect timeout, and `statement_timeout` as a connection parameter (the start-up
/// packet) rather than a `SET` per checkout, which would cost a round trip and pin the
/// session behind RDS Proxy. Values given in `DATABASE_URL` win.
///
/// RDS Proxy refuses the `options` start-up parameter, so a TLS connection
/// (`sslmode=require`: the stack's connection through the proxy) gets no default
/// `statement_timeout` here: there it is the proxy's `InitQuery` or the role's setting.
fn session_defaults(mut pg: tokio_postgres::Config) -> tokio_postgres::Config {
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(CONNECT);
    }
    let options = pg.get_options().unwrap_or_default();
    if pg.get_ssl_mode() != SslMode::Require && !options.contains("statement_timeout") {
        let options = format!("{options} -c statement_timeout={STATEMENT}");
        pg.options(options.trim_start());
    }
    pg
}

/// Runs after the fast check (the connection is not known closed). An error drops the
/// connection, and the pool tries the next one or opens a new one, within the same
/// checkout: the request never sees it.
async fn check_if_idle(client: &mut deadpool_postgres::ClientWrapper, metrics: &Metrics) -> Result<(), HookError> {
    if metrics.last_used() < IDLE_CHECK_AFTER {
        return Ok(());
    }
    // The empty query is what `RecyclingMethod::Verified` sends: one round trip, no plan.
    match tokio::time::timeout(CHECK, client.simple_query("")).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => {
            tracing::info!(error = %err, "idle database connection is dead; replacing it");
            Err(HookError::Backend(err))
        }
        Err(_) => {
            tracing::info!("idle database connection did not answer; replacing it");
            Err(HookError::message("idle connection check timed out"))
        }
    }
}

/// rustls with the `ring` provider (the crypto stack jsonwebtoken's `rust_crypto` already
/// pulls in; no second one such as aws-lc-rs) and Mozilla's roots from `webpki-roots`.
/// The public roots are enough in AWS: RDS Proxy presents an ACM certificate for its
/// endpoint, which chains to Amazon's public roots, so the RDS CA bundle is not needed. A
/// direct connection to an RDS instance (whose certificate comes from the private RDS CA)
/// would need that bundle instead. rustls always checks the chain and the host name, so
/// `sslmode=require` here is as strict as libpq's `verify-full`.
pub fn tls_connector() -> Result<MakeRustlsConnect, DbError> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tls_only_when_required() {
        // Pools build lazily, so no server is needed: this checks the TLS set-up succeeds
        // (a missing crypto provider would fail here, not at the first connection).
        assert!(tls_connector().is_ok());
        assert!(pool("host=127.0.0.1 user=u sslmode=require", 1).is_ok());
        assert!(pool("postgres://u@127.0.0.1/db", 1).is_ok());
        assert!(matches!(pool("sslmode=bogus", 1), Err(DbError::Url(_))));
    }

    #[test]
    fn sessions_get_timeouts_unless_the_url_sets_them() {
        let parse = |url: &str| session_defaults(tokio_postgres::Config::from_str(url).unwrap_or_default());
        let defaults = parse("postgres://u@127.0.0.1/db");
        assert_eq!(defaults.get_connect_timeout(), Some(&CONNECT));
        assert_eq!(defaults.get_options(), Some("-c statement_timeout=5s"));

        let given = parse("postgres://u@127.0.0.1/db?connect_timeout=1&options=-c%20statement_timeout%3D0");
        assert_eq!(given.get_connect_timeout(), Some(&Duration::from_secs(1)));
        assert_eq!(given.get_options(), Some("-c statement_timeout=0"));

        let other = parse("postgres://u@127.0.0.1/db?options=-c%20search_path%3Dapp");
        assert_eq!(other.get_options(), Some("-c search_path=app -c statement_timeout=5s"));

        // Through RDS Proxy, which refuses `options`: only the connect timeout.
        let proxy = parse("host=proxy.example user=u sslmode=require");
        assert_eq!(proxy.get_connect_timeout(), Some(&CONNECT));
        assert_eq!(proxy.get_options(), None);
    }

    #[tokio::test]
    async fn require_refuses_a_server_without_tls() {
        // A plain-text "server" that answers the SSLRequest with 'N' (no TLS): a client
        // in require mode must give up instead of falling back to plain text.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await;
        let Ok(listener) = listener else { panic!("cannot bind a loopback port") };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 8];
                let _ = socket.read_exact(&mut request).await;
                let _ = socket.write_all(b"N").await;
                // Anything sent after this would be a plain-text startup message.
                let mut rest = Vec::new();
                let _ = socket.read_to_end(&mut rest).await;
                return (request, rest);
            }
            ([0; 8], Vec::new())
        });
        let url = format!("host=127.0.0.1 port={port} user=u dbname=d sslmode=require");
        let pool = pool(&url, 1).map_err(|e| e.to_string());
        let Ok(pool) = pool else { panic!("pool") };
        assert!(pool.get().await.is_err());
        pool.close();
        drop(pool);
        let (request, rest) = server.await.unwrap_or(([0; 8], vec![1]));
        // 80877103 is the SSLRequest code: the client asked for TLS first ...
        assert_eq!(&request[4..], &80_877_103u32.to_be_bytes());
        // ... and sent nothing in plain text once it was refused.
        assert!(rest.is_empty(), "client fell back to plain text: {rest:?}");
    }
}
