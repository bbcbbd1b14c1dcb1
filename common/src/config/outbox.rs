//! How the outbox sweeper republishes and what retention deletes ([`SweepConfig`],
//! [`RetentionConfig`]).

use std::time::Duration;

use super::{ConfigError, Env, parsed};

/// How the sweeper works: rows the queue has not acknowledged after `grace`, and rows it
/// acknowledged whose mail is still unsettled after `redelivery_grace`, are republished,
/// `batch` at a time; then the retention step deletes what is past its time.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    pub grace: Duration,
    /// Longer than the queue may legitimately hold a message (SQS: 5 receives of a 180 s
    /// visibility timeout; Redis: 5 claim timeouts of 60 s), so a message still being
    /// retried is rarely published twice; when it is, the delivery record sends it once.
    /// Applies from `grace` on: a shorter value acts as `grace`.
    pub redelivery_grace: Duration,
    pub batch: i64,
    /// Pause between sweeps when run as a periodic task.
    pub interval: Duration,
    pub retention: RetentionConfig,
}

#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// How long settled mails are kept (`RETENTION_DAYS`, default 30).
    pub period: Duration,
    /// Rows one delete statement takes (`RETENTION_BATCH`, default 500).
    pub batch: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { period: Duration::from_secs(30 * 86_400), batch: 500 }
    }
}

impl SweepConfig {
    /// `OUTBOX_GRACE_SECONDS` (default 30: well above a normal publish, so the sweeper does
    /// not race register's own publish), `OUTBOX_REDELIVERY_GRACE_SECONDS` (900),
    /// `OUTBOX_SWEEP_BATCH` (100), `OUTBOX_SWEEP_INTERVAL_SECONDS` (10, locally; in AWS the
    /// schedule decides) and the retention settings ([`RetentionConfig::from_env`]).
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            grace: Duration::from_secs_f64(parsed(env, "OUTBOX_GRACE_SECONDS", 30.0)?),
            redelivery_grace: Duration::from_secs_f64(parsed(env, "OUTBOX_REDELIVERY_GRACE_SECONDS", 900.0)?),
            batch: parsed(env, "OUTBOX_SWEEP_BATCH", 100)?,
            interval: Duration::from_secs_f64(parsed(env, "OUTBOX_SWEEP_INTERVAL_SECONDS", 10.0)?),
            retention: RetentionConfig::from_env(env)?,
        })
    }
}

impl RetentionConfig {
    /// `RETENTION_DAYS` (default 30) and `RETENTION_BATCH` (default 500, at least 1).
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let days: f64 = parsed(env, "RETENTION_DAYS", 30.0)?;
        Ok(Self {
            period: Duration::try_from_secs_f64(days * 86_400.0)
                .map_err(|err| ConfigError::Invalid { name: "RETENTION_DAYS", reason: err.to_string() })?,
            batch: parsed::<i64>(env, "RETENTION_BATCH", 500)?.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env::env;

    #[test]
    fn sweep_and_retention_settings() {
        let sweep = SweepConfig::from_env(&env(&[("OUTBOX_GRACE_SECONDS", "0.5"), ("RETENTION_BATCH", "0")])).ok();
        assert_eq!(
            sweep.map(|s| (s.grace, s.batch, s.retention.period, s.retention.batch)),
            Some((Duration::from_millis(500), 100, Duration::from_secs(30 * 86_400), 1))
        );
        let negative = RetentionConfig::from_env(&env(&[("RETENTION_DAYS", "-1")]));
        assert!(matches!(negative, Err(ConfigError::Invalid { name: "RETENTION_DAYS", .. })));
    }
}
