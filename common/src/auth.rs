//! Passwords (argon2id, hashed off the async threads), JWTs (HS256 only, every claim
//! checked) and the extractors that turn an `Authorization` header into a caller.
//!
//! Tokens and extractors face HTTP and answer [`AppError`]; the password functions are
//! also used off the request path (`setup`) and answer their own [`PasswordError`].

use std::sync::Arc;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::domain::{Password, Role, UserId};
use crate::error::AppError;

/// The argon2 work failed: a fault on our side, never the caller's.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("stored password hash is unreadable: {0}")]
    Unreadable(String),
    #[error("password task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Hashes a new password with argon2id and the OWASP parameters (m=19 MiB, t=2, p=1).
pub async fn hash_password(password: Password) -> Result<String, PasswordError> {
    blocking(move || {
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|err| PasswordError::Hash(err.to_string()))
    })
    .await
}

/// A hash of a random throw-away password with the same parameters as real hashes. Login
/// verifies against it when the email is unknown, so both cases cost one argon2 run and
/// neither timing nor answer tells whether an account exists.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$bXlMAUKHSYNdoTzWDyOJBA$0lNHLjqNkdr1R2o1FhfjdVWxN/YqnSP8/RAWmRmXMlc";

/// Checks a login attempt. `stored` is the account's hash, or `None` for an unknown email;
/// the work done is the same either way.
pub async fn verify_password(candidate: String, stored: Option<String>) -> Result<bool, PasswordError> {
    blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let hash = PasswordHash::new(&stored).map_err(|err| PasswordError::Unreadable(err.to_string()))?;
        let matches = Argon2::default().verify_password(candidate.as_bytes(), &hash).is_ok();
        Ok(known && matches)
    })
    .await
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
) -> Result<T, PasswordError> {
    tokio::task::spawn_blocking(work).await?
}

const ISSUER: &str = "gamestore";
const AUDIENCE: &str = "gamestore-api";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    iat: u64,
    exp: u64,
    iss: String,
    aud: String,
}

/// Issues and verifies the API's access tokens.
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl Jwt {
    /// `secret` must already satisfy [`crate::config::MIN_JWT_SECRET_BYTES`].
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        // Pinned to HS256: a token signed with any other algorithm, or none, is rejected.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation, ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user: UserId, role: Role) -> Result<String, AppError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.get().to_string(),
            role,
            iat: now,
            exp: now + self.ttl.as_secs(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(AppError::internal)
    }

    pub fn verify(&self, token: &str) -> Result<Caller, AppError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| AppError::InvalidToken)?
            .claims;
        let id = claims.sub.parse().map_err(|_| AppError::InvalidToken)?;
        Ok(Caller { id: UserId::new(id), role: claims.role })
    }
}

/// The authenticated caller of a request: a valid bearer token is required.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub id: UserId,
    pub role: Role,
}

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Arc<Jwt>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).ok_or(AppError::MissingToken)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
            .map(|(_, token)| token)
            .ok_or(AppError::InvalidAuthHeader)?;
        Arc::<Jwt>::from_ref(state).verify(token)
    }
}

/// A caller whose token carries the admin role.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub Caller);

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    Arc<Jwt>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        match caller.role {
            Role::Admin => Ok(Self(caller)),
            Role::User => Err(AppError::AdminOnly),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_costs_what_a_real_hash_costs() {
        let dummy = PasswordHash::new(DUMMY_HASH).map(|h| h.to_string());
        let real = Argon2::default().hash_password(b"any password").map(|h| h.to_string());
        let params = |s: &str| s.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(dummy.map(|d| params(&d)).ok(), real.map(|r| params(&r)).ok());
    }

    #[tokio::test]
    async fn unknown_email_never_verifies() {
        assert_eq!(verify_password("whatever".into(), None).await.ok(), Some(false));
    }

    #[test]
    fn token_round_trip_and_tampering() {
        let jwt = Jwt::new(&[7; 32], Duration::from_secs(60));
        let token = jwt.issue(UserId::new(42), Role::Admin).unwrap_or_default();
        let caller = jwt.verify(&token).ok();
        assert_eq!(caller.map(|c| (c.id.get(), c.role)), Some((42, Role::Admin)));

        let other = Jwt::new(&[8; 32], Duration::from_secs(60));
        assert!(matches!(other.verify(&token), Err(AppError::InvalidToken)));
    }
}
