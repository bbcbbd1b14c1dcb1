//! POST /api/v1/auth/register: creates a user account and queues its welcome email.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use common::auth::hash_password;
use common::domain::{Email, Password, required};
use common::http::ApiJson;
use common::outbox;
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

/// The user and its welcome-email outbox row commit together, so the mail cannot be lost
/// between them; publishing happens after commit and its failure is left to the sweeper.
async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<Registered>), AppError> {
    let email = required("email", body.email, Email::parse)?;
    let password = required("password", body.password, Password::parse)?;

    let password_hash = hash_password(password).await?;
    let mut client = state.db.get().await?;
    let tx = client.transaction().await?;
    let user = users::create(&*tx, &email, &password_hash).await?;
    let welcome = outbox::add_welcome_email(&*tx, &user.email).await?;
    tx.commit().await?;
    drop(client);
    if let Some(publisher) = &state.publisher {
        outbox::publish_committed(&state.db, publisher.as_ref(), &welcome).await;
    }

    Ok((StatusCode::CREATED, Json(Registered { message: "Registration successful", user })))
}
