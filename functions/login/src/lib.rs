//! POST /api/v1/auth/login: exchanges email and password for an access token.
//!
//! Failed attempts are counted per email and per client address across all instances;
//! past the limit the answer is 429 until the window ends, whether or not the email
//! exists and whether or not the password is right.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::auth::verify_password;
use common::domain::{Email, Password, required};
use common::http::{ApiJson, ClientIp};
use common::store::login_failures::{self, Subject};
use common::store::users;
use common::{AppError, AppState};
use serde::{Deserialize, Serialize};

pub fn routes(state: AppState) -> Router {
    Router::new().route("/api/v1/auth/login", post(login)).with_state(state)
}

/// Failures in one window before an email is blocked: enough for typos, not for guessing.
const MAX_FAILURES_PER_EMAIL: i32 = 5;
/// Failures in one window before a client address is blocked, whatever emails it tries.
const MAX_FAILURES_PER_ADDRESS: i32 = 20;

#[derive(Deserialize)]
struct LoginRequest {
    email: Option<String>,
    password: Option<String>,
}

#[derive(Serialize)]
struct Token {
    token: String,
    token_type: &'static str,
    expires_in: u64,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<Token>, AppError> {
    let email = required("email", body.email, Email::parse)?;
    let password = required("password", body.password, Ok)?;
    let by_email = Subject { key: format!("email:{}", email.as_str()), max_failures: MAX_FAILURES_PER_EMAIL };
    let mut subjects = vec![by_email];
    if let Some(ip) = ip {
        subjects.push(Subject { key: format!("ip:{ip}"), max_failures: MAX_FAILURES_PER_ADDRESS });
    }

    let db = state.db.get().await?;
    if let Some(retry_after) = login_failures::blocked_for(&**db, &subjects).await? {
        return Err(AppError::TooManyAttempts { retry_after });
    }
    // No stored password can be this long: answered like an unknown email (same work).
    let account =
        if password.chars().count() > Password::MAX_CHARS { None } else { users::credentials(&**db, &email).await? };
    let (stored_hash, who) = match account {
        Some(account) => (Some(account.password_hash), Some((account.id, account.role))),
        None => (None, None),
    };
    let (id, role) = match (verify_password(password, stored_hash).await?, who) {
        (true, Some(who)) => who,
        _ => {
            login_failures::record_failure(&**db, &subjects).await?;
            return Err(AppError::InvalidCredentials);
        }
    };
    login_failures::clear(&**db, &subjects[0]).await?;
    let token = state.jwt.issue(id, role)?;

    Ok(Json(Token { token, token_type: "Bearer", expires_in: state.jwt.ttl().as_secs() }))
}
