//! POST /api/v1/orders: buys one or more products for the signed-in user, all or nothing.
//! The confirmation mail's outbox row commits with the order and is published after it.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use common::auth::Caller;
use common::domain::{OrderLine, OrderLines, ProductId, Quantity, optional, required};
use common::http::Routes;
use common::http::{ApiJson, Idempotency, created, integer};
use common::lambda::{HttpFunction, Needs, QueueNeed};
use common::metrics::{self, Metric};
use common::store::StoreError;
use common::store::orders::{self, Order};
use common::{AppError, AppState, outbox};
use serde::{Deserialize, Serialize};

/// This function on Lambda (its `main` runs it): the database and the key it verifies tokens with.
/// Create-order publishes the confirmation mail after commit, when a queue is configured.
pub const LAMBDA: HttpFunction<AppState> = HttpFunction::new(Needs::DATABASE.jwt().queue(QueueNeed::IfConfigured), api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api() -> Routes<AppState> {
    Routes::new().post("/api/v1/orders", create_order)
}

pub fn routes(state: AppState) -> Router {
    api().with_state(state)
}

/// Either the seed's single product, `{"product_id": N, "quantity": Q}`, or a cart,
/// `{"items": [{"product_id": N, "quantity": Q}, ...]}`; quantity defaults to 1.
#[derive(Deserialize)]
struct OrderRequest {
    #[serde(default, deserialize_with = "integer")]
    product_id: Option<i64>,
    #[serde(default, deserialize_with = "integer")]
    quantity: Option<i64>,
    items: Option<Vec<LineRequest>>,
}

#[derive(Deserialize)]
struct LineRequest {
    #[serde(default, deserialize_with = "integer")]
    product_id: Option<i64>,
    #[serde(default, deserialize_with = "integer")]
    quantity: Option<i64>,
}

const MAX_LINES: usize = 50;

impl OrderRequest {
    /// The order's lines, repeated products merged into one line.
    fn lines(self) -> Result<OrderLines, AppError> {
        let lines = match (self.items, self.product_id, self.quantity) {
            (None, product_id, quantity) => vec![line("", product_id, quantity)?],
            (Some(items), None, None) => {
                if items.is_empty() || items.len() > MAX_LINES {
                    return Err(AppError::invalid("items", format!("items: must hold 1 to {MAX_LINES} lines")));
                }
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| line(&format!("items[{i}]."), item.product_id, item.quantity))
                    .collect::<Result<_, _>>()?
            }
            (Some(_), _, _) => {
                return Err(AppError::invalid("items", "items: send either items or product_id, not both"));
            }
        };
        required("quantity", Some(lines), OrderLines::merge)
    }
}

fn line(prefix: &str, product_id: Option<i64>, quantity: Option<i64>) -> Result<OrderLine, AppError> {
    Ok(OrderLine {
        product_id: required(&format!("{prefix}product_id"), product_id, ProductId::parse)?,
        quantity: optional(&format!("{prefix}quantity"), quantity, Quantity::parse)?.unwrap_or(Quantity::ONE),
    })
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
    Idempotency(key): Idempotency,
    ApiJson(body): ApiJson<OrderRequest>,
) -> Result<Response, AppError> {
    let lines = body.lines()?;

    let placed = orders::place(&state.db, caller.id, &lines, key.as_ref()).await.inspect_err(count_refusal)?;
    count_order(&lines, placed.replayed);
    if let (Some(publisher), Some(confirmation)) = (&state.publisher, &placed.confirmation) {
        outbox::publish_committed(&state.db, publisher.as_ref(), confirmation).await;
    }

    let body = OrderPlaced { message: "Order placed successfully", order_id: placed.order.id, order: placed.order };
    Ok(created(body, placed.replayed))
}

fn count_order(lines: &OrderLines, replayed: bool) {
    if replayed {
        return metrics::count(Metric::IdempotentReplays);
    }
    metrics::count(Metric::OrdersPlaced);
    metrics::add(Metric::OrderLines, lines.as_slice().len() as f64);
    metrics::add(Metric::UnitsSold, lines.as_slice().iter().map(|line| f64::from(line.quantity.get())).sum());
}

fn count_refusal(err: &StoreError) {
    if let StoreError::OutOfStock { .. } = err {
        metrics::count(Metric::OutOfStock);
    }
}
