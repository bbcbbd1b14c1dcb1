//! What every HTTP function shares: the JSON body and pagination extractors, the JSON
//! 404/405 fallbacks, the body limit, and the per-request span with its request id.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::domain::{IdempotencyKey, optional};
use crate::error::AppError;

/// Largest request body accepted; anything bigger is 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Adds what every router needs, once, on top of its routes: JSON 404 and 405, the body
/// limit and the request span. Each Lambda applies it to its own router; the local server
/// applies it to the merge of all of them.
pub fn finish(router: Router) -> Router {
    finish_with(router, cors(std::env::var("CORS_ALLOWED_ORIGINS").ok().as_deref()))
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
    router.layer(middleware::from_fn(request_span))
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
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, HeaderName::from_static("idempotency-key")])
            .expose_headers([header::LINK, header::RETRY_AFTER, HeaderName::from_static(REQUEST_ID)])
            .max_age(Duration::from_secs(600)),
    )
}

const REQUEST_ID: &str = "x-request-id";

/// Runs the request inside a span carrying its id (Lambda's request id when there is one,
/// else the caller's `x-request-id`, else a new UUID) and echoes the id back.
async fn request_span(request: Request, next: Next) -> Response {
    let id = request
        .lambda_context_ref()
        .map(|ctx| ctx.request_id.clone())
        .or_else(|| request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_owned))
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "handled");
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// A JSON request body. Wrong content type is 415, too large 413, unparsable JSON 400
/// `malformed_json`, and a value of the wrong type 400 `invalid_input` naming the field.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        let body = Bytes::from_request(request, state).await.map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                AppError::PayloadTooLarge { limit: BODY_LIMIT }
            }
            other => AppError::MalformedJson(other.body_text()),
        })?;
        parse_json(&body).map(Self)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.split_once('/').is_some_and(|(kind, sub)| {
            kind.eq_ignore_ascii_case("application") && sub.to_ascii_lowercase().ends_with("+json")
        })
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    // serde would also read a struct from an array; the API only takes objects.
    if body.trim_ascii_start().first().is_some_and(|b| *b != b'{') {
        return Err(AppError::MalformedJson("the body must be a JSON object".into()));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() || field == "." {
            AppError::MalformedJson(inner.to_string())
        } else {
            let message = format!("{field}: {inner}");
            AppError::Invalid { field, message }
        }
    })?;
    deserializer.end().map_err(|err| AppError::MalformedJson(err.to_string()))?;
    Ok(value)
}

/// Keyset pagination from `?limit=&after=`: the items that come after the item with id
/// `after` in the listing's order (the start when absent), at most `limit` (default 50,
/// max 100) of them.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub after: Option<i64>,
    pub limit: i64,
}

impl Page {
    pub const DEFAULT_LIMIT: i64 = 50;
    pub const MAX_LIMIT: i64 = 100;

    /// Keeps the first `limit` of `items` (fetched with `limit + 1`) and, when there were
    /// more, the `Link: rel="next"` header value pointing after the last one kept.
    fn split<T>(&self, mut items: Vec<T>, id: impl Fn(&T) -> i64, path: &str) -> (Vec<T>, Option<HeaderValue>) {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        if items.len() <= limit {
            return (items, None);
        }
        items.truncate(limit);
        let link = items.last().and_then(|last| {
            HeaderValue::from_str(&format!("<{path}?limit={}&after={}>; rel=\"next\"", self.limit, id(last))).ok()
        });
        (items, link)
    }

    /// The page as the API answers it: a bare JSON array, plus the `Link` header when
    /// another page follows. `rows` were fetched with [`Self::fetch_limit`].
    pub fn respond<T: Serialize>(&self, rows: Vec<T>, id: impl Fn(&T) -> i64, path: &str) -> Response {
        let (items, next) = self.split(rows, id, path);
        let mut response = Json(items).into_response();
        if let Some(link) = next {
            response.headers_mut().insert(header::LINK, link);
        }
        response
    }

    /// How many rows to fetch to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<String>,
    after: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(query) = Query::<PageQuery>::try_from_uri(&parts.uri)
            .map_err(|rejection| AppError::invalid("query", rejection.body_text()))?;
        let limit = match query.limit {
            None => Self::DEFAULT_LIMIT,
            Some(raw) => raw.parse().ok().filter(|limit| (1..=Self::MAX_LIMIT).contains(limit)).ok_or_else(|| {
                AppError::invalid("limit", format!("limit: must be an integer from 1 to {}", Self::MAX_LIMIT))
            })?,
        };
        let after = query
            .after
            .map(|raw| {
                raw.parse()
                    .ok()
                    .filter(|after: &i64| *after >= 0)
                    .ok_or_else(|| AppError::invalid("after", "after: must be a non-negative integer id"))
            })
            .transpose()?;
        Ok(Self { after, limit })
    }
}

/// The optional `Idempotency-Key` request header; an unusable value is 400.
pub struct Idempotency(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for Idempotency {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.headers.get("idempotency-key").map(|value| value.as_bytes().to_vec());
        optional("Idempotency-Key", raw, |raw| IdempotencyKey::parse(&raw)).map(Self)
    }
}

/// The caller's network address as the edge saw it: API Gateway's `sourceIp` in Lambda,
/// the TCP peer locally. Client-supplied headers (X-Forwarded-For) are not trusted.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let from_gateway = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok()),
            _ => None,
        };
        let from_socket = || parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        Ok(Self(from_gateway.or_else(from_socket)))
    }
}

/// Marks a response that replays the first response to an `Idempotency-Key`.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// The public path prefix (an API Gateway stage) that was removed before routing, so that
/// links the API hands out still work for the caller.
#[derive(Debug, Clone, Default)]
pub struct PathPrefix(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathPrefix {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        let headers = |value: &'static str| {
            let mut map = HeaderMap::new();
            map.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            map
        };
        assert!(is_json(&headers("application/json")));
        assert!(is_json(&headers("Application/JSON; charset=utf-8")));
        assert!(is_json(&headers("application/merge-patch+json")));
        assert!(!is_json(&headers("text/plain")));
        assert!(!is_json(&headers("application/jsonx")));
        assert!(!is_json(&HeaderMap::new()));
    }

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

    #[test]
    fn next_link_only_when_more() {
        let page = Page { after: None, limit: 2 };
        let (items, link) = page.split(vec![1, 2], |i| *i, "/p");
        assert_eq!((items.len(), link), (2, None));
        let (items, link) = page.split(vec![1, 2, 3], |i| *i, "/p");
        assert_eq!(items, vec![1, 2]);
        assert_eq!(link.as_ref().and_then(|l| l.to_str().ok()), Some("</p?limit=2&after=2>; rel=\"next\""));
    }
}
