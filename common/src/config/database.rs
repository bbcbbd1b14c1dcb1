//! How to reach Postgres: `DATABASE_URL`, or in AWS RDS Proxy's endpoint (`DB_HOST`,
//! `DB_PORT` 5432, `DB_NAME`, `DB_SSLMODE` `require`) plus a credentials secret
//! (`DB_SECRET_ARN`, JSON `{"username","password"}`) read through the extension.

use serde::Deserialize;

use super::{ConfigError, Env, SecretsExtension, in_lambda, parsed, verbatim};

/// Where the pool connects and how many connections it may hold, read without any
/// network call.
#[derive(Debug)]
pub struct DatabaseSettings {
    pub source: DatabaseSource,
    /// `DB_POOL_SIZE`: default 1 inside Lambda, where an environment serves one request at
    /// a time, else 16.
    pub pool_size: usize,
}

impl DatabaseSettings {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let pool_size = parsed(env, "DB_POOL_SIZE", if in_lambda(env) { 1 } else { 16 })?;
        Ok(Self { source: DatabaseSource::from_env(env)?, pool_size })
    }
}

/// The database URL alone, for what only touches the database (`gamestore migrate`, the
/// migrate function, the email worker, the sweeper): `DATABASE_URL`, or built from its
/// parts and `DB_SECRET_ARN`.
pub async fn database_url(env: &impl Env) -> Result<String, ConfigError> {
    let source = DatabaseSource::from_env(env)?;
    source.resolve(&SecretsExtension::from_env(env)?).await
}

/// How to reach Postgres: a full URL, or RDS Proxy's endpoint plus a credentials secret.
#[derive(Debug, PartialEq)]
pub enum DatabaseSource {
    Url(String),
    Parts { host: String, port: u16, dbname: String, sslmode: String, secret_arn: String },
}

/// The credentials secret as RDS and `GenerateSecretString` store it (other keys, such as
/// `host` added by a target attachment, are ignored: the host comes from `DB_HOST`).
#[derive(Deserialize)]
struct DbCredentials {
    username: String,
    password: String,
}

impl DatabaseSource {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        if let Some(url) = verbatim(env, "DATABASE_URL") {
            return Ok(Self::Url(url));
        }
        let Some(host) = verbatim(env, "DB_HOST") else {
            return Err(ConfigError::Missing("DATABASE_URL (or DB_HOST, DB_NAME and DB_SECRET_ARN)"));
        };
        let sslmode = verbatim(env, "DB_SSLMODE").unwrap_or_else(|| "require".to_owned());
        if !matches!(sslmode.as_str(), "disable" | "prefer" | "require") {
            return Err(ConfigError::Invalid {
                name: "DB_SSLMODE",
                reason: format!("{sslmode:?} is not one of disable, prefer, require"),
            });
        }
        Ok(Self::Parts {
            host,
            port: parsed(env, "DB_PORT", 5432)?,
            dbname: verbatim(env, "DB_NAME").ok_or(ConfigError::Missing("DB_NAME"))?,
            sslmode,
            secret_arn: verbatim(env, "DB_SECRET_ARN").ok_or(ConfigError::Missing("DB_SECRET_ARN"))?,
        })
    }

    /// Whether the credentials come through the Secrets extension (served only in INVOKE).
    pub fn needs_extension(&self) -> bool {
        matches!(self, Self::Parts { .. })
    }

    /// The connection string, with the credentials fetched when they live in a secret.
    pub async fn resolve(self, secrets: &SecretsExtension) -> Result<String, ConfigError> {
        match self {
            Self::Url(url) => Ok(url),
            Self::Parts { host, port, dbname, sslmode, secret_arn } => {
                let raw = secrets.get(&secret_arn).await?;
                let creds: DbCredentials = serde_json::from_str(&raw).map_err(|err| ConfigError::Secret {
                    secret_id: secret_arn.clone(),
                    reason: format!("expected JSON with \"username\" and \"password\": {err}"),
                })?;
                Ok(connection_string(&[
                    ("host", &host),
                    ("port", &port.to_string()),
                    ("dbname", &dbname),
                    ("user", &creds.username),
                    ("password", &creds.password),
                    ("sslmode", &sslmode),
                ]))
            }
        }
    }
}

/// A libpq key/value connection string. Values are single-quoted with `\` and `'`
/// escaped, so a generated password needs no URL percent-encoding.
pub fn connection_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(key, value)| {
            let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
            format!("{key}='{escaped}'")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::test_env::env;

    #[test]
    fn database_parts_default_to_tls_and_port_5432() {
        let env = env(&[
            ("DB_HOST", "proxy.example"),
            ("DB_NAME", "gamestore"),
            ("DB_SECRET_ARN", "arn:aws:secretsmanager:eu-west-1:1:secret:db"),
        ]);
        assert_eq!(
            DatabaseSource::from_env(&env).ok(),
            Some(DatabaseSource::Parts {
                host: "proxy.example".into(),
                port: 5432,
                dbname: "gamestore".into(),
                sslmode: "require".into(),
                secret_arn: "arn:aws:secretsmanager:eu-west-1:1:secret:db".into(),
            })
        );
    }

    #[test]
    fn connection_string_escapes_quotes_and_backslashes() {
        let s = connection_string(&[("user", "app"), ("password", r"a'b\c d")]);
        assert_eq!(s, r"user='app' password='a\'b\\c d'");
        // The escaped form parses back to the same password.
        let parsed = s.parse::<tokio_postgres::Config>().ok();
        assert_eq!(parsed.as_ref().and_then(|c| c.get_password()), Some(&br"a'b\c d"[..]));
        assert_eq!(parsed.as_ref().and_then(|c| c.get_user()), Some("app"));
    }
}
