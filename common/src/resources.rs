//! What a process builds from its configuration, once: the database pool, the JWT key, the
//! queue publisher, the mailer. Each function says which it [`Needs`]; nothing else is
//! read, fetched or opened, so `openapi` loads no secret and opens no pool, and a function
//! is granted only the secrets it asks for.
//!
//! Two steps, because the Secrets extension serves only in the INVOKE phase:
//! [`Needs::check`] reads every plain setting at start-up (a typo stops the process there)
//! and says whether building must wait for the first invocation; [`Resources::build`]
//! then fetches the secrets and builds the clients. `crate::lambda` runs both for every
//! Lambda; the local server calls [`Resources::build`] directly.

use std::sync::Arc;

use crate::db::Pool;

use crate::auth::Jwt;
use crate::config::{
    ConfigError, DatabaseSettings, Env, JwtSettings, Limits, MailConfig, QueueConfig, SecretsExtension,
};
use crate::db;
use crate::mail::{self, Mailer};
use crate::queue::{self, Publisher};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What one function uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// A database pool (and the throttling limits, whose counters live there).
    pub database: bool,
    /// The key that signs and verifies tokens.
    pub jwt: bool,
    /// A publisher to the welcome-email queue.
    pub queue: QueueNeed,
    /// A mailer.
    pub mailer: bool,
}

/// Whether a function publishes to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueNeed {
    #[default]
    No,
    /// When `QUEUE_URL` is set; otherwise messages wait in the outbox for the sweeper.
    IfConfigured,
    /// `QUEUE_URL` must be set.
    Required,
}

impl Needs {
    /// Nothing: no setting read, no secret fetched.
    pub const NOTHING: Self = Self { database: false, jwt: false, queue: QueueNeed::No, mailer: false };
    /// A database pool.
    pub const DATABASE: Self = Self { database: true, ..Self::NOTHING };

    /// These needs and the JWT key.
    pub const fn jwt(self) -> Self {
        Self { jwt: true, ..self }
    }

    /// These needs and a queue publisher, `queue` says how strictly.
    pub const fn queue(self, queue: QueueNeed) -> Self {
        Self { queue, ..self }
    }

    /// These needs and a mailer.
    pub const fn mailer(self) -> Self {
        Self { mailer: true, ..self }
    }

    /// Whether these needs ask for everything `other` asks for (a `const fn`, so that
    /// [`crate::lambda::HttpFunction`] checks it when the crate compiles).
    pub const fn covers(self, other: Self) -> bool {
        let queue = match (self.queue, other.queue) {
            (_, QueueNeed::No) | (QueueNeed::Required, _) => true,
            (QueueNeed::IfConfigured, QueueNeed::IfConfigured) => true,
            (QueueNeed::No | QueueNeed::IfConfigured, _) => false,
        };
        (self.database || !other.database) && (self.jwt || !other.jwt) && (self.mailer || !other.mailer) && queue
    }

    /// Reads every setting these needs use that takes no network call, so a missing or
    /// malformed one is reported at start-up; `true` when [`Resources::build`] must fetch
    /// a secret through the extension, and so must wait for the first invocation.
    pub fn check(self, env: &impl Env) -> Result<bool, ConfigError> {
        let mut needs_extension = false;
        if self.database {
            Limits::from_env(env)?;
            needs_extension |= DatabaseSettings::from_env(env)?.source.needs_extension();
        }
        if self.jwt {
            needs_extension |= JwtSettings::from_env(env)?.needs_extension();
        }
        if needs_extension {
            SecretsExtension::from_env(env)?;
        }
        self.queue_config(env)?;
        if self.mailer {
            MailConfig::from_env(env)?;
        }
        Ok(needs_extension)
    }

    fn queue_config(self, env: &impl Env) -> Result<Option<QueueConfig>, ConfigError> {
        match self.queue {
            QueueNeed::No => Ok(None),
            QueueNeed::IfConfigured => QueueConfig::from_env(env),
            QueueNeed::Required => QueueConfig::required(env).map(Some),
        }
    }
}

/// What [`Needs`] asked for, built.
#[derive(Clone, Default)]
pub struct Resources {
    pub db: Option<Pool>,
    pub jwt: Option<Arc<Jwt>>,
    /// The defaults unless the database was asked for.
    pub limits: Limits,
    /// `None` also when the queue was asked for only [`QueueNeed::IfConfigured`] and is not.
    pub publisher: Option<Arc<dyn Publisher>>,
    pub mailer: Option<Arc<dyn Mailer>>,
}

