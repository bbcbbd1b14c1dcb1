//! Failed-login counters in fixed windows, per subject (`email:…` or `ip:…`), shared by
//! every process through Postgres.

use std::time::Duration;

use tokio_postgres::GenericClient;
use tokio_postgres::types::Type;

use crate::error::AppError;

/// A throttled subject and how many failures within [`WINDOW`] block it.
pub struct Subject {
    pub key: String,
    pub max_failures: i32,
}

/// Length of a counting window; a blocked subject waits for its window to end.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// How long until the most constrained of `subjects` may try again, if any is blocked.
pub async fn blocked_for(db: &impl GenericClient, subjects: &[Subject]) -> Result<Option<Duration>, AppError> {
    const SQL: &str = "\
        SELECT ceil(extract(epoch FROM max(f.window_start + make_interval(secs => $3) - now())))::BIGINT \
          FROM login_failures f JOIN unnest($1::TEXT[], $2::INT[]) AS l (subject, max_failures) USING (subject) \
         WHERE f.window_start > now() - make_interval(secs => $3) AND f.failures >= l.max_failures";
    let keys: Vec<&str> = subjects.iter().map(|s| s.key.as_str()).collect();
    let limits: Vec<i32> = subjects.iter().map(|s| s.max_failures).collect();
    let rows = db
        .query_typed(SQL, &[(&keys, Type::TEXT_ARRAY), (&limits, Type::INT4_ARRAY), (&window_secs(), Type::FLOAT8)])
        .await?;
    let seconds: Option<i64> = rows.first().map(|row| row.try_get(0)).transpose()?.flatten();
    Ok(seconds.map(|s| Duration::from_secs(s.max(1).unsigned_abs())))
}

/// Counts one failure for each subject, starting a new window where the last one ended.
pub async fn record_failure(db: &impl GenericClient, subjects: &[Subject]) -> Result<(), AppError> {
    const SQL: &str = "\
        INSERT INTO login_failures AS f (subject, failures, window_start) \
        SELECT subject, 1, now() FROM unnest($1::TEXT[]) AS subject \
        ON CONFLICT (subject) DO UPDATE SET \
            failures = CASE WHEN f.window_start > now() - make_interval(secs => $2) THEN f.failures + 1 ELSE 1 END, \
            window_start = CASE WHEN f.window_start > now() - make_interval(secs => $2) THEN f.window_start ELSE now() END";
    let keys: Vec<&str> = subjects.iter().map(|s| s.key.as_str()).collect();
    db.execute_typed(SQL, &[(&keys, Type::TEXT_ARRAY), (&window_secs(), Type::FLOAT8)]).await?;
    Ok(())
}

/// Forgets a subject's failures (after a successful login).
pub async fn clear(db: &impl GenericClient, subject: &Subject) -> Result<(), AppError> {
    db.execute_typed("DELETE FROM login_failures WHERE subject = $1", &[(&subject.key.as_str(), Type::TEXT)]).await?;
    Ok(())
}

fn window_secs() -> f64 {
    WINDOW.as_secs_f64()
}
