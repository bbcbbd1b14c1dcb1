//! What every HTTP function shares: the JSON 404/405 fallbacks, the body limit, CORS, the
//! body read before routing, panics answered as 500 and the per-request span with its
//! request id, plus the extractors in the submodules, and (`errors`) the one place where
//! the errors of the layers below (store, throttle, passwords) become [`AppError`]s.

mod body;
mod errors;
mod headers;
mod json;
mod page;
mod routes;

use std::any::Any;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use lambda_http::RequestExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::metrics::{self, Correlation};

pub use headers::{ClientIp, Idempotency, IfMatch, created, versioned};
pub use json::{ApiJson, integer};
pub use page::{Page, PathPrefix};
pub use routes::{Routes, matches_template};

use crate::config;
use crate::error::AppError;

/// Largest request body accepted; anything bigger is 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Adds what every router needs, once, on top of its routes: JSON 404 and 405, the body
/// limit, the whole body read first, a 500 for a panic and the request span. Each Lambda
/// applies it to its own router; the local server applies it to the merge of all of them.
pub fn finish(router: Router) -> Router {
    finish_with(router, cors(config::cors_allowed_origins(&config::ProcessEnv).as_deref()))
}

fn finish_with(router: Router, cors: Option<CorsLayer>) -> Router {
    let router = router
        .fallback(|uri: Uri| async move { AppError::RouteNotFound(uri.path().to_owned()) })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(middleware::from_fn(body::read_whole_body))
        .layer(CatchPanicLayer::custom(panic_response as fn(Box<dyn Any + Send>) -> Response))
        .layer(middleware::from_fn(request_span))
}

/// A handler that panics is answered like any other fault, 500 `internal_error` with the
/// cause logged, instead of the connection (locally) or the invocation (in Lambda, where
/// API Gateway then answers its own non-JSON 500) ending without our answer.
fn panic_response(panic: Box<dyn Any + Send>) -> Response {
    let message = match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(message), _) => (*message).to_owned(),
        (None, Some(message)) => message.clone(),
        (None, None) => "no message".to_owned(),
    };
    AppError::Internal(format!("handler panicked: {message}").into()).into_response()
}

/// CORS for browsers, off unless `CORS_ALLOWED_ORIGINS` lists origins (comma-separated,
/// or `*` for any). Origins that do not parse are logged and ignored.
fn cors(allowed_origins: Option<&str>) -> Option<CorsLayer> {
    let raw = allowed_origins.filter(|v| !v.trim().is_empty())?;
    let origins = if raw.trim() == "*" {
        AllowOrigin::any()
    } else {
        let list: Vec<HeaderValue> = raw
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .filter_map(|origin| {
                HeaderValue::from_str(origin)
                    .inspect_err(|_| tracing::warn!(origin, "ignoring unusable CORS origin"))
                    .ok()
            })
            .collect();
        AllowOrigin::list(list)
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods(CORS_ALLOW_METHODS)
            .allow_headers(CORS_ALLOW_HEADERS.map(HeaderName::from_static))
            .expose_headers(CORS_EXPOSE_HEADERS.map(HeaderName::from_static))
            .max_age(Duration::from_secs(CORS_MAX_AGE_SECS)),
    )
}

// What browsers may send and read, for the local layer above and for API Gateway's
// CorsConfiguration in infra/template.yaml, which answers in AWS instead (it ignores the
// functions' CORS headers); server/tests/infra_template.rs checks that the two agree.
/// Methods a browser may call.
pub const CORS_ALLOW_METHODS: [Method; 4] = [Method::GET, Method::POST, Method::PATCH, Method::DELETE];
/// Request headers a browser may send (lower case, as header names are compared).
pub const CORS_ALLOW_HEADERS: [&str; 4] = ["authorization", "content-type", "idempotency-key", "if-match"];
/// Response headers a browser's script may read: the version for If-Match, the next
/// page, the created resource, when to retry, the request id.
pub const CORS_EXPOSE_HEADERS: [&str; 5] = ["etag", "link", "location", "retry-after", REQUEST_ID];
/// How long a browser may cache a preflight's answer.
pub const CORS_MAX_AGE_SECS: u64 = 600;

const REQUEST_ID: &str = "x-request-id";
/// Locally, a caller's X-Ray trace header (API Gateway sets it in AWS; Lambda passes it in the context).
const TRACE_ID: &str = "x-amzn-trace-id";

