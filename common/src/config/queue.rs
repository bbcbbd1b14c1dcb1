//! The queue the outbox publishes to and the email worker reads ([`QueueConfig`]).

use std::time::Duration;

use super::{ConfigError, Env, optional, parsed};

/// Where the queue is and how it is consumed.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// `redis://host:port[/db]` for Redis Streams, or an `http(s)://` SQS queue URL.
    pub url: String,
    /// Redis: the stream (`QUEUE_STREAM`, default `welcome-emails`); its dead letters go
    /// to `<stream>:dead`.
    pub stream: String,
    /// Redis: the consumer group (`QUEUE_GROUP`, default `email-worker`).
    pub group: String,
    /// Redis: a message delivered but not acknowledged for this long is claimed by
    /// another consumer (`QUEUE_CLAIM_TIMEOUT_MS`, default 60 000: longer than a send may
    /// take, so a slow worker is not raced; the SQS counterpart is the visibility timeout).
    pub claim_timeout: Duration,
    /// Redis: deliveries before a message goes to the dead stream ([`max_attempts`]).
    pub max_attempts: u32,
    /// Longest wait of one receive (`QUEUE_WAIT_MS`, default 1000; SQS long-polls whole
    /// seconds, at most 20).
    pub wait: Duration,
}

const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// How many times a queue delivers a message before it dead-letters it
/// (`QUEUE_MAX_ATTEMPTS`, default 5): the Redis consumer moves it to its dead stream then,
/// and SQS's redrive policy after its `maxReceiveCount`, which the template sets to the
/// same value for the email worker, so the worker knows a failed delivery is the last and
/// counts the message as dead-lettered once.
pub fn max_attempts(env: &impl Env) -> Result<u32, ConfigError> {
    parsed(env, "QUEUE_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)
}

impl QueueConfig {
    pub const DEFAULT_STREAM: &str = "welcome-emails";

    /// A queue at `url` with the default settings.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            stream: Self::DEFAULT_STREAM.to_owned(),
            group: "email-worker".to_owned(),
            claim_timeout: Duration::from_secs(60),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            wait: Duration::from_secs(1),
        }
    }
}

impl QueueConfig {
    /// `QUEUE_URL` and the settings documented on [`QueueConfig`]'s fields; `None` when
    /// `QUEUE_URL` is unset (then messages wait in the outbox).
    pub fn from_env(env: &impl Env) -> Result<Option<Self>, ConfigError> {
        let Some(url) = optional(env, "QUEUE_URL") else {
            return Ok(None);
        };
        let defaults = Self::new(url);
        Ok(Some(Self {
            stream: optional(env, "QUEUE_STREAM").unwrap_or(defaults.stream.clone()),
            group: optional(env, "QUEUE_GROUP").unwrap_or(defaults.group.clone()),
            claim_timeout: Duration::from_millis(parsed(env, "QUEUE_CLAIM_TIMEOUT_MS", 60_000)?),
            max_attempts: max_attempts(env)?,
            wait: Duration::from_millis(parsed(env, "QUEUE_WAIT_MS", 1_000)?),
            ..defaults
        }))
    }

    /// [`QueueConfig::from_env`], required: for what cannot work without a queue.
    pub fn required(env: &impl Env) -> Result<Self, ConfigError> {
        Self::from_env(env)?.ok_or(ConfigError::Missing("QUEUE_URL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env::env;

    #[test]
    fn queue_settings_have_defaults_and_need_a_url() {
        assert!(matches!(QueueConfig::from_env(&env(&[("QUEUE_URL", " ")])), Ok(None)));
        let config = QueueConfig::from_env(&env(&[("QUEUE_URL", "redis://q"), ("QUEUE_WAIT_MS", "20")]));
        let config = config.ok().flatten();
        assert_eq!(
            config.map(|c| (c.url, c.stream, c.wait, c.max_attempts)),
            Some(("redis://q".into(), QueueConfig::DEFAULT_STREAM.into(), Duration::from_millis(20), 5))
        );
        let bad = QueueConfig::from_env(&env(&[("QUEUE_URL", "redis://q"), ("QUEUE_MAX_ATTEMPTS", "many")]));
        assert!(matches!(bad, Err(ConfigError::Invalid { name: "QUEUE_MAX_ATTEMPTS", .. })));
    }
}
