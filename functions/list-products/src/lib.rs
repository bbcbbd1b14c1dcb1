//! GET /api/v1/products: the catalogue, in id order, a page at a time.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use common::http::Routes;
use common::http::{Page, PathPrefix};
use common::store::products;
use common::{AppError, AppState};

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api() -> Routes<AppState> {
    Routes::new().get("/api/v1/products", list_products)
}

pub fn routes(state: AppState) -> Router {
    api().with_state(state)
}

async fn list_products(
    State(state): State<AppState>,
    PathPrefix(prefix): PathPrefix,
    page: Page,
) -> Result<Response, AppError> {
    let rows = products::list(&**state.db.get().await?, page.after.unwrap_or(0), page.fetch_limit()).await?;
    Ok(page.respond(rows.products()?, |p| p.id, &format!("{prefix}/api/v1/products")))
}
