//! POST /api/v1/products/{id}/stock (admin only): adds stock (a positive delta) or removes
//! it (a negative one, never below zero), recorded in the stock ledger with its reason.

use axum::extract::{Path, State};
use axum::{Json, Router};
use common::auth::Admin;
use common::domain::{ProductId, StockDelta, StockReason, required};
use common::http::{ApiJson, Routes, integer};
use common::lambda::{HttpFunction, Needs};
use common::store::{products, stock};
use common::{AppError, AppState};
use serde::Deserialize;

/// This function on Lambda (its `main` runs it): the database and the key it verifies tokens with.
pub const LAMBDA: HttpFunction<AppState> = HttpFunction::new(Needs::DATABASE.jwt(), api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api() -> Routes<AppState> {
    Routes::new().post("/api/v1/products/{id}/stock", restock_product)
}

pub fn routes(state: AppState) -> Router {
    api().with_state(state)
}

#[derive(Deserialize)]
struct StockChangeRequest {
    #[serde(default, deserialize_with = "integer")]
    delta: Option<i64>,
    reason: Option<String>,
}

async fn restock_product(
    Admin(admin): Admin,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    ApiJson(body): ApiJson<StockChangeRequest>,
) -> Result<Json<products::Product>, AppError> {
    let id = required("id", Some(raw_id), ProductId::parse_str)?;
    let delta = required("delta", body.delta, StockDelta::parse)?;
    let reason = required("reason", body.reason, StockReason::parse)?;

    let stock = stock::adjust(&state.db, id, delta, &reason, admin.id).await?;
    let found = products::get(&**state.db.get().await?, id).await?;

    let product = found.ok_or(AppError::ProductNotFound { product_id: id.get() })?.product;
    Ok(Json(products::Product { stock, ..product }))
}
