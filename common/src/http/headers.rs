//! Request headers and connection facts handlers read: `Idempotency-Key`, `If-Match`,
//! client address; the `ETag` they answer.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use lambda_http::request::RequestContext;
use serde::Serialize;

use crate::domain::{IdempotencyKey, optional};
use crate::error::AppError;

/// The optional `Idempotency-Key` request header; an unusable value is 400.
pub struct Idempotency(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for Idempotency {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.headers.get("idempotency-key").map(|value| value.as_bytes().to_vec());
        optional("Idempotency-Key", raw, |raw| IdempotencyKey::parse(&raw)).map(Self)
    }
}

/// The `If-Match` request header, as the versions it accepts: `None` for `*` (any), else
/// every strong ETag it lists (`"3"`, `"3", "4"`). A weak or unparsable entry matches no
/// version. Missing, it is 428: an edit must say which version it was made from.
pub struct IfMatch(pub Option<Vec<i64>>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(header::IF_MATCH).ok_or(AppError::PreconditionRequired)?;
        let value = value.to_str().unwrap_or_default().trim();
        if value == "*" {
            return Ok(Self(None));
        }
        let versions =
            value.split(',').filter_map(|tag| tag.trim().strip_prefix('"')?.strip_suffix('"')?.parse().ok()).collect();
        Ok(Self(Some(versions)))
    }
}

/// `body` as JSON with its version as a strong `ETag`, what a later `If-Match` sends back.
pub fn versioned(body: impl Serialize, version: i64) -> Response {
    let mut response = Json(body).into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

/// Marks a response that replays the first response to an `Idempotency-Key`.
const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// 201 with `body`; a replay for a repeated `Idempotency-Key` says so in a header.
pub fn created(body: impl Serialize, replayed: bool) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if replayed {
        response.headers_mut().insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    response
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
