//! The schema the binaries that migrate apply: the versioned migrations (refinery, each
//! applied once), then every SQL function's current definition from `migrations/functions`,
//! applied on every run. `migrations/README.md` explains the scheme.

use super::Pool;

use super::DbError;

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// The files of `migrations/functions`, one per function name (its overloads together), in
/// the order they are applied: a `LANGUAGE sql` body is checked when it is created, so what
/// it calls must exist by then.
macro_rules! function_files {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../migrations/functions/", $name, ".sql")))),*]
    };
}
const FUNCTIONS: &[(&str, &str)] = function_files![
    "adjust_stock",
    "archive_product",
    "cancel_order",
    "list_products",
    "lock_stock",
    "place_order",
    "rate_limit_hit",
    "refuse_archived",
    "search_key",
    "split_stock",
    "take_free_stock",
    "take_stock",
    "take_stock_in_order",
];

/// The role V12 creates for the functions to connect as (README "Least privilege").
pub const APPLICATION_ROLE: &str = "gamestore_app";

/// Lets [`APPLICATION_ROLE`] log in, with `password` when given. Run by the owner after
/// [`migrate`] (which creates the role NOLOGIN). The password is sent as its SCRAM
/// verifier, so a statement log never holds it in clear.
pub async fn allow_application_login(pool: &Pool, password: Option<&str>) -> Result<(), DbError> {
    let client = pool.get().await?;
    let password = password.map(|p| postgres_protocol::password::scram_sha_256(p.as_bytes()));
    // ALTER ROLE takes no parameters: format() quotes the name and the verifier.
    let sql: String = client
        .query_one(
            "SELECT format('ALTER ROLE %I LOGIN' || CASE WHEN $2::text IS NULL THEN '' ELSE ' PASSWORD %L' END, $1::text, $2::text)",
            &[&APPLICATION_ROLE, &password],
        )
        .await
        .map_err(DbError::ApplicationLogin)?
        .get(0);
    client.batch_execute(&sql).await.map_err(DbError::ApplicationLogin)
}

/// Applies every pending migration, then every function's definition; safe to run on every
/// start or deploy. Returns the names of the migrations it applied (empty when the database
/// was up to date: the functions are applied each time and not reported).
pub async fn migrate(pool: &Pool) -> Result<Vec<String>, DbError> {
    let mut client = pool.get().await?;
    // A migration may rewrite a large table; the request sessions' limit is not for it.
    client.batch_execute("SET statement_timeout = 0").await.map_err(DbError::Session)?;
    let report = embedded::migrations::runner().run_async(&mut **client).await?;
    let mut applied = Vec::new();
    for migration in report.applied_migrations() {
        tracing::info!(migration = %migration, "applied migration");
        applied.push(migration.to_string());
    }
    apply_functions(&mut client).await?;
    Ok(applied)
}

/// `CREATE OR REPLACE` of every function in one transaction: callers see all the new
/// definitions or none. After the versioned migrations, so a definition may use the columns
/// and tables they add.
async fn apply_functions(client: &mut tokio_postgres::Client) -> Result<(), DbError> {
    let tx = client.transaction().await.map_err(DbError::Functions)?;
    // Two runs replacing the same function at once would fail with "tuple concurrently
    // updated"; the second waits for the first's commit instead.
    tx.batch_execute("SELECT pg_advisory_xact_lock(hashtext('migrations/functions'))")
        .await
        .map_err(DbError::Functions)?;
    for (file, sql) in FUNCTIONS {
        tx.batch_execute(sql).await.map_err(|source| DbError::Function { file, source })?;
    }
    tx.commit().await.map_err(DbError::Functions)?;
    tracing::info!(functions = FUNCTIONS.len(), "applied the SQL functions");
    Ok(())
}

/// A fingerprint of the embedded migrations (names and checksums) and function files, so
/// tooling can tell whether a database was migrated by exactly this build.
pub fn migrations_fingerprint() -> u64 {
    let runner = embedded::migrations::runner();
    let migrations = runner.get_migrations().iter().map(refinery::Migration::checksum);
    let functions = FUNCTIONS.iter().map(|(file, sql)| fnv1a(fnv1a(FNV_OFFSET, file.as_bytes()), sql.as_bytes()));
    migrations.chain(functions).fold(FNV_OFFSET, |acc, checksum| acc.rotate_left(5) ^ checksum)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: stable across builds and toolchains, unlike `std`'s `DefaultHasher`.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3))
}
