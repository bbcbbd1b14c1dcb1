//! The one way every HTTP function runs on Lambda: logs, config and pool built once per
//! execution environment, the API Gateway stage removed from the path, graceful shutdown.

use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt, service_fn};
use tokio::sync::OnceCell;
use tower::ServiceExt;
use tower::util::MapRequest;

use crate::config::{Config, ProcessEnv};
use crate::error::AppError;
use crate::http::{PathPrefix, finish};
use crate::state::AppState;
use crate::telemetry;

pub type Error = lambda_http::Error;

/// Runs `routes` as this Lambda's handler. Called from each function's `main`.
///
/// Configuration given directly in the environment is loaded here, at init. Secrets that
/// come through the Parameters and Secrets extension are loaded on the first request
/// instead: AWS documents the extension as callable only in the INVOKE phase, and its
/// server starts in parallel with ours. Either way it happens once per environment; a
/// first request that fails to load them is answered 503 and the next retries.
pub async fn run_http(routes: fn(AppState) -> Router) -> Result<(), Error> {
    run_http_with(routes, |state| Box::pin(async move { Ok(state) })).await
}

/// Adds to the state what one function needs beyond the common state (register: the queue
/// publisher); runs once per environment, right after the state is built.
pub type Prepare = fn(AppState) -> Pin<Box<dyn Future<Output = Result<AppState, Error>> + Send>>;

/// [`run_http`] with a [`Prepare`] step.
pub async fn run_http_with(routes: fn(AppState) -> Router, prepare: Prepare) -> Result<(), Error> {
    telemetry::init_lambda();
    let app: Arc<OnceCell<(Service, AppState)>> = Arc::new(OnceCell::new());
    let deferred = Config::needs_extension(&ProcessEnv)
        .inspect_err(|err| tracing::error!(error = %err, "invalid configuration"))?;
    if !deferred {
        let loaded = build(routes, prepare).await?;
        if app.set(loaded).is_err() {
            return Err("the handler was initialised twice".into());
        }
    }
    let on_shutdown = app.clone();
    lambda_runtime::spawn_graceful_shutdown_handler(move || async move {
        if let Some((_, state)) = on_shutdown.get() {
            state.db.close();
        }
        tracing::info!("shutting down");
    })
    .await;
    lambda_http::run(service_fn(move |request: Request| {
        let app = app.clone();
        async move { Ok::<_, Error>(answer(&app, routes, prepare, request).await) }
    }))
    .await
}

/// One invocation's response. When the configuration cannot be loaded yet, the caller gets
/// 503 `service_unavailable` with `Retry-After` and the next invocation tries again; an
/// invocation error instead would reach the caller as API Gateway's own non-JSON 500.
async fn answer(
    app: &OnceCell<(Service, AppState)>,
    routes: fn(AppState) -> Router,
    prepare: Prepare,
    request: Request,
) -> Response {
    match app.get_or_try_init(|| build(routes, prepare)).await {
        Ok((service, _)) => match service.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(err) => AppError::Unavailable(err).into_response(),
    }
}

async fn build(routes: fn(AppState) -> Router, prepare: Prepare) -> Result<(Service, AppState), Error> {
    let config = Config::from_env().await.inspect_err(|err| tracing::error!(error = %err, "invalid configuration"))?;
    let state = prepare(AppState::new(&config)?).await?;
    Ok((service(routes(state.clone())), state))
}

/// A function's finished router with the stage stripping in front.
pub type Service = MapRequest<Router, fn(Request) -> Request>;

/// The function's router as Lambda calls it; tests feed it API Gateway events.
pub fn service(routes: Router) -> Service {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn not_ready(_: AppState) -> Pin<Box<dyn Future<Output = Result<AppState, Error>> + Send>> {
        Box::pin(async { Err("the secrets extension is not ready".into()) })
    }

    #[tokio::test]
    async fn configuration_that_cannot_load_is_answered_503_and_retried() {
        let app = OnceCell::new();
        for attempt in 1..=2 {
            let response = answer(&app, |_| Router::new(), not_ready, Request::default()).await;
            assert_eq!(response.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE, "attempt {attempt}");
            assert!(response.headers().contains_key(axum::http::header::RETRY_AFTER));
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!(body["code"], "service_unavailable", "{body}");
        }
        assert!(app.get().is_none(), "a failed load is not kept");
    }
}
