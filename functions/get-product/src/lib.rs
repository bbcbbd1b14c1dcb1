//! GET /api/v1/products/{id}: one product, archived ones too (orders name them), with its
//! version as `ETag`.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use common::domain::{ProductId, required};
use common::http::{Routes, versioned};
use common::store::products;
use common::{AppError, AppState};

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api() -> Routes<AppState> {
    Routes::new().get("/api/v1/products/{id}", get_product)
}

pub fn routes(state: AppState) -> Router {
    api().with_state(state)
}

async fn get_product(State(state): State<AppState>, Path(raw_id): Path<String>) -> Result<Response, AppError> {
    let id = required("id", Some(raw_id), ProductId::parse_str)?;

    let product = products::get(&**state.db.get().await?, id).await?;

    let found = product.ok_or(AppError::ProductNotFound { product_id: id.get() })?;
    Ok(versioned(found.product, found.version))
}
