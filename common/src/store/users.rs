use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use crate::domain::{Email, Password, Role, UserId};
use crate::error::AppError;

/// A user as the API shows it: never the password hash.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What login needs to check a password and issue a token.
pub struct Credentials {
    pub id: UserId,
    pub role: Role,
    pub password_hash: String,
}

/// The columns of [`User`]; a macro so that statements are built at compile time.
macro_rules! user_columns {
    () => {
        "id, email, role, created_at"
    };
}

fn user(row: &Row) -> Result<User, AppError> {
    Ok(User {
        id: UserId::new(row.try_get("id")?),
        email: row.try_get("email")?,
        role: role(row.try_get("role")?)?,
        created_at: row.try_get("created_at")?,
    })
}

fn role(raw: &str) -> Result<Role, AppError> {
    Role::from_db(raw).ok_or_else(|| AppError::Internal(format!("unknown role {raw:?} in users").into()))
}

/// Inserts a user with the `user` role; a taken email is [`AppError::EmailTaken`].
pub async fn create(db: &impl GenericClient, email: &Email, password_hash: &str) -> Result<User, AppError> {
    const SQL: &str = concat!("INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING ", user_columns!());
    let rows =
        db.query_typed(SQL, &[(&email.as_str(), Type::TEXT), (&password_hash, Type::TEXT)]).await.map_err(|err| {
            match super::unique_violation(&err) {
                Some("users_email_key") => AppError::EmailTaken,
                _ => err.into(),
            }
        })?;
    super::single(&rows, user)
}

pub async fn credentials(db: &impl GenericClient, email: &Email) -> Result<Option<Credentials>, AppError> {
    let rows = db
        .query_typed("SELECT id, role, password_hash FROM users WHERE email = $1", &[(&email.as_str(), Type::TEXT)])
        .await?;
    rows.first()
        .map(|row| {
            Ok(Credentials {
                id: UserId::new(row.try_get("id")?),
                role: role(row.try_get("role")?)?,
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
}

/// Creates an admin, or makes an existing account an admin with this password.
pub async fn upsert_admin(db: &impl GenericClient, email: &Email, password_hash: &str) -> Result<User, AppError> {
    const SQL: &str = concat!(
        "INSERT INTO users (email, password_hash, role) VALUES ($1, $2, 'admin') \
         ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = 'admin' \
         RETURNING ",
        user_columns!()
    );
    let rows = db.query_typed(SQL, &[(&email.as_str(), Type::TEXT), (&password_hash, Type::TEXT)]).await?;
    super::single(&rows, user)
}

/// What [`ensure_admin`] did.
#[derive(Debug)]
pub enum EnsureAdmin {
    /// There was no admin: this account is now one (created, or promoted with this password).
    Created(User),
    /// An admin already existed; nothing was changed.
    AlreadyPresent,
}

pub async fn admin_exists(db: &impl GenericClient) -> Result<bool, AppError> {
    let rows = db.query_typed("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1", &[]).await?;
    Ok(!rows.is_empty())
}

/// Creates the first admin unless an admin exists: idempotent, so deploys can run it every
/// time, and it never resets the password of an admin who changed it. An existing account
/// with this email (someone registered it first) is taken over: promoted and given the
/// secret's password, so whoever registered it cannot log in as admin.
pub async fn ensure_admin(db: &impl GenericClient, email: &Email, password: Password) -> Result<EnsureAdmin, AppError> {
    // Checked first so that the usual case (admin present) costs no argon2 hash.
    if admin_exists(db).await? {
        return Ok(EnsureAdmin::AlreadyPresent);
    }
    let hash = crate::auth::hash_password(password).await?;
    // The NOT EXISTS guard makes two concurrent runs create at most one admin.
    const SQL: &str = concat!(
        "INSERT INTO users (email, password_hash, role) ",
        "SELECT $1, $2, 'admin' WHERE NOT EXISTS (SELECT 1 FROM users WHERE role = 'admin') ",
        "ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = 'admin' ",
        "RETURNING ",
        user_columns!()
    );
    let rows = db.query_typed(SQL, &[(&email.as_str(), Type::TEXT), (&hash, Type::TEXT)]).await?;
    match rows.first() {
        Some(row) => Ok(EnsureAdmin::Created(user(row)?)),
        None => Ok(EnsureAdmin::AlreadyPresent),
    }
}
