//! Typed configuration, read once from the environment at start-up. A missing or weak
//! value stops the process with a message saying which variable to fix.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Smallest accepted HMAC secret: HS256 keys shorter than the hash output weaken it.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

pub struct Config {
    pub database_url: String,
    pub db_pool_size: usize,
    pub jwt_secret: Vec<u8>,
    pub jwt_ttl: Duration,
}

impl Config {
    /// Reads `DATABASE_URL`, `JWT_SECRET`, `JWT_TTL_SECONDS` (default 3600) and
    /// `DB_POOL_SIZE` (default 1 inside Lambda, where an environment serves one request at
    /// a time, else 16).
    pub fn from_env() -> Result<Self, ConfigError> {
        let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
        Ok(Self {
            database_url: database_url()?,
            db_pool_size: parsed("DB_POOL_SIZE", if in_lambda { 1 } else { 16 })?,
            jwt_secret: jwt_secret(required("JWT_SECRET")?)?,
            jwt_ttl: Duration::from_secs(parsed("JWT_TTL_SECONDS", 3600)?),
        })
    }
}

/// `DATABASE_URL` alone, for tools that only touch the database.
pub fn database_url() -> Result<String, ConfigError> {
    required("DATABASE_URL")
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Ok(value),
        _ => Err(ConfigError::Missing(name)),
    }
}

fn parsed<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) => raw.trim().parse().map_err(|err: T::Err| ConfigError::Invalid { name, reason: err.to_string() }),
        Err(_) => Ok(default),
    }
}

pub fn jwt_secret(secret: String) -> Result<Vec<u8>, ConfigError> {
    if secret.len() < MIN_JWT_SECRET_BYTES {
        return Err(ConfigError::Invalid {
            name: "JWT_SECRET",
            reason: format!(
                "it has {} bytes, at least {MIN_JWT_SECRET_BYTES} random bytes are required \
                 (e.g. `openssl rand -base64 48`)",
                secret.len()
            ),
        });
    }
    Ok(secret.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_jwt_secret_is_refused() {
        assert!(matches!(jwt_secret("x".repeat(31)), Err(ConfigError::Invalid { name: "JWT_SECRET", .. })));
        assert_eq!(jwt_secret("x".repeat(32)).map(|s| s.len()).ok(), Some(32));
    }
}
