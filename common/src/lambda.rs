//! The one way every function starts on Lambda, whatever its trigger: HTTP
//! ([`run_http`]), or an event ([`run_events`]: SQS batches, the sweeper's schedule,
//! `migrate`'s invocations).
//!
//! Layering: `crate::config` reads settings; `crate::resources` builds what a function
//! [`Needs`] from them; this module decides when, once per execution environment:
//!
//! 1. logs and metrics are set up ([`telemetry::init_lambda`], [`metrics::init`]); each
//!    invocation then writes one EMF metric line (HTTP: `crate::http`'s request span);
//! 2. the plain settings are checked ([`Needs::check`]): a typo stops the function at init;
//! 3. the resources are built at init when they need no secret, else on the first
//!    invocation: AWS documents the Parameters and Secrets extension as callable only in
//!    the INVOKE phase, and its server starts in parallel with ours. A build that fails is
//!    not kept: an HTTP request is answered 503 `service_unavailable` with `Retry-After`
//!    (an invocation error would reach the caller as API Gateway's own non-JSON 500), an
//!    event handler gets the error, and the next invocation tries again;
//! 4. on shutdown the pool is closed, so its connections end before the process does.
//!
//! Each function's `main` names its trigger, its needs and its handler, nothing more (an
//! HTTP function's crate exports them as an [`HttpFunction`]).

use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use tower::ServiceExt;
use tower::util::MapRequest;

use crate::config::ProcessEnv;
use crate::error::AppError;
use crate::http::{PathPrefix, Routes, finish};
use crate::metrics::{self, Correlation};
pub use crate::resources::{Needs, QueueNeed, Resources};
use crate::state::FromResources;
use crate::telemetry;

pub type Error = lambda_http::Error;

type Build<T> = dyn Fn() -> Pin<Box<dyn Future<Output = Result<T, Error>> + Send>> + Send + Sync;

/// A value built on first use, once per execution environment; a failed build is not
/// kept, so the next use tries again.
pub struct Lazy<T> {
    cell: Arc<OnceCell<T>>,
    build: Arc<Build<T>>,
}

impl<T> Clone for Lazy<T> {
    fn clone(&self) -> Self {
        Self { cell: self.cell.clone(), build: self.build.clone() }
    }
}

impl<T> Lazy<T> {
    fn new(build: impl Fn() -> Pin<Box<dyn Future<Output = Result<T, Error>> + Send>> + Send + Sync + 'static) -> Self {
        Self { cell: Arc::new(OnceCell::new()), build: Arc::new(build) }
    }

    /// The value, built now when it is not yet.
    pub async fn get(&self) -> Result<&T, Error> {
        self.cell.get_or_try_init(|| (self.build)()).await
    }
}

/// An HTTP function as its Lambda runs it: what it needs, and its routes over the state
/// made from that. Made in a `const` ([`HttpFunction::new`]), so a function whose needs
/// leave out what its state is made of (the JWT key, say: see [`crate::state::AppState`])
/// does not compile, rather than answering 503 to every request.
pub struct HttpFunction<S> {
    needs: Needs,
    routes: fn() -> Routes<S>,
}

impl<S: FromResources> HttpFunction<S> {
    pub const fn new(needs: Needs, routes: fn() -> Routes<S>) -> Self {
        assert!(needs.covers(S::NEEDS), "the function's Needs leave out what its routes' state is made of");
        Self { needs, routes }
    }

    /// What this function reads and builds: its secrets are these, and no others.
    pub const fn needs(&self) -> Needs {
        self.needs
    }
}

