//! Every setting of the store, typed, read from one place: an [`Env`] (the process
//! environment in production, a map in tests), through one set of parse helpers. A
//! missing or malformed value is an error naming the variable to fix.
//!
//! Layering: this module reads and validates; it builds nothing (no pool, no client: that
//! is `crate::resources`, from what a function needs). The Lambda bootstrap
//! (`crate::lambda`) and the local server decide *when* each piece is read: plain settings
//! at start-up, secret-backed ones on the first invocation, because the Secrets extension
//! (`secrets`) serves only in the INVOKE phase.
//!
//! - `secrets`: the Parameters and Secrets extension client;
//! - `database`: how to reach Postgres (a URL, or RDS Proxy's endpoint plus a secret);
//! - `jwt`: the token signing key and lifetime;
//! - `app`: what the HTTP functions' state needs ([`Config`]);
//! - `limits`: login and registration throttling;
//! - `admin`: the first admin, for `migrate`;
//! - `queue`, `mail`, `outbox`: the welcome-email pipeline (the email worker's own
//!   options read through [`parsed`] in its crate);
//! - `cors`, `telemetry`, `metrics`: the HTTP layer's CORS origins, the log format, and
//!   the namespace and service of the EMF metric lines.

mod admin;
mod app;
mod cors;
mod database;
mod jwt;
mod limits;
mod mail;
mod metrics;
mod outbox;
mod queue;
mod secrets;
mod telemetry;
#[cfg(test)]
mod test_env;

pub use admin::{AdminCredentials, admin_credentials};
pub use app::Config;
pub use cors::cors_allowed_origins;
pub use database::{
    ApplicationLogin, DatabaseSettings, DatabaseSource, MigrationDatabase, connection_string, database_url,
    migration_database,
};
pub use jwt::{JwtSettings, MIN_JWT_SECRET_BYTES, jwt_secret_bytes};
pub use limits::Limits;
pub use mail::{MailBackend, MailConfig};
pub use metrics::MetricsSettings;
pub use outbox::{RetentionConfig, SweepConfig};
pub use queue::{QueueConfig, max_attempts};
pub use secrets::{DEFAULT_EXTENSION_PORT, SecretsExtension};
pub use telemetry::LogSettings;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("cannot read secret {secret_id} through the Parameters and Secrets extension: {reason}")]
    Secret { secret_id: String, reason: String },
}

/// Where configuration values come from; [`ProcessEnv`] in production, a map in tests.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Whether this process runs as a Lambda function (the runtime sets the function name).
pub fn in_lambda(env: &impl Env) -> bool {
    env.get("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

/// `name` trimmed, or `None` when it is unset or blank.
pub fn optional(env: &impl Env, name: &str) -> Option<String> {
    env.get(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty())
}

/// `name` exactly as set (a secret or URL is not trimmed), or `None` when unset or blank.
pub fn verbatim(env: &impl Env, name: &str) -> Option<String> {
    env.get(name).filter(|value| !value.trim().is_empty())
}

/// `name` parsed, or `default` when it is unset or blank.
pub fn parsed<T: std::str::FromStr>(env: &impl Env, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match optional(env, name) {
        Some(raw) => raw.parse().map_err(|err: T::Err| ConfigError::Invalid { name, reason: err.to_string() }),
        None => Ok(default),
    }
}

/// A limit of zero would refuse everyone; a negative one does not parse as a limit.
pub fn positive<T: PartialOrd + Default>(name: &'static str, value: T) -> Result<T, ConfigError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid { name, reason: "must be at least 1".into() })
    }
}
