//! Typed configuration, read once from the environment at start-up. A missing or weak
//! value stops the process with a message saying which variable to fix.
//!
//! Secrets come either straight from the environment (local runs, tests) or, in AWS, from
//! Secrets Manager through the "AWS Parameters and Secrets Lambda Extension" layer: a
//! local HTTP cache on `localhost:2773`. Going through the extension keeps the AWS SDK (and
//! its TLS stack and credential chain) out of every function that does not otherwise call
//! AWS, which is what keeps their cold starts in single-digit milliseconds.
//!
//! | value | direct | from Secrets Manager |
//! |---|---|---|
//! | JWT secret | `JWT_SECRET` | `JWT_SECRET_ARN` (the whole `SecretString`) |
//! | database | `DATABASE_URL` | `DB_HOST`, `DB_PORT` (5432), `DB_NAME`, `DB_SSLMODE` (`require`) + `DB_SECRET_ARN` (JSON `{"username","password"}`) |

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("cannot read secret {secret_id} through the Parameters and Secrets extension: {reason}")]
    Secret { secret_id: String, reason: String },
}

/// Smallest accepted HMAC secret: HS256 keys shorter than the hash output weaken it.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The extension's default port (`PARAMETERS_SECRETS_EXTENSION_HTTP_PORT` overrides it).
pub const DEFAULT_EXTENSION_PORT: u16 = 2773;

pub struct Config {
    pub database_url: String,
    pub db_pool_size: usize,
    pub jwt_secret: Vec<u8>,
    pub jwt_ttl: Duration,
    pub limits: Limits,
}

/// How login attempts and registrations are throttled (README, "Login throttling and
/// lockout" and "Registration limits"). Every value has an environment variable, so a
/// test or contract run can raise them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// `LOGIN_WINDOW_SECONDS` (900): the window every login counter counts in.
    pub login_window: Duration,
    /// `LOGIN_MAX_FAILURES_PER_PAIR` (5): attempts of one account from one network.
    pub login_per_pair: i32,
    /// `LOGIN_MAX_FAILURES_PER_NETWORK` (100): failures from one network, any accounts.
    pub login_per_network: i32,
    /// `LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY` (10): failures of one account, any networks,
    /// before each further attempt waits a delay.
    pub login_per_account: i32,
    /// `LOGIN_ACCOUNT_DELAY_SECONDS` (1): the first delay, doubled by each further attempt.
    pub login_account_delay: Duration,
    /// `LOGIN_ACCOUNT_MAX_DELAY_SECONDS` (60): the longest delay.
    pub login_account_max_delay: Duration,
    /// `REGISTER_WINDOW_SECONDS` (3600): the window registrations are counted in.
    pub register_window: Duration,
    /// `REGISTER_MAX_PER_NETWORK` (10): registrations from one network in that window.
    pub register_per_network: i32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            login_window: Duration::from_secs(15 * 60),
            login_per_pair: 5,
            login_per_network: 100,
            login_per_account: 10,
            login_account_delay: Duration::from_secs(1),
            login_account_max_delay: Duration::from_secs(60),
            register_window: Duration::from_secs(3600),
            register_per_network: 10,
        }
    }
}

impl Limits {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let default = Self::default();
        let seconds =
            |name, default: Duration| positive(name, parsed(env, name, default.as_secs())?).map(Duration::from_secs);
        let count = |name, default| positive(name, parsed(env, name, default)?);
        Ok(Self {
            login_window: seconds("LOGIN_WINDOW_SECONDS", default.login_window)?,
            login_per_pair: count("LOGIN_MAX_FAILURES_PER_PAIR", default.login_per_pair)?,
            login_per_network: count("LOGIN_MAX_FAILURES_PER_NETWORK", default.login_per_network)?,
            login_per_account: count("LOGIN_ACCOUNT_FAILURES_BEFORE_DELAY", default.login_per_account)?,
            login_account_delay: seconds("LOGIN_ACCOUNT_DELAY_SECONDS", default.login_account_delay)?,
            login_account_max_delay: seconds("LOGIN_ACCOUNT_MAX_DELAY_SECONDS", default.login_account_max_delay)?,
            register_window: seconds("REGISTER_WINDOW_SECONDS", default.register_window)?,
            register_per_network: count("REGISTER_MAX_PER_NETWORK", default.register_per_network)?,
        })
    }
}

/// A limit of zero would refuse everyone; a negative one does not parse as a limit.
fn positive<T: PartialOrd + Default>(name: &'static str, value: T) -> Result<T, ConfigError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(ConfigError::Invalid { name, reason: "must be at least 1".into() })
    }
}

/// Where configuration values come from; [`Env::process`] in production, a map in tests.
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