/// A resource used that the function did not ask for: a mistake in its `Needs`.
#[derive(Debug, thiserror::Error)]
#[error("this function did not ask for {0} in its Needs")]
pub struct NotAsked(pub &'static str);

impl Resources {
    /// Fetches the secrets `needs` use and builds what they ask for. Connects lazily: the
    /// pool opens its first connection, and the queue its client, on first use.
    pub async fn build(needs: Needs, env: &impl Env) -> Result<Self, Error> {
        let mut built = Self::default();
        let secrets = || SecretsExtension::from_env(env);
        if needs.jwt {
            let settings = JwtSettings::from_env(env)?;
            let ttl = settings.ttl;
            built.jwt = Some(Arc::new(Jwt::new(&settings.key(&secrets()?).await?, ttl)));
        }
        if needs.database {
            let settings = DatabaseSettings::from_env(env)?;
            built.limits = Limits::from_env(env)?;
            built.db = Some(db::pool(&settings.source.resolve(&secrets()?).await?, settings.pool_size)?);
        }
        match needs.queue_config(env)? {
            Some(queue) => built.publisher = Some(queue::publisher(&queue).await?),
            None if needs.queue == QueueNeed::IfConfigured => {
                tracing::warn!("QUEUE_URL is not set: welcome emails wait in the outbox");
            }
            None => {}
        }
        if needs.mailer {
            built.mailer = Some(mail::mailer(&MailConfig::from_env(env)?).await?);
        }
        Ok(built)
    }

    pub fn pool(&self) -> Result<&Pool, NotAsked> {
        self.db.as_ref().ok_or(NotAsked("the database"))
    }

    pub fn jwt(&self) -> Result<&Arc<Jwt>, NotAsked> {
        self.jwt.as_ref().ok_or(NotAsked("the JWT key"))
    }

    pub fn publisher(&self) -> Result<&Arc<dyn Publisher>, NotAsked> {
        self.publisher.as_ref().ok_or(NotAsked("the queue"))
    }

    pub fn mailer(&self) -> Result<&Arc<dyn Mailer>, NotAsked> {
        self.mailer.as_ref().ok_or(NotAsked("a mailer"))
    }

    /// Closes the pool: its connections end now rather than when the process is killed.
    pub fn close(&self) {
        if let Some(db) = &self.db {
            db.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Env {
        move |name: &str| pairs.iter().find(|(key, _)| *key == name).map(|(_, value)| (*value).to_owned())
    }

    #[tokio::test]
    async fn nothing_needed_reads_nothing() {
        // Not even a malformed setting of something it does not use stops it.
        let env = env(&[("DB_POOL_SIZE", "many"), ("JWT_SECRET", "short"), ("QUEUE_MAX_ATTEMPTS", "x")]);
        assert_eq!(Needs::NOTHING.check(&env).ok(), Some(false));
        let built = Resources::build(Needs::NOTHING, &env).await.ok();
        assert!(built.is_some_and(|r| r.db.is_none() && r.jwt.is_none() && r.publisher.is_none()));
    }

    #[tokio::test]
    async fn only_what_is_needed_is_read() {
        let env = env(&[("DATABASE_URL", "postgres://u@127.0.0.1/db"), ("DB_SECRET_ARN", "unused")]);
        assert_eq!(Needs::DATABASE.check(&env).ok(), Some(false));
        let missing_key = Needs::DATABASE.jwt().check(&env).err().map(|e| e.to_string());
        assert_eq!(missing_key.as_deref(), Some("JWT_SECRET (or JWT_SECRET_ARN) is not set"));
        let built = Resources::build(Needs::DATABASE, &env).await.ok();
        assert!(built.as_ref().is_some_and(|r| r.pool().is_ok() && r.jwt().is_err()));
        let no_queue = Needs::DATABASE.queue(QueueNeed::Required).check(&env).err().map(|e| e.to_string());
        assert_eq!(no_queue.as_deref(), Some("QUEUE_URL is not set"));
        assert_eq!(Needs::DATABASE.queue(QueueNeed::IfConfigured).check(&env).ok(), Some(false));
    }

    #[test]
    fn needs_cover_what_they_ask_for() {
        let register = Needs::DATABASE.queue(QueueNeed::IfConfigured);
        assert!(register.covers(Needs::DATABASE) && register.covers(register) && register.covers(Needs::NOTHING));
        assert!(!register.covers(Needs::DATABASE.jwt()));
        assert!(!Needs::NOTHING.covers(Needs::DATABASE));
        assert!(!register.covers(Needs::DATABASE.queue(QueueNeed::Required)));
        assert!(Needs::DATABASE.queue(QueueNeed::Required).covers(register));
        assert!(!Needs::DATABASE.covers(Needs::DATABASE.mailer()));
    }

    #[test]
    fn secrets_in_the_extension_wait_for_the_first_invocation() {
        let env = env(&[
            ("DB_HOST", "proxy"),
            ("DB_NAME", "store"),
            ("DB_SECRET_ARN", "arn:db"),
            ("JWT_SECRET_ARN", "arn:jwt"),
        ]);
        assert_eq!(Needs::DATABASE.check(&env).ok(), Some(true));
        assert_eq!(Needs::NOTHING.jwt().check(&env).ok(), Some(true));
        assert_eq!(Needs::NOTHING.check(&env).ok(), Some(false));
    }
}
