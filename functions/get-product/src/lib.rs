//! GET /api/v1/products/{id}: one product, archived ones too (orders name them), with its
//! version as `ETag`.

use axum::Router;
use axum::extract::{FromRef, Path, State};
use axum::response::Response;
use common::domain::{ProductId, required};
use common::http::{Routes, versioned};
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
    Routes::new().get("/api/v1/products/{id}", get_product)
}

pub fn routes<S>(state: S) -> Router
where
    S: Clone + Send + Sync + 'static,
    AppState<NoKey>: FromRef<S>,
{
    api().with_state(state)
}

async fn get_product(State(state): State<AppState<NoKey>>, Path(raw_id): Path<String>) -> Result<Response, AppError> {
    let id = required("id", Some(raw_id), ProductId::parse_str)?;

    let product = products::get(&**state.db.get().await?, id).await?;

    let found = product.ok_or(AppError::ProductNotFound { product_id: id.get() })?;
    Ok(versioned(found.product, found.version))
}