impl Config {
    /// Reads `DATABASE_URL` (or its parts, see the module docs), `JWT_SECRET` (or
    /// `JWT_SECRET_ARN`), `JWT_TTL_SECONDS` (default 3600), `DB_POOL_SIZE` (default 1
    /// inside Lambda, where an environment serves one request at a time, else 16) and the
    /// [`Limits`].
    pub async fn from_env() -> Result<Self, ConfigError> {
        Self::load(&ProcessEnv).await
    }

    pub async fn load(env: &impl Env) -> Result<Self, ConfigError> {
        let in_lambda = env.get("AWS_LAMBDA_FUNCTION_NAME").is_some();
        // Validate every plain variable before any network call, so a typo fails fast.
        let db_pool_size = parsed(env, "DB_POOL_SIZE", if in_lambda { 1 } else { 16 })?;
        let jwt_ttl = Duration::from_secs(parsed(env, "JWT_TTL_SECONDS", 3600)?);
        let limits = Limits::from_env(env)?;
        let jwt_source = jwt_source(env)?;
        let db_source = DatabaseSource::from_env(env)?;
        let secrets = SecretsExtension::from_env(env)?;
        let jwt_secret = match jwt_source {
            Source::Direct(secret) => secret,
            Source::Secret(arn) => secrets.get(&arn).await?,
        };
        Ok(Self {
            database_url: db_source.resolve(&secrets).await?,
            db_pool_size,
            jwt_secret: jwt_secret_bytes(jwt_secret)?,
            jwt_ttl,
            limits,
        })
    }

    /// Checks every variable that needs no network call, so a missing or malformed one
    /// stops the process at start-up, and says whether loading needs the Secrets
    /// extension, whose endpoint is only served once the INVOKE phase has started (such a
    /// config is loaded on the first request).
    pub fn needs_extension(env: &impl Env) -> Result<bool, ConfigError> {
        parsed::<usize>(env, "DB_POOL_SIZE", 1)?;
        parsed::<u64>(env, "JWT_TTL_SECONDS", 3600)?;
        Limits::from_env(env)?;
        SecretsExtension::from_env(env)?;
        let jwt = jwt_source(env)?;
        let db = DatabaseSource::from_env(env)?;
        Ok(matches!(jwt, Source::Secret(_)) || matches!(db, DatabaseSource::Parts { .. }))
    }
}

/// The database URL alone, for tools that only touch the database (`gamestore migrate`,
/// the migrate function): `DATABASE_URL`, or built from its parts and `DB_SECRET_ARN`.
pub async fn database_url() -> Result<String, ConfigError> {
    let env = ProcessEnv;
    let source = DatabaseSource::from_env(&env)?;
    source.resolve(&SecretsExtension::from_env(&env)?).await
}

/// The first admin's account, for `migrate` (the Lambda and `gamestore migrate`).
#[derive(Deserialize)]
pub struct AdminCredentials {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials").field("email", &self.email).field("password", &"<redacted>").finish()
    }
}

/// `ADMIN_SECRET_ARN` (a secret holding `{"email","password"}`, read through the
/// extension), else `ADMIN_EMAIL` + `ADMIN_PASSWORD`; `None` when neither is set.
pub async fn admin_credentials(env: &impl Env) -> Result<Option<AdminCredentials>, ConfigError> {
    if let Some(arn) = non_empty(env, "ADMIN_SECRET_ARN") {
        let raw = SecretsExtension::from_env(env)?.get(&arn).await?;
        return serde_json::from_str(&raw).map(Some).map_err(|err| ConfigError::Secret {
            secret_id: arn,
            reason: format!("expected JSON with \"email\" and \"password\": {err}"),
        });
    }
    match (non_empty(env, "ADMIN_EMAIL"), non_empty(env, "ADMIN_PASSWORD")) {
        (Some(email), Some(password)) => Ok(Some(AdminCredentials { email, password })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::Missing("ADMIN_PASSWORD (ADMIN_EMAIL is set)")),
        (None, Some(_)) => Err(ConfigError::Missing("ADMIN_EMAIL (ADMIN_PASSWORD is set)")),
    }
}

enum Source {
    Direct(String),
    Secret(String),
}

