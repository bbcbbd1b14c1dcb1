//! The one way every HTTP function runs on Lambda: logs, config and pool built once per
//! execution environment, the API Gateway stage removed from the path, graceful shutdown.

use axum::Router;
use axum::http::Uri;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use tower::ServiceExt;
use tower::util::MapRequest;

use crate::config::Config;
use crate::http::{PathPrefix, finish};
use crate::state::AppState;
use crate::telemetry;

pub type Error = lambda_http::Error;

/// Runs `routes` as this Lambda's handler. Called from each function's `main`.
pub async fn run_http(routes: fn(AppState) -> Router) -> Result<(), Error> {
    telemetry::init_lambda();
    let config = Config::from_env().inspect_err(|err| tracing::error!(error = %err, "invalid configuration"))?;
    let state = AppState::new(&config)?;
    let pool = state.db.clone();
    lambda_runtime::spawn_graceful_shutdown_handler(move || async move {
        pool.close();
        tracing::info!("shutting down");
    })
    .await;
    lambda_http::run(service(routes(state))).await
}

/// The function's router as Lambda calls it; tests feed it API Gateway events.
pub fn service(routes: Router) -> MapRequest<Router, fn(Request) -> Request> {
    finish(routes).map_request(strip_stage as fn(Request) -> Request)
}

/// HTTP API passes a named stage in the path (`/prod/api/v1/...`); routes are written
/// without it. Must run before routing, so it wraps the router instead of being a layer.
fn strip_stage(mut request: Request) -> Request {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
        _ => None,
    };
    let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") else {
        return request;
    };
    let prefix = format!("/{stage}");
    let uri = request.uri();
    let Some(rest) = uri.path().strip_prefix(&prefix).filter(|rest| rest.is_empty() || rest.starts_with('/')) else {
        return request;
    };
    let path_and_query = match uri.query() {
        Some(query) => format!("{}?{query}", if rest.is_empty() { "/" } else { rest }),
        None => if rest.is_empty() { "/" } else { rest }.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(stripped) = Uri::from_parts(parts) {
            *request.uri_mut() = stripped;
            request.extensions_mut().insert(PathPrefix(prefix));
        }
    }
    request
}
