//! Which mailer the email worker sends with ([`MailConfig`]).

use std::path::PathBuf;

use super::{ConfigError, Env, in_lambda, optional};

/// Which mailer, and its settings.
#[derive(Debug, Clone)]
pub struct MailConfig {
    pub backend: MailBackend,
    /// The sender (`MAIL_FROM`); SES needs it verified.
    pub from: String,
}

#[derive(Debug, Clone)]
pub enum MailBackend {
    /// Logs each mail; with a file, also appends it there as one JSON line.
    Log {
        file: Option<PathBuf>,
    },
    Ses,
}

impl MailConfig {
    pub const DEFAULT_FROM: &str = "welcome@gamestore.example";
}

impl MailConfig {
    /// `MAILER` = `log` or `ses` (default: `ses` on Lambda, `log` elsewhere); `MAIL_FROM`
    /// (default `welcome@gamestore.example`); `MAIL_LOG`, a file the log mailer appends to.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let default = if in_lambda(env) { "ses" } else { "log" };
        let backend = match optional(env, "MAILER").as_deref().unwrap_or(default) {
            "log" => MailBackend::Log { file: optional(env, "MAIL_LOG").map(PathBuf::from) },
            "ses" => MailBackend::Ses,
            other => {
                return Err(ConfigError::Invalid {
                    name: "MAILER",
                    reason: format!("{other:?} is neither `log` nor `ses`"),
                });
            }
        };
        Ok(Self { backend, from: optional(env, "MAIL_FROM").unwrap_or_else(|| Self::DEFAULT_FROM.to_owned()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env::env;

    #[test]
    fn the_mailer_defaults_to_ses_only_in_lambda() {
        let local = MailConfig::from_env(&env(&[])).ok();
        assert!(matches!(local.map(|c| c.backend), Some(MailBackend::Log { file: None })));
        let lambda = MailConfig::from_env(&env(&[("AWS_LAMBDA_FUNCTION_NAME", "worker")])).ok();
        assert!(matches!(lambda.as_ref().map(|c| &c.backend), Some(MailBackend::Ses)));
        assert_eq!(lambda.map(|c| c.from).as_deref(), Some(MailConfig::DEFAULT_FROM));
        let bad = MailConfig::from_env(&env(&[("MAILER", "smtp")]));
        assert!(matches!(bad, Err(ConfigError::Invalid { name: "MAILER", .. })));
    }
}
