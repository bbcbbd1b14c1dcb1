//! POST /api/v1/products (admin only): adds a product to the catalogue.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router};
use common::auth::Admin;
use common::domain::{Cents, Description, ProductName, Sku, Stock, optional, required};
use common::http::Routes;
use common::http::{ApiJson, integer};
use common::lambda::{HttpFunction, Needs};
use common::store::products::{self, NewProduct, Product};
use common::{AppError, AppState};
use serde::Deserialize;

/// This function on Lambda (its `main` runs it): the database and the key it verifies tokens with.
pub const LAMBDA: HttpFunction<AppState> = HttpFunction::new(Needs::DATABASE.jwt(), api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api() -> Routes<AppState> {
    Routes::new().post("/api/v1/products", create_product)
}

pub fn routes(state: AppState) -> Router {
    api().with_state(state)
}

#[derive(Deserialize)]
struct NewProductRequest {
    name: Option<String>,
    description: Option<String>,
    #[serde(default, deserialize_with = "integer")]
    price: Option<i64>,
    sku: Option<String>,
    #[serde(default, deserialize_with = "integer")]
    stock: Option<i64>,
}

async fn create_product(
    Admin(_): Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewProductRequest>,
) -> Result<(StatusCode, Json<Product>), AppError> {
    let new = NewProduct {
        name: required("name", body.name, ProductName::parse)?,
        description: optional("description", body.description, Description::parse)?.unwrap_or_default(),
        price: required("price", body.price, Cents::parse)?,
        sku: required("sku", body.sku, Sku::parse)?,
        stock: optional("stock", body.stock, Stock::parse)?.unwrap_or(Stock::ZERO),
    };

    let product = products::create(&**state.db.get().await?, &new).await?;

    Ok((StatusCode::CREATED, Json(product)))
}
