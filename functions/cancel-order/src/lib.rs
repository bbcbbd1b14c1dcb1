//! POST /api/v1/orders/{id}/cancel: cancels an order and gives its stock back: the buyer
//! within `ORDER_CANCEL_WINDOW_MINUTES` of placing it, an admin at any time. Cancelling a
//! cancelled order answers it again and changes nothing. The cancellation mail's outbox
//! row commits with the cancel and is published after it.

use axum::extract::{Path, State};
use axum::{Json, Router};
use common::auth::Caller;
use common::domain::{OrderId, Role, required};
use common::http::Routes;
use common::lambda::{HttpFunction, Needs, QueueNeed};
use common::store::orders::{self, Canceller, Order};
use common::{AppError, AppState, outbox};

/// This function on Lambda (its `main` runs it): the database and the key it verifies tokens with.
/// Cancel publishes the cancellation mail after commit, when a queue is configured.
pub const LAMBDA: HttpFunction<AppState> = HttpFunction::new(Needs::DATABASE.jwt().queue(QueueNeed::IfConfigured), api);

/// This function's routes, named once: the local server, the Lambda entry and the
/// template drift test read them.
pub fn api() -> Routes<AppState> {
    Routes::new().post("/api/v1/orders/{id}/cancel", cancel_order)
}

pub fn routes(state: AppState) -> Router {
    api().with_state(state)
}

async fn cancel_order(
    caller: Caller,
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Result<Json<Order>, AppError> {
    let id = required("id", Some(raw_id), OrderId::parse_str)?;
    let by = match caller.role {
        Role::Admin => Canceller::Admin,
        Role::User => Canceller::Buyer { id: caller.id, window: state.limits.order_cancel_window },
    };

    let cancelled = orders::cancel(&**state.db.get().await?, id, by).await?;
    if let (Some(publisher), Some(mail)) = (&state.publisher, &cancelled.mail) {
        outbox::publish_committed(&state.db, publisher.as_ref(), mail).await;
    }

    Ok(Json(cancelled.order))
}