fn jwt_source(env: &impl Env) -> Result<Source, ConfigError> {
    if let Some(secret) = non_empty(env, "JWT_SECRET") {
        // Checked here too so that a weak secret fails before any network call.
        jwt_secret_bytes(secret.clone())?;
        return Ok(Source::Direct(secret));
    }
    match non_empty(env, "JWT_SECRET_ARN") {
        Some(arn) => Ok(Source::Secret(arn)),
        None => Err(ConfigError::Missing("JWT_SECRET (or JWT_SECRET_ARN)")),
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
        if let Some(url) = non_empty(env, "DATABASE_URL") {
            return Ok(Self::Url(url));
        }
        let Some(host) = non_empty(env, "DB_HOST") else {
            return Err(ConfigError::Missing("DATABASE_URL (or DB_HOST, DB_NAME and DB_SECRET_ARN)"));
        };
        let sslmode = non_empty(env, "DB_SSLMODE").unwrap_or_else(|| "require".to_owned());
        if !matches!(sslmode.as_str(), "disable" | "prefer" | "require") {
            return Err(ConfigError::Invalid {
                name: "DB_SSLMODE",
                reason: format!("{sslmode:?} is not one of disable, prefer, require"),
            });
        }
        Ok(Self::Parts {
            host,
            port: parsed(env, "DB_PORT", 5432)?,
            dbname: non_empty(env, "DB_NAME").ok_or(ConfigError::Missing("DB_NAME"))?,
            sslmode,
            secret_arn: non_empty(env, "DB_SECRET_ARN").ok_or(ConfigError::Missing("DB_SECRET_ARN"))?,
        })
    }

    async fn resolve(self, secrets: &SecretsExtension) -> Result<String, ConfigError> {
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

/// Client of the Parameters and Secrets Lambda Extension's local HTTP cache.
pub struct SecretsExtension {
    port: u16,
    /// The extension authenticates callers with the function's session token.
    token: Option<String>,
}

#[derive(Deserialize)]
struct SecretValue {
    #[serde(rename = "SecretString")]
    secret_string: Option<String>,
}

/// Attempts while the extension is not serving yet (connection refused, or its
/// "not ready" 400): it starts alongside the function, not before it.
const EXTENSION_ATTEMPTS: u32 = 20;
const EXTENSION_RETRY_DELAY: Duration = Duration::from_millis(50);
const EXTENSION_TIMEOUT: Duration = Duration::from_secs(5);

impl SecretsExtension {
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        Ok(Self {
            port: parsed(env, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", DEFAULT_EXTENSION_PORT)?,
            token: non_empty(env, "AWS_SESSION_TOKEN"),
        })
    }

    /// `SecretString` of the secret `secret_id` (an ARN or name).
    pub async fn get(&self, secret_id: &str) -> Result<String, ConfigError> {
        let fail = |reason: String| ConfigError::Secret { secret_id: secret_id.to_owned(), reason };
        let token = self
            .token
            .as_deref()
            .ok_or_else(|| fail("AWS_SESSION_TOKEN is not set (is this running in Lambda?)".into()))?;
        let uri = format!("http://127.0.0.1:{}/secretsmanager/get?secretId={}", self.port, query_escape(secret_id));
        let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let mut last = String::new();
        for attempt in 1..=EXTENSION_ATTEMPTS {
            if attempt > 1 {
                tokio::time::sleep(EXTENSION_RETRY_DELAY).await;
            }
            let request = http::Request::get(&uri)
                .header("X-Aws-Parameters-Secrets-Token", token)
                .body(Empty::new())
                .map_err(|err| fail(err.to_string()))?;
            let response = match tokio::time::timeout(EXTENSION_TIMEOUT, client.request(request)).await {
                Ok(Ok(response)) => response,
                Ok(Err(err)) if err.is_connect() => {
                    last = format!("cannot connect to 127.0.0.1:{}: {err}", self.port);
                    continue;
                }
                Ok(Err(err)) => return Err(fail(err.to_string())),
                Err(_) => return Err(fail(format!("no answer within {EXTENSION_TIMEOUT:?}"))),
            };
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|err| fail(err.to_string()))?.to_bytes();
            if status.is_success() {
                let value: SecretValue = serde_json::from_slice(&body).map_err(|err| fail(err.to_string()))?;
                return value
                    .secret_string
                    .ok_or_else(|| fail("the secret has no SecretString (binary secrets are not supported)".into()));
            }
            // The body may say why (access denied, not found); it never holds the secret.
            last = format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim());
            if !(status.is_server_error() || String::from_utf8_lossy(&body).contains("not ready")) {
                break;
            }
        }
        Err(fail(last))
    }
}

/// Percent-encodes everything outside the URL "unreserved" set (ARNs contain `:` and `/`).
fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn non_empty(env: &impl Env, name: &str) -> Option<String> {
    env.get(name).filter(|value| !value.trim().is_empty())
}

fn parsed<T: std::str::FromStr>(env: &impl Env, name: &'static str, default: T) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env.get(name) {
        Some(raw) => raw.trim().parse().map_err(|err: T::Err| ConfigError::Invalid { name, reason: err.to_string() }),
        None => Ok(default),
    }
}

