//! Optional settings read from the environment by the queue, mail and outbox modules.

use crate::config::ConfigError;

/// `name` parsed, or `default` when it is unset or blank.
pub fn parse_or<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match optional(name) {
        Some(raw) => raw.parse().map_err(|err: T::Err| ConfigError::Invalid { name, reason: err.to_string() }),
        None => Ok(default),
    }
}

/// `name` trimmed, or `None` when it is unset or blank.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|value| value.trim().to_owned()).filter(|value| !value.is_empty())
}