/// Runs the request inside a span carrying its id (Lambda's request id when there is one,
/// else the caller's `x-request-id`, else a new UUID) and echoes the id back.
async fn request_span(request: Request, next: Next) -> Response {
    let id = request
        .lambda_context_ref()
        .map(|ctx| ctx.request_id.clone())
        .or_else(|| request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_owned))
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let trace_header = match request.lambda_context_ref() {
        Some(ctx) => ctx.xray_trace_id.clone(),
        None => request.headers().get(TRACE_ID).and_then(|v| v.to_str().ok()).map(str::to_owned),
    };
    let correlation = Correlation::new(id.clone(), trace_header.as_deref());
    let span = tracing::info_span!("request", request_id = %id, trace_id = %correlation.trace_id, method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    let mut response = metrics::scope(correlation, next.run(request).instrument(span.clone())).await;
    span.in_scope(|| {
        tracing::info!(status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "handled");
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    async fn preflight(router: Router, origin: &str) -> Option<String> {
        use tower::ServiceExt;
        let request = Request::builder()
            .method(Method::OPTIONS)
            .uri("/things")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .body(axum::body::Body::empty())
            .ok()?;
        let response = router.oneshot(request).await.ok()?;
        response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).map(|v| v.to_str().unwrap_or_default().to_owned())
    }

    async fn call(router: Router, request: Request) -> (Response, serde_json::Value) {
        use tower::ServiceExt;
        let Ok(response) = router.oneshot(request).await;
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
        (Response::from_parts(parts, axum::body::Body::empty()), serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn post(uri: &str, body: Vec<u8>) -> Request {
        Request::post(uri).header(header::CONTENT_TYPE, "application/json").body(body.into()).unwrap_or_default()
    }

    #[tokio::test]
    async fn a_panicking_handler_is_answered_500() {
        async fn boom() -> &'static str {
            panic!("the handler failed")
        }
        let router = finish_with(Router::new().route("/boom", axum::routing::get(boom)), None);
        let request = Request::get("/boom").body(axum::body::Body::empty()).unwrap_or_default();
        let (response, body) = call(router, request).await;
        assert_eq!(response.status(), axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["code"], "internal_error", "{body}");
        assert!(!body.to_string().contains("the handler failed"), "the cause leaked: {body}");
        assert!(response.headers().contains_key(REQUEST_ID));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_and_closes_the_connection() {
        let router = finish_with(Router::new().route("/things", axum::routing::post(|| async { "ok" })), None);
        let (response, body) = call(router.clone(), post("/things", vec![b' '; BODY_LIMIT + 1])).await;
        assert_eq!(response.status(), axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["code"], "payload_too_large", "{body}");
        assert_eq!(response.headers().get(header::CONNECTION).map(HeaderValue::as_bytes), Some(&b"close"[..]));

        let (response, _) = call(router, post("/things", vec![b' '; BODY_LIMIT])).await;
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        assert!(!response.headers().contains_key(header::CONNECTION));
    }

    /// A PATCH with If-Match may be sent from a browser, and its script may read a GET's ETag.
    #[tokio::test]
    async fn cors_allows_conditional_writes_and_exposes_the_version() {
        use tower::ServiceExt;
        let routes = Router::new().route(
            "/things/1",
            axum::routing::get(|| async { ([(header::ETAG, "\"3\"")], "{}") }).patch(|| async { "{}" }),
        );
        let router = finish_with(routes, cors(Some("https://shop.example")));
        let request = Request::builder()
            .method(Method::OPTIONS)
            .uri("/things/1")
            .header(header::ORIGIN, "https://shop.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PATCH")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,content-type,if-match")
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        let Ok(preflight) = router.clone().oneshot(request).await;
        let list = |response: &Response, name: header::HeaderName| -> Vec<String> {
            let value = response.headers().get(name).map(|v| v.to_str().unwrap_or_default()).unwrap_or_default();
            value.split(',').map(|item| item.trim().to_ascii_lowercase()).filter(|item| !item.is_empty()).collect()
        };
        assert!(preflight.status().is_success(), "{:?}", preflight.status());
        let methods = list(&preflight, header::ACCESS_CONTROL_ALLOW_METHODS);
        assert!(methods.contains(&"patch".to_owned()) && methods.contains(&"delete".to_owned()), "{methods:?}");
        let headers = list(&preflight, header::ACCESS_CONTROL_ALLOW_HEADERS);
        for name in ["authorization", "content-type", "if-match", "idempotency-key"] {
            assert!(headers.contains(&name.to_owned()), "{name} not in {headers:?}");
        }

        let request = Request::get("/things/1")
            .header(header::ORIGIN, "https://shop.example")
            .body(axum::body::Body::empty())
            .unwrap_or_default();
        let Ok(got) = router.oneshot(request).await;
        let exposed = list(&got, header::ACCESS_CONTROL_EXPOSE_HEADERS);
        for name in ["etag", "link", "location"] {
            assert!(exposed.contains(&name.to_owned()), "{name} not in {exposed:?}");
        }
    }

    #[tokio::test]
    async fn cors_only_for_configured_origins() {
        let routes = || Router::new().route("/things", axum::routing::post(|| async { "ok" }));
        let allowed = cors(Some("https://shop.example, https://admin.example"));
        let router = finish_with(routes(), allowed);
        assert_eq!(preflight(router.clone(), "https://shop.example").await.as_deref(), Some("https://shop.example"));
        assert_eq!(preflight(router, "https://evil.example").await, None);
        assert_eq!(preflight(finish_with(routes(), cors(None)), "https://shop.example").await, None);
        assert_eq!(
            preflight(finish_with(routes(), cors(Some("*"))), "https://any.example").await.as_deref(),
            Some("*")
        );
    }
}
