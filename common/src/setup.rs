//! What a deploy does to the database, shared by the migrate Lambda and `gamestore
//! migrate`: apply pending migrations ([`crate::db::migrate`]), then create the first
//! admin from the configured credentials unless an admin exists. Above `db`, `store` and
//! `auth`, which it combines; nothing in the request path imports it.

use crate::db::Executor;
use crate::db::Pool;

use crate::auth::{PasswordError, hash_password};
use crate::config::{AdminCredentials, ApplicationLogin};
use crate::db::{self, DbError};
use crate::domain::{Email, Password};
use crate::store::StoreError;
use crate::store::users::{self, EnsureAdmin};

/// Why `migrate` (the Lambda or `gamestore migrate`) failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("admin account: {0}")]
    Admin(#[from] StoreError),
    #[error("admin account: {0}")]
    Password(#[from] PasswordError),
    #[error("the application credentials name the user {0:?}, but the application role is {role}", role = db::APPLICATION_ROLE)]
    ApplicationUser(String),
    #[error("the admin secret's {field} {message}")]
    InvalidAdmin { field: &'static str, message: String },
}

/// What [`migrate_and_ensure_admin`] did; the migrate Lambda returns it as JSON.
#[derive(Debug, serde::Serialize)]
pub struct SetupReport {
    /// Migrations applied by this run.
    pub applied_migrations: Vec<String>,
    /// "created" (this run created or promoted the first admin), "present" (an admin
    /// existed already), or "skipped" (no admin credentials configured).
    pub admin: &'static str,
}

/// Applies pending migrations on `pool` (the owner's), then lets the application role log
/// in with `application`'s password, when the application connects as its own role.
pub async fn migrate(pool: &Pool, application: Option<&ApplicationLogin>) -> Result<Vec<String>, SetupError> {
    let applied = db::migrate(pool).await?;
    if let Some(login) = application {
        if login.user != db::APPLICATION_ROLE {
            return Err(SetupError::ApplicationUser(login.user.clone()));
        }
        db::allow_application_login(pool, login.password.as_deref()).await?;
    }
    Ok(applied)
}

/// [`migrate`], then creates the first admin from `admin` unless an admin exists.
/// Idempotent, so deploys run it every time; it never resets the password of an admin who
/// changed it.
pub async fn migrate_and_ensure_admin(
    pool: &Pool,
    application: Option<&ApplicationLogin>,
    admin: Option<AdminCredentials>,
) -> Result<SetupReport, SetupError> {
    let applied_migrations = migrate(pool, application).await?;
    let admin = match admin {
        None => "skipped",
        Some(creds) => {
            let email =
                Email::parse(creds.email).map_err(|e| SetupError::InvalidAdmin { field: "email", message: e.0 })?;
            let password = Password::parse(creds.password)
                .map_err(|e| SetupError::InvalidAdmin { field: "password", message: e.0 })?;
            let client = pool.get().await.map_err(DbError::from)?;
            match ensure_admin(&**client, &email, password).await? {
                EnsureAdmin::Created(user) => {
                    tracing::info!(id = user.id.get(), email = %email.masked(), "first admin created");
                    "created"
                }
                EnsureAdmin::AlreadyPresent => "present",
            }
        }
    };
    Ok(SetupReport { applied_migrations, admin })
}

async fn ensure_admin(db: &impl Executor, email: &Email, password: Password) -> Result<EnsureAdmin, SetupError> {
    // Checked first so that the usual case (admin present) costs no argon2 hash.
    if users::admin_exists(db).await? {
        return Ok(EnsureAdmin::AlreadyPresent);
    }
    let hash = hash_password(password).await?;
    Ok(users::create_first_admin(db, email, &hash).await?)
}
