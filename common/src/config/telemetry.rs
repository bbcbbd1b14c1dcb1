//! How logs are written (`crate::telemetry` installs the subscriber).

use super::Env;

/// The log level and format one process asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// A level name (`info`, `debug`, ...); `None` leaves the default.
    pub level: Option<String>,
    /// JSON lines instead of human-readable text.
    pub json: bool,
}

impl LogSettings {
    /// In Lambda, as `lambda_runtime::tracing` reads them: `AWS_LAMBDA_LOG_LEVEL`, else
    /// `RUST_LOG`; JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`.
    pub fn lambda(env: &impl Env) -> Self {
        Self {
            level: env.get("AWS_LAMBDA_LOG_LEVEL").or_else(|| env.get("RUST_LOG")),
            json: env.get("AWS_LAMBDA_LOG_FORMAT").is_some_and(|format| format.eq_ignore_ascii_case("json")),
        }
    }

    /// Locally: JSON when `LOG_FORMAT=json` (`RUST_LOG` is read by the filter itself).
    pub fn local(env: &impl Env) -> Self {
        Self { level: None, json: env.get("LOG_FORMAT").is_some_and(|format| format.eq_ignore_ascii_case("json")) }
    }
}
