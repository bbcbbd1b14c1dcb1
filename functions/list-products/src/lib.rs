//! GET /api/v1/products: the catalogue, in id order, a page at a time.

use axum::Router;
use axum::extract::{FromRef, State};
use axum::response::Response;
use common::http::Routes;
use common::http::{Page, PathPrefix};
use common::lambda::{HttpFunction, Needs};
use common::state::NoKey;
use common::store::products;
use common::{AppError, AppState};

/// This function on Lambda (its `main` runs it). It neither signs nor verifies tokens, so it
/// asks for the database only, and its state holds no key.
pub const LAMBDA: HttpFunction<AppState<NoKey>> = HttpFunction::new(Needs::DATABASE, api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    AppState<NoKey>: FromRef<S>,
{
    Routes::new().get("/api/v1/products", list_products)
}

pub fn routes<S>(state: S) -> Router
where
    S: Clone + Send + Sync + 'static,
    AppState<NoKey>: FromRef<S>,
{
    api().with_state(state)
}

async fn list_products(
    State(state): State<AppState<NoKey>>,
    PathPrefix(prefix): PathPrefix,
    page: Page,
) -> Result<Response, AppError> {
    let rows = products::list(&**state.db.get().await?, page.after.unwrap_or(0), page.fetch_limit()).await?;
    Ok(page.respond(rows.products()?, |p| p.id, &format!("{prefix}/api/v1/products")))
}
