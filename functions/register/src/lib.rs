//! POST /api/v1/auth/register: creates a user account.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use common::auth::hash_password;
use common::domain::{Email, Password, required};
use common::http::ApiJson;
use common::store::users::{self, User};
use common::{AppError, AppState};
use serde::{Deserialize, Serialize};

pub fn routes(state: AppState) -> Router {
    Router::new().route("/api/v1/auth/register", post(register)).with_state(state)
}

#[derive(Deserialize)]
struct RegisterRequest {
    email: Option<String>,
    password: Option<String>,
}

#[derive(Serialize)]
struct Registered {
    message: &'static str,
    user: User,
}

async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<Registered>), AppError> {
    let email = required("email", body.email, Email::parse)?;
    let password = required("password", body.password, Password::parse)?;

    let password_hash = hash_password(password).await?;
    let user = users::create(&**state.db.get().await?, &email, &password_hash).await?;

    Ok((StatusCode::CREATED, Json(Registered { message: "Registration successful", user })))
}
