//! PATCH /api/v1/products/{id} (admin only): edits a product's name, description, price or
//! SKU, from the version the caller read (`If-Match` with the `ETag` of GET).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use common::auth::Admin;
use common::domain::{Cents, Description, ProductId, ProductName, Sku, optional, required};
use common::http::{ApiJson, IfMatch, Routes, integer, versioned};
use common::lambda::{HttpFunction, Needs};
use common::store::products::{self, Changes};
use common::{AppError, AppState};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// This function on Lambda (its `main` runs it): the database and the key it verifies tokens with.
pub const LAMBDA: HttpFunction<AppState> = HttpFunction::new(Needs::DATABASE.jwt(), api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api() -> Routes<AppState> {
    Routes::new().patch("/api/v1/products/{id}", update_product)
}

pub fn routes(state: AppState) -> Router {
    api().with_state(state)
}

#[derive(Deserialize)]
struct ChangesRequest {
    name: Option<String>,
    description: Option<String>,
    #[serde(default, deserialize_with = "integer")]
    price: Option<i64>,
    sku: Option<String>,
    /// Stock changes go through the ledger; named here only to refuse it rather than
    /// ignore it silently.
    stock: Option<IgnoredAny>,
}

async fn update_product(
    Admin(_): Admin,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    IfMatch(expected): IfMatch,
    ApiJson(body): ApiJson<ChangesRequest>,
) -> Result<Response, AppError> {
    let id = required("id", Some(raw_id), ProductId::parse_str)?;
    if body.stock.is_some() {
        return Err(AppError::invalid("stock", "is changed with POST /api/v1/products/{id}/stock"));
    }
    let changes = Changes {
        name: optional("name", body.name, ProductName::parse)?,
        description: optional("description", body.description, Description::parse)?,
        price: optional("price", body.price, Cents::parse)?,
        sku: optional("sku", body.sku, Sku::parse)?,
    };

    let updated = products::update(&**state.db.get().await?, id, expected.as_deref(), &changes).await?;

    Ok(versioned(updated.product, updated.version))
}
