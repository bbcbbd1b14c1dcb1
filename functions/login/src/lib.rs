//! POST /api/v1/auth/login: exchanges email and password for an access token.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use common::auth::verify_password;
use common::domain::{Email, Password, required};
use common::http::ApiJson;
use common::store::users;
use common::{AppError, AppState};
use serde::{Deserialize, Serialize};

pub fn routes(state: AppState) -> Router {
    Router::new().route("/api/v1/auth/login", post(login)).with_state(state)
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

async fn login(State(state): State<AppState>, ApiJson(body): ApiJson<LoginRequest>) -> Result<Json<Token>, AppError> {
    let email = required("email", body.email, Email::parse)?;
    let password = required("password", body.password, Ok)?;
    // No stored password can be this long: rejected before any hashing work.
    if password.chars().count() > Password::MAX_CHARS {
        return Err(AppError::InvalidCredentials);
    }

    let account = users::credentials(&**state.db.get().await?, &email).await?;
    let (stored_hash, who) = match account {
        Some(account) => (Some(account.password_hash), Some((account.id, account.role))),
        None => (None, None),
    };
    let (id, role) = match (verify_password(password, stored_hash).await?, who) {
        (true, Some(who)) => who,
        _ => return Err(AppError::InvalidCredentials),
    };
    let token = state.jwt.issue(id, role)?;

    Ok(Json(Token { token, token_type: "Bearer", expires_in: state.jwt.ttl().as_secs() }))
}
