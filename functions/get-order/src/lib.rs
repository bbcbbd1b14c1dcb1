//! GET /api/v1/orders/{id}: one order with its lines and total: the caller's own, or any
//! order for an admin. Another user's order is 404, as one that does not exist.

use axum::extract::{Path, State};
use axum::{Json, Router};
use common::auth::Caller;
use common::domain::{OrderId, Role, required};
use common::http::Routes;
use common::lambda::{HttpFunction, Needs};
use common::store::orders::{self, Order};
use common::{AppError, AppState};

/// This function on Lambda (its `main` runs it): the database and the key it verifies tokens with.
pub const LAMBDA: HttpFunction<AppState> = HttpFunction::new(Needs::DATABASE.jwt(), api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api() -> Routes<AppState> {
    Routes::new().get("/api/v1/orders/{id}", get_order)
}

pub fn routes(state: AppState) -> Router {
    api().with_state(state)
}

async fn get_order(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Order>, AppError> {
    let id = required("id", Some(raw_id), OrderId::parse_str)?;
    let owner = match caller.role {
        Role::Admin => None,
        Role::User => Some(caller.id),
    };

    let order = orders::get(&**state.db.get().await?, id, owner).await?;

    Ok(Json(order))
}
