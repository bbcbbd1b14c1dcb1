//! The one way every HTTP function runs on Lambda: logs, config and pool built once per
//! execution environment, the API Gateway stage removed from the path, graceful shutdown.

use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::Uri;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt, service_fn};
use tokio::sync::OnceCell;
use tower::ServiceExt;
use tower::util::MapRequest;

use crate::config::{Config, ProcessEnv};
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
/// first request that fails to load them is answered with an error and the next retries.
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
        async move {
            let (service, _) = app.get_or_try_init(|| build(routes, prepare)).await?;
            Ok::<_, Error>(service.clone().oneshot(request).await?)
        }
    }))
    .await
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
