//! How to reach Postgres: `DATABASE_URL`, or in AWS RDS Proxy's endpoint (`DB_HOST`,
//! `DB_PORT` 5432, `DB_NAME`, `DB_SSLMODE` `require`) plus a credentials secret
//! (`DB_SECRET_ARN`, JSON `{"username","password"}`) read through the extension.
//!
//! Those are the application role's credentials, which every process serves requests
//! with. Only what migrates (`gamestore migrate` and `serve`'s start-up, the migrate
//! function) also reads the owner's: `OWNER_DATABASE_URL`, or `DB_OWNER_SECRET_ARN` beside
//! the same endpoint ([`migration_database`]).

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

/// What migrates connects with, and the login it gives the application role.
#[derive(Debug)]
pub struct MigrationDatabase {
    /// The owner's connection string.
    pub owner_url: String,
    /// The application's credentials, when they differ from the owner's; `None` when
    /// only one set is configured, and every process connects as the owner.
    pub application: Option<ApplicationLogin>,
}

/// The user and password the application connects with, which `migrate` sets up.
pub struct ApplicationLogin {
    pub user: String,
    /// `None` when the URL carries none (a local cluster with trust authentication).
    pub password: Option<String>,
}

impl std::fmt::Debug for ApplicationLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicationLogin").field("user", &self.user).finish_non_exhaustive()
    }
}

/// The owner's connection and the application's login, for `migrate`: the owner is
/// `OWNER_DATABASE_URL`, or `DB_OWNER_SECRET_ARN` at `DB_HOST`; without either, the one
/// configured database (`DATABASE_URL` or `DB_SECRET_ARN`) is the owner and no login is set.
pub async fn migration_database(env: &impl Env) -> Result<MigrationDatabase, ConfigError> {
    let application = DatabaseSource::from_env(env)?;
    let owner = match (verbatim(env, "OWNER_DATABASE_URL"), verbatim(env, "DB_OWNER_SECRET_ARN"), &application) {
        (Some(url), _, _) => Some(DatabaseSource::Url(url)),
        (None, Some(secret_arn), DatabaseSource::Parts { host, port, dbname, sslmode, .. }) => {
            Some(DatabaseSource::Parts {
                host: host.clone(),
                port: *port,
                dbname: dbname.clone(),
                sslmode: sslmode.clone(),
                secret_arn,
            })
        }
        (None, Some(_), DatabaseSource::Url(_)) => {
            return Err(ConfigError::Missing("OWNER_DATABASE_URL (DB_OWNER_SECRET_ARN goes with DB_HOST)"));
        }
        (None, None, _) => None,
    };
    let secrets = || SecretsExtension::from_env(env);
    match owner {
        None => Ok(MigrationDatabase { owner_url: application.resolve(&secrets()?).await?, application: None }),
        Some(owner) => {
            let owner_url = owner.resolve(&secrets()?).await?;
            let application = application.login(&secrets()?).await?;
            Ok(MigrationDatabase { owner_url, application: Some(application) })
        }
    }
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

    /// The user and password this source logs in with.
    async fn login(&self, secrets: &SecretsExtension) -> Result<ApplicationLogin, ConfigError> {
        match self {
            Self::Url(url) => {
                let config: tokio_postgres::Config = url.parse().map_err(|err| ConfigError::Invalid {
                    name: "DATABASE_URL",
                    reason: format!("not a PostgreSQL connection string: {err}"),
                })?;
                let user = config.get_user().ok_or(ConfigError::Invalid {
                    name: "DATABASE_URL",
                    reason: "names no user, which migrate must let log in".to_owned(),
                })?;
                let password = config.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
                Ok(ApplicationLogin { user: user.to_owned(), password })
            }
            Self::Parts { secret_arn, .. } => {
                let creds = credentials(secrets, secret_arn).await?;
                Ok(ApplicationLogin { user: creds.username, password: Some(creds.password) })
            }
        }
    }

    /// The connection string, with the credentials fetched when they live in a secret.
    pub async fn resolve(self, secrets: &SecretsExtension) -> Result<String, ConfigError> {
        match self {
            Self::Url(url) => Ok(url),
            Self::Parts { host, port, dbname, sslmode, secret_arn } => {
                let creds = credentials(secrets, &secret_arn).await?;
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

async fn credentials(secrets: &SecretsExtension, secret_arn: &str) -> Result<DbCredentials, ConfigError> {
    let raw = secrets.get(secret_arn).await?;
    serde_json::from_str(&raw).map_err(|err| ConfigError::Secret {
        secret_id: secret_arn.to_owned(),
        reason: format!("expected JSON with \"username\" and \"password\": {err}"),
    })
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

    #[tokio::test]
    async fn migrate_connects_as_the_owner_and_sets_up_the_application_login() {
        let app = "postgres://gamestore_app:s3cret@127.0.0.1:5433/gamestore";
        let owner = "postgres://postgres@127.0.0.1:5433/gamestore";
        let both = env(&[("DATABASE_URL", app), ("OWNER_DATABASE_URL", owner)]);
        let target = migration_database(&both).await.ok();
        assert_eq!(target.as_ref().map(|t| t.owner_url.as_str()), Some(owner));
        let login = target.as_ref().and_then(|t| t.application.as_ref());
        assert_eq!(login.map(|l| l.user.as_str()), Some("gamestore_app"));
        assert_eq!(login.and_then(|l| l.password.as_deref()), Some("s3cret"));

        // One database setting: everything is the owner, as before the application role.
        let one = env(&[("DATABASE_URL", owner)]);
        let target = migration_database(&one).await.ok();
        assert!(target.is_some_and(|t| t.owner_url == owner && t.application.is_none()));

        // The owner's secret goes with the proxy's endpoint, not with a URL.
        let mixed = env(&[("DATABASE_URL", app), ("DB_OWNER_SECRET_ARN", "arn:owner")]);
        assert!(migration_database(&mixed).await.is_err());
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
