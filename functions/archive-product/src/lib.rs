//! DELETE /api/v1/products/{id} (admin only): archives the product. It leaves the
//! catalogue and takes no new orders; it stays readable by id and keeps its SKU. Archiving
//! it again answers the same 204.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use common::auth::Admin;
use common::domain::{ProductId, required};
use common::http::Routes;
use common::lambda::{HttpFunction, Needs};
use common::store::products;
use common::{AppError, AppState};

/// This function on Lambda (its `main` runs it): the database and the key it verifies tokens with.
pub const LAMBDA: HttpFunction<AppState> = HttpFunction::new(Needs::DATABASE.jwt(), api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api() -> Routes<AppState> {
    Routes::new().delete("/api/v1/products/{id}", archive_product)
}

pub fn routes(state: AppState) -> Router {
    api().with_state(state)
}

async fn archive_product(
    Admin(_): Admin,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = required("id", Some(raw_id), ProductId::parse_str)?;

    products::archive(&**state.db.get().await?, id).await?;

    Ok(StatusCode::NO_CONTENT)
}
