//! GET /api/v1/admin/orders?status=&after=&limit=: every user's orders, newest first, a
//! page at a time, optionally only those in one status. Admins only.

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use common::auth::Admin;
use common::domain::{OrderStatus, optional};
use common::http::Routes;
use common::http::{Page, PathPrefix};
use common::lambda::{HttpFunction, Needs};
use common::store::orders;
use common::{AppError, AppState};
use serde::Deserialize;

/// This function on Lambda (its `main` runs it): the database and the key it verifies tokens with.
pub const LAMBDA: HttpFunction<AppState> = HttpFunction::new(Needs::DATABASE.jwt(), api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api() -> Routes<AppState> {
    Routes::new().get("/api/v1/admin/orders", list_all_orders)
}

pub fn routes(state: AppState) -> Router {
    api().with_state(state)
}

#[derive(Deserialize)]
struct Filter {
    status: Option<String>,
}

async fn list_all_orders(
    _admin: Admin,
    State(state): State<AppState>,
    PathPrefix(prefix): PathPrefix,
    page: Page,
    filter: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let Query(filter) = filter.map_err(|rejection| AppError::invalid("query", rejection.body_text()))?;
    let status = optional("status", filter.status.as_deref(), OrderStatus::parse)?;

    let rows = orders::list_all(&**state.db.get().await?, status, page.after, page.fetch_limit()).await?;

    let filter = status.map(|s| format!("status={}", s.as_str())).unwrap_or_default();
    Ok(page.respond_filtered(rows, |o| o.id, &format!("{prefix}/api/v1/admin/orders"), &filter))
}
