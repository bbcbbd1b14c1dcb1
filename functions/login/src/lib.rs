//! POST /api/v1/auth/login: exchanges email and password for an access token.
//!
//! Every attempt is counted before its password is checked, across all instances (see
//! `common::throttle`); past a limit the answer is 429 with `Retry-After`, whether or not
//! the email exists and whether or not the password is right.

use axum::extract::State;
use axum::{Json, Router};
use common::auth::verify_password;
use common::domain::{Email, Password, required};
use common::http::Routes;
use common::http::{ApiJson, ClientIp};
use common::lambda::{HttpFunction, Needs};
use common::metrics::{self, Metric};
use common::store::users;
use common::throttle::LoginAttempt;
use common::{AppError, AppState};
use serde::{Deserialize, Serialize};

/// This function on Lambda (its `main` runs it): the database and the key it signs tokens with.
pub const LAMBDA: HttpFunction<AppState> = HttpFunction::new(Needs::DATABASE.jwt(), api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api() -> Routes<AppState> {
    Routes::new().post("/api/v1/auth/login", login)
}

pub fn routes(state: AppState) -> Router {
    api().with_state(state)
}

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

    let db = state.db.get().await?;
    let attempt = LoginAttempt::count(&**db, &state.limits, &email, ip).await?;
    // No stored password can be this long: answered like an unknown email (same work).
    let account =
        if password.chars().count() > Password::MAX_CHARS { None } else { users::credentials(&**db, &email).await? };
    let (stored_hash, who) = match account {
        Some(account) => (Some(account.password_hash), Some((account.id, account.role))),
        None => (None, None),
    };
    // The connection goes back to the pool for the ~25 ms of the hash: held, a burst of
    // logins as large as the pool would stall every other request of the process.
    drop(db);
    let (id, role) = match (verify_password(password, stored_hash).await?, who) {
        (true, Some(who)) => who,
        _ => return Err(AppError::InvalidCredentials).inspect_err(|_| metrics::count(Metric::LoginsFailed)),
    };
    attempt.succeeded(&**state.db.get().await?).await?;
    let token = state.jwt.issue(id, role)?;
    metrics::count(Metric::LoginsOk);

    Ok(Json(Token { token, token_type: "Bearer", expires_in: state.jwt.ttl().as_secs() }))
}
