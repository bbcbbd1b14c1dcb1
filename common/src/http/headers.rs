//! Request headers and connection facts handlers read: `Idempotency-Key`, client address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use lambda_http::request::RequestContext;

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

/// Marks a response that replays the first response to an `Idempotency-Key`.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

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
