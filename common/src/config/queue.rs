//! The queue the outbox publishes to and the email worker reads ([`QueueConfig`]).

use std::time::Duration;

use super::{ConfigError, Env, optional, parsed};
use crate::queue::QueueConfig;

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
            max_attempts: parsed(env, "QUEUE_MAX_ATTEMPTS", defaults.max_attempts)?,
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
