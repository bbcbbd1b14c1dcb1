//! The one error type of the API and its mapping to HTTP. Every handler returns
//! `Result<_, AppError>`; nothing else decides a status code or an error body. The errors
//! of the layers below (store, throttle, passwords) become `AppError`s in one place,
//! `crate::http::errors`; this module imports none of them, so they may all import it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Input that parsed but broke a rule; names the offending field.
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },

    #[error("Authorization header required")]
    MissingToken,
    #[error("Invalid header format")]
    InvalidAuthHeader,
    #[error("Invalid or expired token")]
    InvalidToken,
    #[error("Invalid email or password")]
    InvalidCredentials,
    #[error("Admins only")]
    AdminOnly,
    #[error("Too many login attempts; try again later")]
    TooManyAttempts { retry_after: std::time::Duration },
    #[error("Too many registrations from this network; try again later")]
    TooManyRegistrations { retry_after: std::time::Duration },

    #[error("Product not found")]
    ProductNotFound { product_id: i64 },
    #[error("Order not found")]
    OrderNotFound,
    #[error("no route for {0}")]
    RouteNotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,

    #[error("email is already registered")]
    EmailTaken,
    #[error("sku is already used by another product")]
    SkuTaken,
    #[error("Out of stock")]
    OutOfStock { product_id: i64 },
    #[error("Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("Product is archived")]
    ProductArchived { product_id: i64 },
    #[error("Not enough stock to remove")]
    InsufficientStock { product_id: i64 },
    #[error("The product changed since you read it: GET it again and retry with its ETag")]
    VersionMismatch,
    #[error("If-Match with the product's ETag required")]
    PreconditionRequired,
    #[error("The time to cancel this order is over")]
    CancelWindowClosed,

    /// The connection was lost while an order was being placed: it may have committed. Not
    /// 503, whose `Retry-After` invites a blind retry that could buy twice.
    #[error(
        "The order may or may not have been placed: retry with the same Idempotency-Key, or check your orders before ordering again"
    )]
    CommitUnknown(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database (or pool) cannot be reached; the client may retry.
    #[error("service temporarily unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A fault on our side; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_id: Option<i64>,
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }

    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } | Self::MalformedJson(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MissingToken | Self::InvalidAuthHeader | Self::InvalidToken | Self::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            Self::AdminOnly => StatusCode::FORBIDDEN,
            Self::TooManyAttempts { .. } | Self::TooManyRegistrations { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::ProductNotFound { .. } | Self::OrderNotFound | Self::RouteNotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::EmailTaken
            | Self::SkuTaken
            | Self::OutOfStock { .. }
            | Self::IdempotencyKeyReused
            | Self::ProductArchived { .. }
            | Self::InsufficientStock { .. }
            | Self::CancelWindowClosed => StatusCode::CONFLICT,
            Self::VersionMismatch => StatusCode::PRECONDITION_FAILED,
            Self::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Self::CommitUnknown(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable snake_case identifier that programs switch on; documented in the README.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_input",
            Self::MalformedJson(_) => "malformed_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::MissingToken => "missing_token",
            Self::InvalidAuthHeader => "invalid_auth_header",
            Self::InvalidToken => "invalid_token",
            Self::InvalidCredentials => "invalid_credentials",
            Self::AdminOnly => "admin_only",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::TooManyRegistrations { .. } => "too_many_registrations",
            Self::ProductNotFound { .. } => "product_not_found",
            Self::OrderNotFound => "order_not_found",
            Self::RouteNotFound(_) => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::EmailTaken => "email_taken",
            Self::SkuTaken => "sku_taken",
            Self::OutOfStock { .. } => "out_of_stock",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::ProductArchived { .. } => "product_archived",
            Self::InsufficientStock { .. } => "insufficient_stock",
            Self::VersionMismatch => "version_mismatch",
            Self::PreconditionRequired => "if_match_required",
            Self::CancelWindowClosed => "cancel_window_closed",
            Self::CommitUnknown(_) => "commit_unknown",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(cause) | Self::CommitUnknown(cause) => {
                tracing::error!(error = %self, cause = %cause, "request failed")
            }
            Self::Unavailable(cause) => tracing::warn!(error = %self, cause = %cause, "request failed"),
            _ => tracing::debug!(error = %self, status = status.as_u16(), "request rejected"),
        }
        let body = ErrorBody {
            error: self.to_string(),
            code: self.code(),
            field: match &self {
                Self::Invalid { field, .. } => Some(field),
                _ => None,
            },
            product_id: match &self {
                Self::ProductNotFound { product_id }
                | Self::OutOfStock { product_id }
                | Self::ProductArchived { product_id }
                | Self::InsufficientStock { product_id } => Some(*product_id),
                _ => None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match self {
            Self::Unavailable(_) => Some(1),
            Self::TooManyAttempts { retry_after } | Self::TooManyRegistrations { retry_after } => {
                Some(retry_after.as_secs().max(1))
            }
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if status == StatusCode::UNAUTHORIZED && !matches!(self, Self::InvalidCredentials) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
