//! POST /api/v1/orders: buys units of a product for the signed-in user.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use common::auth::Caller;
use common::domain::{ProductId, Quantity, optional, required};
use common::http::ApiJson;
use common::store::orders::{self, Line, Order};
use common::{AppError, AppState};
use serde::{Deserialize, Serialize};

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/orders", post(create_order))
        .with_state(state)
}

/// The seed's body, `{"product_id": N}`, optionally with a quantity (default 1).
#[derive(Deserialize)]
struct OrderRequest {
    product_id: Option<i64>,
    quantity: Option<i64>,
}

#[derive(Serialize)]
struct OrderPlaced {
    message: &'static str,
    order_id: i64,
    order: Order,
}

async fn create_order(
    caller: Caller,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OrderRequest>,
) -> Result<(StatusCode, Json<OrderPlaced>), AppError> {
    let line = Line {
        product_id: required("product_id", body.product_id, ProductId::parse)?,
        quantity: optional("quantity", body.quantity, Quantity::parse)?.unwrap_or(Quantity::ONE),
    };

    let order = orders::place(&state.db, caller.id, &[line]).await?;

    Ok((
        StatusCode::CREATED,
        Json(OrderPlaced {
            message: "Order placed successfully",
            order_id: order.id,
            order,
        }),
    ))
}
