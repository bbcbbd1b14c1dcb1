//! Everything the HTTP functions' shared state is made of, in one value ([`Config`]): the
//! database, the JWT key, the pool size and the throttling limits. The Lambda bootstrap
//! reads only the parts a function needs (`crate::resources`); tests and tools take all.

use std::time::Duration;

use super::{ConfigError, DatabaseSettings, Env, JwtSettings, Limits, ProcessEnv, SecretsExtension};

/// The settings every HTTP function's state is built from.
pub struct Config {
    pub database_url: String,
    pub db_pool_size: usize,
    pub jwt_secret: Vec<u8>,
    pub jwt_ttl: Duration,
    pub limits: Limits,
}

impl Config {
    /// Reads the [`DatabaseSettings`], the [`JwtSettings`] and the [`Limits`].
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::load(&ProcessEnv).await
    }

    pub async fn load(env: &impl Env) -> Result<Self, ConfigError> {
        // Validate every plain variable before any network call, so a typo fails fast.
        let database = DatabaseSettings::from_env(env)?;
        let jwt = JwtSettings::from_env(env)?;
        let limits = Limits::from_env(env)?;
        let secrets = SecretsExtension::from_env(env)?;
        let jwt_ttl = jwt.ttl;
        Ok(Self {
            jwt_secret: jwt.key(&secrets).await?,
            database_url: database.source.resolve(&secrets).await?,
            db_pool_size: database.pool_size,
            jwt_ttl,
            limits,
        })
    }

    /// Checks every variable that needs no network call, so a missing or malformed one
    /// stops the process at start-up, and says whether loading needs the Secrets
    /// extension, whose endpoint is only served once the INVOKE phase has started (such a
    /// config is loaded on the first request).
    pub fn needs_extension(env: &impl Env) -> Result<bool, ConfigError> {
        Limits::from_env(env)?;
        SecretsExtension::from_env(env)?;
        let jwt = JwtSettings::from_env(env)?;
        let database = DatabaseSettings::from_env(env)?;
        Ok(jwt.needs_extension() || database.source.needs_extension())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DatabaseSource;
    use crate::config::test_env::{SECRET, env, fake_extension};

    #[tokio::test]
    async fn direct_values_need_no_extension() {
        let env =
            env(&[("DATABASE_URL", "postgres://u@127.0.0.1/db"), ("JWT_SECRET", SECRET), ("JWT_TTL_SECONDS", "60")]);
        assert_eq!(Config::needs_extension(&env).ok(), Some(false));
        let config = Config::load(&env).await.map_err(|e| e.to_string());
        let config = config.as_ref().map_err(String::as_str);
        assert_eq!(config.map(|c| c.database_url.as_str()), Ok("postgres://u@127.0.0.1/db"));
        assert_eq!(config.map(|c| c.jwt_ttl), Ok(Duration::from_secs(60)));
        assert_eq!(config.map(|c| c.db_pool_size), Ok(16));
    }

    #[tokio::test]
    async fn missing_and_weak_values_are_named() {
        let no_jwt = env(&[("DATABASE_URL", "postgres://u@h/db")]);
        let err = Config::load(&no_jwt).await.err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("JWT_SECRET (or JWT_SECRET_ARN) is not set"));

        let weak = env(&[("DATABASE_URL", "postgres://u@h/db"), ("JWT_SECRET", "short")]);
        assert!(matches!(Config::load(&weak).await, Err(ConfigError::Invalid { name: "JWT_SECRET", .. })));

        let no_db = env(&[("JWT_SECRET", SECRET)]);
        assert!(matches!(Config::load(&no_db).await, Err(ConfigError::Missing(_))));
        // Caught at start-up, before any secret is fetched.
        let no_db_name = env(&[("JWT_SECRET_ARN", "arn:x"), ("DB_HOST", "proxy"), ("DB_SECRET_ARN", "arn:y")]);
        assert!(matches!(Config::needs_extension(&no_db_name), Err(ConfigError::Missing("DB_NAME"))));

        let no_name = env(&[("DB_HOST", "proxy"), ("DB_SECRET_ARN", "arn:x")]);
        assert!(matches!(DatabaseSource::from_env(&no_name), Err(ConfigError::Missing("DB_NAME"))));

        let bad_mode = env(&[
            ("DB_HOST", "proxy"),
            ("DB_NAME", "gamestore"),
            ("DB_SECRET_ARN", "arn:x"),
            ("DB_SSLMODE", "verify-full"),
        ]);
        assert!(matches!(DatabaseSource::from_env(&bad_mode), Err(ConfigError::Invalid { name: "DB_SSLMODE", .. })));
    }

    #[tokio::test]
    async fn secrets_come_from_the_extension_with_the_session_token() {
        let (port, mut heads) = fake_extension(|head| {
            let body = if head.contains("secretId=jwt-arn") {
                serde_json::json!({ "Name": "jwt", "SecretString": SECRET })
            } else {
                serde_json::json!({ "SecretString": r#"{"username":"app","password":"p'w","engine":"postgres"}"# })
            };
            (200, body.to_string())
        })
        .await;
        let port = port.to_string();
        let env = env(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "login"),
            ("AWS_SESSION_TOKEN", "session-token"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port),
            ("JWT_SECRET_ARN", "jwt-arn"),
            ("DB_HOST", "proxy.example"),
            ("DB_NAME", "gamestore"),
            ("DB_SECRET_ARN", "db-arn"),
        ]);
        assert_eq!(Config::needs_extension(&env).ok(), Some(true));
        let config = Config::load(&env).await.map_err(|e| e.to_string());
        let config = config.as_ref().map_err(String::as_str);
        assert_eq!(config.map(|c| c.jwt_secret.as_slice()), Ok(SECRET.as_bytes()));
        assert_eq!(config.map(|c| c.db_pool_size), Ok(1));
        assert_eq!(
            config.map(|c| c.database_url.as_str()),
            Ok("host='proxy.example' port='5432' dbname='gamestore' user='app' password='p\\'w' sslmode='require'")
        );
        let mut seen = Vec::new();
        while let Ok(head) = heads.try_recv() {
            seen.push(head.to_ascii_lowercase());
        }
        assert_eq!(seen.len(), 2);
        for head in &seen {
            assert!(head.starts_with("get /secretsmanager/get?secretid="), "{head}");
            assert!(head.contains("x-aws-parameters-secrets-token: session-token"), "{head}");
        }
    }
}
