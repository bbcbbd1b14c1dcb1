//! GET /api/v1/orders: the signed-in user's own orders, newest first, a page at a time.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use common::auth::Caller;
use common::http::Routes;
use common::http::{Page, PathPrefix};
use common::lambda::{HttpFunction, Needs};
use common::store::orders;
use common::{AppError, AppState};

/// This function on Lambda (its `main` runs it): the database and the key it verifies tokens with.
pub const LAMBDA: HttpFunction<AppState> = HttpFunction::new(Needs::DATABASE.jwt(), api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api() -> Routes<AppState> {
    Routes::new().get("/api/v1/orders", list_orders)
}

pub fn routes(state: AppState) -> Router {
    api().with_state(state)
}

async fn list_orders(
    caller: Caller,
    State(state): State<AppState>,
    PathPrefix(prefix): PathPrefix,
    page: Page,
) -> Result<Response, AppError> {
    let rows = orders::list_for_user(&**state.db.get().await?, caller.id, page.after, page.fetch_limit()).await?;
    Ok(page.respond(rows, |o| o.id, &format!("{prefix}/api/v1/orders")))
}