/// Runs an HTTP function: its routes over the state made from what it needs.
pub async fn run_http<S>(function: HttpFunction<S>) -> Result<(), Error>
where
    S: FromResources + Clone + Send + Sync + 'static,
{
    let HttpFunction { needs, routes } = function;
    let app = Lazy::new(move || {
        Box::pin(async move {
            let resources = Resources::build(needs, &ProcessEnv).await.inspect_err(log_unusable)?;
            let state = S::from_resources(&resources)?;
            let routes = routes();
            for (method, path) in routes.table() {
                tracing::debug!(%method, path, "serving");
            }
            Ok((service(routes.with_state(state)), resources))
        })
    });
    start(needs, &app, |(_, resources)| resources).await?;
    lambda_http::run(lambda_http::service_fn(move |request: Request| {
        let app = app.clone();
        async move { Ok::<_, Error>(answer(&app, request).await) }
    }))
    .await
}

/// Runs a function fed events (`E`: an SQS batch, a schedule, a direct invocation):
/// `handler` gets each event and the resources, which it builds with [`Lazy::get`].
pub async fn run_events<E, R, F, Fut>(needs: Needs, handler: F) -> Result<(), Error>
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(LambdaEvent<E>, Lazy<Resources>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<R, Error>> + Send + 'static,
{
    let resources = Lazy::new(move || {
        Box::pin(async move { Resources::build(needs, &ProcessEnv).await.inspect_err(log_unusable) })
    });
    start(needs, &resources, |resources| resources).await?;
    let handler = Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(move |event: LambdaEvent<E>| {
        let correlation = Correlation::new(event.context.request_id.clone(), event.context.xray_trace_id.as_deref());
        metrics::scope(correlation, handler(event, resources.clone()))
    }))
    .await
}

/// Steps 1, 2 and 4 of the module docs, and step 3 when it can run at init.
async fn start<T: Send + Sync + 'static>(
    needs: Needs,
    built: &Lazy<T>,
    resources: fn(&T) -> &Resources,
) -> Result<(), Error> {
    telemetry::init_lambda();
    metrics::init(&ProcessEnv).inspect_err(log_unusable)?;
    let deferred = needs.check(&ProcessEnv).inspect_err(log_unusable)?;
    if !deferred {
        built.get().await?;
    }
    let on_shutdown = built.clone();
    lambda_runtime::spawn_graceful_shutdown_handler(move || async move {
        if let Some(built) = on_shutdown.cell.get() {
            resources(built).close();
        }
        tracing::info!("shutting down");
    })
    .await;
    Ok(())
}

fn log_unusable(err: &(impl std::fmt::Display + ?Sized)) {
    tracing::error!(error = %err, "invalid configuration");
}

/// One request's response; 503 while the resources cannot be built (see the module docs).
async fn answer<T>(app: &Lazy<(Service, T)>, request: Request) -> Response {
    match app.get().await {
        Ok((service, _)) => match service.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(err) => AppError::Unavailable(err).into_response(),
    }
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
    use crate::state::{AppState, NoKey};

    #[test]
    fn a_function_needs_what_its_state_is_made_of() {
        let keyless = HttpFunction::<AppState<NoKey>>::new(Needs::DATABASE, Routes::new);
        assert!(!keyless.needs().jwt);
        assert!(HttpFunction::<AppState>::new(Needs::DATABASE.jwt(), Routes::new).needs().jwt);
        let without_key = std::panic::catch_unwind(|| HttpFunction::<AppState>::new(Needs::DATABASE, Routes::new));
        assert!(without_key.is_err(), "a keyed state was made from needs without the key");
    }

    #[tokio::test]
    async fn configuration_that_cannot_load_is_answered_503_and_retried() {
        let app: Lazy<(Service, ())> =
            Lazy::new(|| Box::pin(async { Err("the secrets extension is not ready".into()) }));
        for attempt in 1..=2 {
            let response = answer(&app, Request::default()).await;
            assert_eq!(response.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE, "attempt {attempt}");
            assert!(response.headers().contains_key(axum::http::header::RETRY_AFTER));
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            assert_eq!(body["code"], "service_unavailable", "{body}");
        }
        assert!(app.cell.get().is_none(), "a failed load is not kept");
    }
}
