use crate::db::Executor;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use super::StoreError;
use crate::domain::{Email, IdempotencyKey, Masked, Role, UserId};

/// A user as the API shows it: never the password hash. `Debug` masks the email.
#[derive(Clone, Serialize)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &Masked::new(&self.email))
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .finish()
    }
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

fn user(row: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: UserId::new(row.try_get("id")?),
        email: row.try_get("email")?,
        role: role(row.try_get("role")?)?,
        created_at: row.try_get("created_at")?,
    })
}

fn role(raw: &str) -> Result<Role, StoreError> {
    Role::from_db(raw).ok_or_else(|| StoreError::unexpected(format!("unknown role {raw:?} in users")))
}

/// Inserts a user with the `user` role; a taken email is [`StoreError::Conflict`] on
/// `users_email_key`.
pub async fn create(db: &impl Executor, email: &Email, password_hash: &str) -> Result<User, StoreError> {
    const SQL: &str = concat!("INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING ", user_columns!());
    let rows = db.query_typed(SQL, &[(&email.as_str(), Type::TEXT), (&password_hash, Type::TEXT)]).await?;
    super::single(&rows, user)
}

pub async fn credentials(db: &impl Executor, email: &Email) -> Result<Option<Credentials>, StoreError> {
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
pub async fn upsert_admin(db: &impl Executor, email: &Email, password_hash: &str) -> Result<User, StoreError> {
    const SQL: &str = concat!(
        "INSERT INTO users (email, password_hash, role) VALUES ($1, $2, 'admin') \
         ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = 'admin' \
         RETURNING ",
        user_columns!()
    );
    let rows = db.query_typed(SQL, &[(&email.as_str(), Type::TEXT), (&password_hash, Type::TEXT)]).await?;
    super::single(&rows, user)
}

/// What [`create_first_admin`] did.
#[derive(Debug)]
pub enum EnsureAdmin {
    /// There was no admin: this account is now one (created, or promoted with this password).
    Created(User),
    /// An admin already existed; nothing was changed.
    AlreadyPresent,
}

pub async fn admin_exists(db: &impl Executor) -> Result<bool, StoreError> {
    let rows = db.query_typed("SELECT 1 FROM users WHERE role = 'admin' LIMIT 1", &[]).await?;
    Ok(!rows.is_empty())
}

/// Makes `email` an admin with this password hash unless an admin exists. An existing
/// account with this email (someone registered it first) is taken over: promoted and given
/// this password, so whoever registered it cannot log in as admin.
pub async fn create_first_admin(
    db: &impl Executor,
    email: &Email,
    password_hash: &str,
) -> Result<EnsureAdmin, StoreError> {
    // The NOT EXISTS guard makes two concurrent runs create at most one admin.
    const SQL: &str = concat!(
        "INSERT INTO users (email, password_hash, role) ",
        "SELECT $1, $2, 'admin' WHERE NOT EXISTS (SELECT 1 FROM users WHERE role = 'admin') ",
        "ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = 'admin' ",
        "RETURNING ",
        user_columns!()
    );
    let rows = db.query_typed(SQL, &[(&email.as_str(), Type::TEXT), (&password_hash, Type::TEXT)]).await?;
    match rows.first() {
        Some(row) => Ok(EnsureAdmin::Created(user(row)?)),
        None => Ok(EnsureAdmin::AlreadyPresent),
    }
}

/// What an `Idempotency-Key` on registration turned out to be.
pub enum RegistrationKey {
    /// First use (or the last use expired): register, then [`bind_registration_key`].
    New,
    /// Already used for this email: the user it created.
    Replay(User),
    /// Already used for another email.
    Reused,
}

/// Claims `key` for registering `email` in the caller's transaction. A concurrent request
/// with the same key waits here until the first commits, then sees its user.
pub async fn claim_registration_key(
    db: &impl Executor,
    key: &IdempotencyKey,
    email: &Email,
) -> Result<RegistrationKey, StoreError> {
    const CLAIM: &str = "\
        INSERT INTO registration_keys AS k (key, email) VALUES ($1, $2) \
        ON CONFLICT (key) DO UPDATE SET email = EXCLUDED.email, user_id = NULL, created_at = now() \
            WHERE k.created_at < now() - INTERVAL '24 hours'";
    const EXISTING: &str = "SELECT k.email AS key_email, u.id, u.email, u.role, u.created_at \
         FROM registration_keys k LEFT JOIN users u ON u.id = k.user_id WHERE k.key = $1";
    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 2] =
        [(&key.as_str(), Type::TEXT), (&email.as_str(), Type::TEXT)];
    if db.execute_typed(CLAIM, &params).await? == 1 {
        return Ok(RegistrationKey::New);
    }
    let rows = db.query_typed(EXISTING, &params[..1]).await?;
    let row = rows.first().ok_or_else(|| StoreError::unexpected("registration key vanished"))?;
    let key_email: String = row.try_get("key_email")?;
    let user_id: Option<i64> = row.try_get("id")?;
    match user_id {
        Some(_) if key_email == email.as_str() => Ok(RegistrationKey::Replay(user(row)?)),
        _ => Ok(RegistrationKey::Reused),
    }
}

/// The user that `key` registered for `email` within the last 24 hours, if any: a retry
/// that [`claim_registration_key`] would answer with [`RegistrationKey::Replay`].
pub async fn registered_with_key(
    db: &impl Executor,
    key: &IdempotencyKey,
    email: &Email,
) -> Result<Option<User>, StoreError> {
    const SQL: &str = "\
        SELECT u.id, u.email, u.role, u.created_at FROM registration_keys k JOIN users u ON u.id = k.user_id \
         WHERE k.key = $1 AND k.email = $2 AND k.created_at >= now() - INTERVAL '24 hours'";
    let rows = db.query_typed(SQL, &[(&key.as_str(), Type::TEXT), (&email.as_str(), Type::TEXT)]).await?;
    rows.first().map(user).transpose()
}

/// Records the user a claimed registration key created (same transaction).
pub async fn bind_registration_key(db: &impl Executor, key: &IdempotencyKey, user: UserId) -> Result<(), StoreError> {
    db.execute_typed(
        "UPDATE registration_keys SET user_id = $2 WHERE key = $1",
        &[(&key.as_str(), Type::TEXT), (&user.get(), Type::INT8)],
    )
    .await?;
    Ok(())
}

/// Deletes up to `limit` registration keys past the 24 hours [`claim_registration_key`]
/// honours them.
pub async fn delete_expired_registration_keys(db: &impl Executor, limit: i64) -> Result<u64, StoreError> {
    let deleted = db
        .execute_typed(
            "DELETE FROM registration_keys WHERE key IN ( \
                SELECT key FROM registration_keys WHERE created_at < now() - INTERVAL '24 hours' \
                 ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED)",
            &[(&limit, Type::INT8)],
        )
        .await?;
    Ok(deleted)
}
