//! POST /api/v1/auth/register: creates a user account and queues its welcome email.

use axum::Router;
use axum::extract::{FromRef, State};
use axum::response::Response;
use common::auth::hash_password;
use common::domain::{Email, Password, required};
use common::http::Routes;
use common::http::{ApiJson, ClientIp, Idempotency, created};
use common::lambda::{HttpFunction, Needs, QueueNeed};
use common::metrics::{self, Metric};
use common::state::NoKey;
use common::store::users::{self, RegistrationKey, User};
use common::{AppError, AppState, db, outbox, throttle};
use serde::{Deserialize, Serialize};

/// This function on Lambda (its `main` runs it). It neither signs nor verifies tokens, so it
/// asks for the database only, and its state holds no key.
/// Register publishes the welcome email after commit, when a queue is configured.
pub const LAMBDA: HttpFunction<AppState<NoKey>> =
    HttpFunction::new(Needs::DATABASE.queue(QueueNeed::IfConfigured), api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    AppState<NoKey>: FromRef<S>,
{
    Routes::new().post("/api/v1/auth/register", register)
}

pub fn routes<S>(state: S) -> Router
where
    S: Clone + Send + Sync + 'static,
    AppState<NoKey>: FromRef<S>,
{
    api().with_state(state)
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

/// Each registration from a network is counted before its argon2 hash, and refused past the
/// limit (each costs a hash and a mail sent from our domain). A retry of a registration
/// that already succeeded costs neither, so it replays without being counted; copies that
/// race the first one are each counted, as each of them runs a hash.
///
/// The user, its `Idempotency-Key` and its welcome-email outbox row commit together, so
/// the mail cannot be lost between them and a retried registration replays the first;
/// publishing happens after commit and its failure is left to the sweeper.
async fn register(
    State(state): State<AppState<NoKey>>,
    ClientIp(ip): ClientIp,
    Idempotency(key): Idempotency,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<Response, AppError> {
    let email = required("email", body.email, Email::parse)?;
    let password = required("password", body.password, Password::parse)?;

    // This connection goes back to the pool before the hash, as the transaction's is taken after it.
    {
        let db = state.db.get().await?;
        if let Some(key) = &key
            && let Some(user) = users::registered_with_key(&**db, key, &email).await?
        {
            return Ok(registered(user, true));
        }
        throttle::count_registration(&**db, &state.limits, ip).await?;
    }
    let password_hash = hash_password(password).await?;
    let mut client = state.db.get().await?;
    let tx = db::begin(&mut client).await?;
    if let Some(key) = &key {
        match users::claim_registration_key(&*tx, key, &email).await? {
            RegistrationKey::New => {}
            RegistrationKey::Replay(user) => return Ok(registered(user, true)),
            RegistrationKey::Reused => return Err(AppError::IdempotencyKeyReused),
        }
    }
    let user = users::create(&*tx, &email, &password_hash).await?;
    if let Some(key) = &key {
        users::bind_registration_key(&*tx, key, user.id).await?;
    }
    let welcome = outbox::add_welcome_email(&*tx, &user.email).await?;
    db::commit(tx).await?;
    drop(client);
    if let Some(publisher) = &state.publisher {
        outbox::publish_committed(&state.db, publisher.as_ref(), &welcome).await;
    }

    Ok(registered(user, false))
}

fn registered(user: User, replayed: bool) -> Response {
    metrics::count(if replayed { Metric::IdempotentReplays } else { Metric::Registrations });
    created(Registered { message: "Registration successful", user }, replayed)
}