pub fn jwt_secret_bytes(secret: String) -> Result<Vec<u8>, ConfigError> {
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
    use std::collections::HashMap;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Env + use<> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name: &str| map.get(name).cloned()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn limits_have_defaults_and_come_from_the_environment() {
        assert_eq!(Limits::from_env(&env(&[])).ok(), Some(Limits::default()));
        let raised = Limits::from_env(&env(&[("REGISTER_MAX_PER_NETWORK", "500"), ("LOGIN_WINDOW_SECONDS", "60")]));
        assert_eq!(
            raised.ok().map(|l| (l.register_per_network, l.login_window, l.login_per_pair)),
            Some((500, Duration::from_secs(60), 5))
        );
        for (name, value) in
            [("LOGIN_MAX_FAILURES_PER_PAIR", "0"), ("REGISTER_MAX_PER_NETWORK", "-1"), ("LOGIN_WINDOW_SECONDS", "soon")]
        {
            let refused = Limits::from_env(&env(&[(name, value)]));
            assert!(matches!(refused, Err(ConfigError::Invalid { name: n, .. }) if n == name), "{name}={value}");
        }
    }

    #[test]
    fn short_jwt_secret_is_refused() {
        assert!(matches!(jwt_secret_bytes("x".repeat(31)), Err(ConfigError::Invalid { name: "JWT_SECRET", .. })));
        assert_eq!(jwt_secret_bytes("x".repeat(32)).map(|s| s.len()).ok(), Some(32));
    }

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

    #[tokio::test]
    async fn admin_credentials_from_env_or_secret() {
        let none = admin_credentials(&env(&[])).await.map(|a| a.is_none()).ok();
        assert_eq!(none, Some(true));
        let half = admin_credentials(&env(&[("ADMIN_EMAIL", "a@b.c")])).await;
        assert!(matches!(half, Err(ConfigError::Missing(_))));
        let both = admin_credentials(&env(&[("ADMIN_EMAIL", "a@b.c"), ("ADMIN_PASSWORD", "pw")])).await;
        let both = both.ok().flatten();
        assert_eq!(both.as_ref().map(|a| (a.email.as_str(), a.password.as_str())), Some(("a@b.c", "pw")));
        assert!(!format!("{both:?}").contains("pw\""), "Debug must not print the password");

        let (port, _heads) = fake_extension(|_| {
            let secret = r#"{"email":"root@example.com","password":"from the secret"}"#;
            (200, serde_json::json!({ "SecretString": secret }).to_string())
        })
        .await;
        let port = port.to_string();
        let from_secret = admin_credentials(&env(&[
            ("ADMIN_SECRET_ARN", "admin-arn"),
            ("ADMIN_EMAIL", "ignored@example.com"),
            ("AWS_SESSION_TOKEN", "t"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port),
        ]))
        .await
        .ok()
        .flatten();
        assert_eq!(
            from_secret.map(|a| (a.email, a.password)),
            Some(("root@example.com".into(), "from the secret".into()))
        );
    }

    #[test]
    fn query_escape_encodes_arn_separators() {
        assert_eq!(
            query_escape("arn:aws:secretsmanager:eu-west-1:1:secret:a/b+c"),
            "arn%3Aaws%3Asecretsmanager%3Aeu-west-1%3A1%3Asecret%3Aa%2Fb%2Bc"
        );
    }

    /// A fake extension: answers each connection with the response `respond` picks for
    /// the request head it read, and records every head.
    async fn fake_extension(
        respond: impl Fn(&str) -> (u16, String) + Send + Sync + 'static,
    ) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string());
        let listener = match listener {
            Ok(listener) => listener,
            Err(err) => panic!("bind: {err}"),
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let (status, body) = respond(&head);
                let _ = tx.send(head);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        (port, rx)
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

    #[tokio::test]
    async fn extension_errors_are_reported_and_not_ready_is_retried() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let (port, _heads) = fake_extension(move |head| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if n == 0 {
                (400, "not ready to serve traffic, please wait".into())
            } else if head.contains("secretId=missing") {
                (400, r#"{"message":"ResourceNotFoundException"}"#.into())
            } else {
                (200, serde_json::json!({ "SecretString": "value" }).to_string())
            }
        })
        .await;
        let port = port.to_string();
        let ext = SecretsExtension::from_env(&env(&[
            ("AWS_SESSION_TOKEN", "t"),
            ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port),
        ]));
        let ext = match ext {
            Ok(ext) => ext,
            Err(err) => panic!("{err}"),
        };
        assert_eq!(ext.get("present").await.ok().as_deref(), Some("value"));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        let err = ext.get("missing").await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("ResourceNotFoundException"), "{err}");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3, "a 4xx is not retried");

        let no_token = SecretsExtension::from_env(&env(&[("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", &port)]));
        let err = match no_token {
            Ok(ext) => ext.get("present").await.err().map(|e| e.to_string()),
            Err(err) => Some(err.to_string()),
        };
        assert!(err.is_some_and(|e| e.contains("AWS_SESSION_TOKEN")));
    }
}
